/**
 * Frames over GATEWAY__WS_MAX_MESSAGE_BYTES close the connection with 1009. Up to four times the
 * limit the gateway reads the frame whole first and closes with a handshake (reason "message too
 * big"): closing while the client still sends made nginx reset the client's connection (1006).
 * Bigger frames are cut at their header by ws itself, still 1009 on a direct connection.
 */
import { once } from 'node:events';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHarness, type Harness } from './harness.ts';

const LIMIT = 4096;

describe('a frame over GATEWAY__WS_MAX_MESSAGE_BYTES', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ GATEWAY__WS_MAX_MESSAGE_BYTES: String(LIMIT) });
  });
  afterAll(() => h?.close());

  async function closeOf(bytes: number): Promise<{ code: number; reason: string }> {
    const client = await h.connect(`s-big-${bytes}`);
    const closed = once(client.ws, 'close') as Promise<[number, Buffer]>;
    client.send({ type: 'user_message', content: 'x'.repeat(bytes) });
    const [code, reason] = await closed;
    return { code, reason: reason.toString() };
  }

  it('is read whole and closed with 1009 after a close handshake, counted and never run', async () => {
    expect(await closeOf(LIMIT + 1)).toEqual({ code: 1009, reason: 'message too big' });
    expect(await closeOf(3 * LIMIT)).toEqual({ code: 1009, reason: 'message too big' });
    const metrics = await h.metrics();
    expect(metrics).toMatch(/^gateway_ws_messages_total\{direction="in",type="oversize"\} 2$/m);
    expect(metrics).toMatch(/^gateway_ws_closes_total\{code="1009"\} 2$/m);
    expect(h.runtime.callsTo('POST', '/agent/message/stream')).toEqual([]);
  });

  it('over four times the limit is cut at its header (ws), still with 1009', async () => {
    expect((await closeOf(4 * LIMIT + 1)).code).toBe(1009);
  });

  it('at the limit goes through', async () => {
    const client = await h.connect('s-at-limit');
    const frame = { type: 'user_message', content: '' };
    frame.content = 'x'.repeat(LIMIT - JSON.stringify(frame).length);
    expect(JSON.stringify(frame).length).toBe(LIMIT);
    client.send(frame);
    expect((await client.until((f) => f.is_final === true)).at(-1)).toMatchObject({ type: 'assistant_message' });
    client.close();
  });
});
