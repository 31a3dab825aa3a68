/**
 * An idle WebSocket keeps nothing of its upgrade request (upgrade.ts): the fastify request and
 * reply, the IncomingMessage with its headers (the bearer token) and the stand-in ServerResponse
 * are all collectable once the connection is open, and what @fastify/websocket's error listener
 * did (log the error, terminate the socket) still happens.
 */
import { once } from 'node:events';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { capturingLogger } from '@codelab/service-kit/testing';
import { startHarness, type Harness } from './harness.ts';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

async function collect(): Promise<void> {
  // WeakRefs are cleared after the job that made them: turn the loop between collections
  for (let i = 0; i < 3; i++) {
    await new Promise((resolve) => setImmediate(resolve));
    gc();
  }
}

const LIMIT = 4096;

describe('an open WebSocket and its upgrade request', () => {
  let h: Harness;
  const logs = capturingLogger();
  const upgrades: { request: WeakRef<object>; raw: WeakRef<object>; reply: WeakRef<object>; response: WeakRef<object> }[] = [];
  beforeAll(async () => {
    h = await startHarness({ GATEWAY__WS_MAX_MESSAGE_BYTES: String(LIMIT) }, logs.logger, (gateway) =>
      gateway.app.addHook('onRequest', async (request, reply) => {
        if (!request.url.startsWith('/api/v1/ws/')) return;
        upgrades.push({
          request: new WeakRef(request),
          raw: new WeakRef(request.raw),
          reply: new WeakRef(reply),
          response: new WeakRef(reply.raw),
        });
      }),
    );
  });
  afterAll(() => h?.close());

  it('lets the request, the reply and their raw objects go once the connection is open', async () => {
    const client = await h.connect('s-release');
    client.send({ type: 'ping', timestamp: 1 });
    await client.until((f) => f.type === 'pong');
    expect(upgrades).toHaveLength(1);
    await collect();
    const [u] = upgrades;
    const kept = Object.entries(u!).filter(([, ref]) => ref.deref() !== undefined);
    expect(kept.map(([name]) => name)).toEqual([]);
    // still the same connection
    client.send({ type: 'ping', timestamp: 2 });
    expect((await client.until((f) => f.type === 'pong' && f.timestamp === 2)).at(-1)).toEqual({ type: 'pong', timestamp: 2 });
    client.close();
  });

  it('still logs a socket error with the request logger and terminates the socket', async () => {
    const client = await h.connect('s-error');
    const closed = once(client.ws, 'close') as Promise<[number, Buffer]>;
    // over four times the limit: ws itself fails the connection (an 'error' on the socket)
    client.send({ type: 'user_message', content: 'x'.repeat(4 * LIMIT + 1) });
    const [code] = await closed;
    expect(code).toBe(1009);
    const lines = logs.lines();
    const error = lines.find(
      (l) => l.level === 50 && (l.err as { code?: string } | undefined)?.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH',
    );
    expect(error).toMatchObject({ reqId: expect.any(String) });
    expect(lines).toContainEqual(expect.objectContaining({ msg: 'websocket error', session_id: 's-error', level: 40 }));
  });
});
