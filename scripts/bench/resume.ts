/**
 * `npm run bench:resume`: how long a client that reconnected in the middle of a turn waits for its
 * next message to be answered. Connection A sends a message whose answer streams for about 300 ms
 * and drops after the first token; B reconnects at once with `?last_seq=` and sends its next
 * message straight away (the gateway holds it until the replay of the running turn ends). Measured:
 * from the replayed turn's final frame to the next message's first frame, on B.
 *
 * The reference, in the same run: the same two messages on one connection that never dropped, from
 * the first turn's final frame to the second message's first frame (the second is sent as soon as
 * the first one's final frame arrived). The ratio is what a resume costs on top.
 *
 * Give it Redis (BENCH_REDIS_URL): the frame log and its followers are then what production runs;
 * without it the runtime's in-process log serves the replay.
 *
 *   BENCH_SAMPLES=20 BENCH_DATABASE_URL=postgres://… BENCH_REDIS_URL=redis://… npm run bench:resume
 */
import { randomUUID } from 'node:crypto';
import { FrameClient } from '../../test/helpers/stack.ts';
import { f1 } from './load.ts';
import { benchDatabase, result, startPlatform, type Platform } from './platform.ts';
import { pct } from './timing.ts';

const SAMPLES = Number(process.env.BENCH_SAMPLES || 20);
const LONG = 'tell me a long story [[mock:words 30]]';
const SHORT = 'and then? [[mock:words 3]]';

type Frame = Record<string, unknown>;
const seqOf = (f: Frame | undefined): number => (typeof f?.seq === 'number' ? f.seq : -1);

/** From a turn's final frame (the last of `frames`) to the first numbered frame after it. */
async function nextFirstFrame(client: FrameClient, frames: Frame[], from: number): Promise<number> {
  const finalAt = performance.now();
  const finalSeq = seqOf(frames.at(-1));
  await client.until((f) => seqOf(f) > finalSeq, from);
  return performance.now() - finalAt;
}

async function plain(p: Platform): Promise<number> {
  const c = new FrameClient(p.wsUrl(`bench-${randomUUID()}`), { authorization: `Bearer ${p.token}` });
  await c.open();
  try {
    c.send({ type: 'user_message', content: LONG });
    const first = await c.until((f) => f.is_final === true);
    c.send({ type: 'user_message', content: SHORT });
    return await nextFirstFrame(c, first, first.length);
  } finally {
    c.close();
  }
}

async function resumed(p: Platform): Promise<number> {
  const id = `bench-${randomUUID()}`;
  const a = new FrameClient(p.wsUrl(id), { authorization: `Bearer ${p.token}` });
  await a.open();
  a.send({ type: 'user_message', content: LONG });
  const [token] = await a.until((f) => typeof f.token === 'string' && f.token !== '');
  a.ws.terminate();
  const b = new FrameClient(`${p.wsUrl(id)}?last_seq=${seqOf(token)}`, { authorization: `Bearer ${p.token}` });
  await b.open();
  try {
    b.send({ type: 'user_message', content: SHORT }); // waits behind the replay
    const replayed = await b.until((f) => f.is_final === true);
    return await nextFirstFrame(b, replayed, replayed.length);
  } finally {
    b.close();
  }
}

const db = await benchDatabase(8);
let platform: Platform | undefined;
try {
  platform = await startPlatform({
    databaseUrl: db.url,
    redisUrl: process.env.BENCH_REDIS_URL,
    mock: { ttftMs: 0, tokenDelayMs: 10 },
  });
  const p = platform;
  console.log(
    `${SAMPLES} samples each, alternating; mock: 0 ms to first token, 10 ms between tokens; frame log: ${process.env.BENCH_REDIS_URL ? 'Redis' : "the runtime's memory"}; database: ${db.describe}`,
  );
  await plain(p); // warm-up: connections and JIT
  const ref: number[] = [];
  const res: number[] = [];
  for (let i = 0; i < SAMPLES; i++) {
    ref.push(await plain(p));
    res.push(await resumed(p));
  }
  const line = (name: string, xs: number[]): string =>
    `${name.padEnd(44)} p50 ${f1(pct(xs, 50)).padStart(7)} ms  p95 ${f1(pct(xs, 95)).padStart(7)} ms  max ${f1(Math.max(...xs)).padStart(7)} ms`;
  console.log(line('one connection (reference)', ref));
  console.log(line('reconnected mid-turn with ?last_seq=', res));
  result(
    'resume',
    `final frame -> next message's first frame: reconnected mid-turn p50 ${f1(pct(res, 50))} ms, p95 ${f1(pct(res, 95))} ms vs one connection p50 ${f1(pct(ref, 50))} ms, p95 ${f1(pct(ref, 95))} ms (x${(pct(res, 50) / pct(ref, 50)).toFixed(2)} at p50)`,
  );
} finally {
  await platform?.stop();
  await db.stop();
}
