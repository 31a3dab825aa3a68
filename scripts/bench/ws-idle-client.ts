/**
 * One client process of `npm run bench:ws-idle` (started by it with an IPC channel): opens COUNT
 * authenticated WebSockets to the gateway from LOCAL_ADDRESS, at most PARALLEL handshakes at a time,
 * keeps them open and idle (answering the gateway's pings, as `ws` does by itself), and reports.
 *
 * Messages to the parent: `{ type: 'progress' | 'opened', opened, failed, error? }`, and on
 * `{ type: 'stats' }` `{ type: 'stats', open, closedEarly, codes, rss }`; on `{ type: 'close' }` it
 * closes every socket and exits.
 */
import { randomUUID } from 'node:crypto';
import WebSocket from 'ws';

const BASE = process.env.WS_BASE!; // ws://127.0.0.1:PORT/api/v1/ws/
const TOKEN = process.env.TOKEN!;
const COUNT = Number(process.env.COUNT);
const PARALLEL = Number(process.env.PARALLEL || 32);
const LOCAL_ADDRESS = process.env.LOCAL_ADDRESS || undefined;
const WORKER = process.env.WORKER ?? '0';

const send = (m: Record<string, unknown>): void => void process.send?.(m);
const sockets: WebSocket[] = [];
let opened = 0;
let failed = 0;
let closedEarly = 0;
let closing = false;
let error: string | undefined;
const codes: Record<string, number> = {};

function openOne(i: number): Promise<void> {
  return new Promise((resolve) => {
    const ws = new WebSocket(`${BASE}idle-${WORKER}-${i}-${randomUUID()}`, {
      headers: { authorization: `Bearer ${TOKEN}` },
      perMessageDeflate: false,
      ...(LOCAL_ADDRESS ? { localAddress: LOCAL_ADDRESS } : {}),
    });
    let settled = false;
    const done = (ok: boolean, why?: string): void => {
      if (settled) return;
      settled = true;
      if (ok) {
        opened++;
        sockets.push(ws);
      } else {
        failed++;
        error ??= why;
      }
      resolve();
    };
    ws.once('open', () => done(true));
    ws.once('unexpected-response', (_req, res) => done(false, `handshake refused: ${res.statusCode}`));
    ws.once('error', (err) => done(false, err.message));
    ws.once('close', (code) => {
      if (!settled) return done(false, `closed during the handshake: ${code}`);
      if (!closing) {
        closedEarly++;
        codes[code] = (codes[code] ?? 0) + 1;
      }
    });
  });
}

const progress = setInterval(() => send({ type: 'progress', opened, failed, error }), 500);
let next = 0;
await Promise.all(
  Array.from({ length: Math.min(PARALLEL, COUNT) }, async () => {
    while (next < COUNT) await openOne(next++);
  }),
);
clearInterval(progress);
send({ type: 'opened', opened, failed, error });

process.on('message', (m: { type: string }) => {
  if (m.type === 'stats') {
    send({
      type: 'stats',
      open: sockets.filter((s) => s.readyState === WebSocket.OPEN).length,
      closedEarly,
      codes,
      rss: process.memoryUsage().rss,
    });
  } else if (m.type === 'close') {
    closing = true;
    let left = sockets.length;
    if (left === 0) process.exit(0);
    for (const s of sockets) {
      s.once('close', () => {
        if (--left === 0) process.exit(0);
      });
      s.close();
    }
    setTimeout(() => process.exit(0), 10_000).unref();
  }
});
