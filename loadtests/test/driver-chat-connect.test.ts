/**
 * The load driver's chat scenario against a scripted WebSocket server (plain TCP): what a gateway
 * sends in the same write as its upgrade response (a gateway shutting down says so and closes at
 * once) must reach the conversation, so a failed turn is counted with the reason the gateway gave,
 * not as a bare lost connection.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { closeFrame, scriptedServer, textFrame, upgradeResponse } from '../../test/helpers/scripted-ws-server.ts';
import { Registry, type Tags } from '../driver/metrics.ts';
import { BUILTIN_METRICS } from '../driver/run.ts';
import { chat } from '../driver/scenarios/chat.ts';
import type { TokenSource } from '../driver/scenarios/token.ts';
import { Recorder, type ScenarioEnv } from '../driver/scenarios/types.ts';

/** Keeps every sample the scenario records, with its tags. */
class Samples extends Recorder {
  readonly samples: { name: string; value: number | boolean; tags?: Tags }[] = [];
  override add(name: string, value: number | boolean, tags?: Tags): void {
    this.samples.push({ name, value, tags });
    super.add(name, value, tags);
  }
}

let close: (() => void) | undefined;
afterEach(() => close?.());

describe('chat scenario', () => {
  it('counts the error frame a gateway sends with its upgrade response as the failed turn reason', async () => {
    const shuttingDown = JSON.stringify({
      type: 'error',
      code: 'GW_ERR_SHUTTING_DOWN',
      error: 'The gateway is shutting down; reconnect',
      is_final: true,
    });
    const server = await scriptedServer([
      (_line, socket, request) => {
        socket.write(Buffer.concat([upgradeResponse(request), textFrame(shuttingDown), closeFrame(1001)]), () => socket.end());
      },
    ]);
    close = server.close;
    const metrics = new Samples(new Registry([...BUILTIN_METRICS, ...chat.metrics]));
    const env = { metrics, turnTimeoutMs: 20_000 } as unknown as ScenarioEnv; // all the chat iteration reads
    const tokens = { get: async () => 'token' } as unknown as TokenSource;
    await chat.iteration({ tokens, wsBase: server.url }, { vu: 1, iteration: 0, signal: new AbortController().signal }, env);

    const failed = metrics.samples.filter((s) => s.name === 'chat_turns_failed');
    expect(failed).toEqual([{ name: 'chat_turns_failed', value: true, tags: { frame: 'user_message', reason: 'GW_ERR_SHUTTING_DOWN' } }]);
    expect(metrics.samples.filter((s) => s.name === 'ws_msgs_received').length).toBe(1);
  });
});
