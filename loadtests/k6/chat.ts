/**
 * Whole conversations over the gateway WebSocket, as an IDE has them: open a session, send
 * CHAT_TURNS user messages one after the other, run the tools the agent asks for (a read_file is
 * answered with its content; a call that needs approval is approved with hitl_decision, then
 * executed), and measure every turn: time to first token, gaps between tokens, duration, failure,
 * and the session's frame numbering (missed or out-of-order frames).
 * Answers are scripted with the mock LLM's directives, so they are short and deterministic.
 * `k6 run -e PASSWORD=… [-e PROFILE=ci] loadtests/k6/chat.ts`
 */
// imports
import { check } from 'k6';
import { Counter, Rate, Trend } from 'k6/metrics';
import { MAX_TURNS_PER_MESSAGE, nextTurnFrame, userMessage } from '../lib/conversation.ts';
import { CHAT_TURNS } from '../lib/profiles.ts';
import { loginForRun } from './lib/auth.ts';
import { Conversation } from './lib/conversation.ts';
import type { TurnResult } from './lib/frames.ts';
import { buildOptions, profileName, profileSeconds } from './lib/options.ts';
import { assertReady } from './lib/ready.ts';
import { summaryFor } from './lib/summary.ts';

// where the platform listens
const BASE_URL = __ENV.BASE_URL || 'http://127.0.0.1:8000';
const AUTH_URL = __ENV.AUTH_URL || 'http://127.0.0.1:8003';
const WS_URL = __ENV.WS_URL || BASE_URL.replace(/^http/, 'ws');
/** Seconds a turn may take before it counts as failed (as long as the gateway's own stream timeout). */
const TURN_TIMEOUT_MS = Number(__ENV.TURN_TIMEOUT || '60') * 1000;

// load shape and thresholds (loadtests/lib/profiles.ts, loadtests/generated/thresholds.json)
export const options = buildOptions('chat');

// custom metrics (prefixed with the journey); tagged with the inbound frame type of the turn
/** Turn frame sent → first frame with a `token`. */
const timeToFirstToken = new Trend('chat_time_to_first_token', true);
/** Between consecutive token frames of a turn. */
const interTokenGap = new Trend('chat_inter_token_gap', true);
/** Turn frame sent → the turn's final frame. */
const turnDuration = new Trend('chat_turn_duration', true);
/** A turn that ended with an `error` frame, timed out (TURN_TIMEOUT) or lost its connection. */
const turnsFailed = new Rate('chat_turns_failed');
/** Numbered frames never received (a jump in `seq`). */
const framesMissed = new Counter('chat_frames_missed');
/** Frames whose `seq` was not above the previous one. */
const framesOutOfOrder = new Counter('chat_frames_out_of_order');

// setup: the gateway and auth are up, and a token for the run
interface Data {
  token: string;
}

export function setup(): Data {
  assertReady('gateway', BASE_URL);
  assertReady('auth', AUTH_URL);
  return { token: loginForRun(AUTH_URL, profileSeconds('chat', profileName())) };
}

// what the user does

function record(frameType: string, result: TurnResult): void {
  const tags: Record<string, string> = result.reason ? { frame: frameType, reason: result.reason } : { frame: frameType };
  turnsFailed.add(result.failed, tags);
  turnDuration.add(result.duration, { frame: frameType });
  if (result.timeToFirstToken !== undefined) timeToFirstToken.add(result.timeToFirstToken, { frame: frameType });
  for (const gap of result.interTokenGaps) interTokenGap.add(gap, { frame: frameType });
  check(result, { 'the turn ends with a final frame that is not an error': (r) => !r.failed });
}

/** One user message and the tool turns it leads to; true once the assistant has answered it. */
async function exchange(conversation: Conversation, message: string): Promise<boolean> {
  let frame: Record<string, unknown> & { type: string } = { type: 'user_message', content: message, role: 'user' };
  for (let turn = 0; turn < MAX_TURNS_PER_MESSAGE; turn++) {
    const result = await conversation.turn(frame);
    record(frame.type, result);
    if (result.failed || !result.final) return false;
    const next = nextTurnFrame(result.final);
    if (next === 'answered') return true;
    if (!next) return false;
    frame = next;
  }
  return false;
}

export async function haveConversation(data: Data): Promise<void> {
  const sessionId = `k6-chat-${__VU}-${__ITER}-${Date.now().toString(36)}`;
  const url = `${WS_URL}/api/v1/ws/${sessionId}?access_token=${encodeURIComponent(data.token)}`;
  const conversation = new Conversation(url, TURN_TIMEOUT_MS, { name: 'WS /api/v1/ws/:sessionId' });
  const opened = await conversation.opened;
  check(opened, { 'the conversation WebSocket opens': (ok) => ok });
  if (!opened) {
    // the user could not say anything: the first message's turn failed
    turnsFailed.add(true, { frame: 'user_message', reason: 'not_opened' });
    return;
  }
  let answered = 0;
  while (answered < CHAT_TURNS && (await exchange(conversation, userMessage(answered)))) answered += 1;
  check(answered, { 'every message of the conversation is answered': (n) => n === CHAT_TURNS });
  framesMissed.add(conversation.missed);
  framesOutOfOrder.add(conversation.outOfOrder);
  conversation.close();
}

// end-of-test summary
export const handleSummary = summaryFor('chat');
