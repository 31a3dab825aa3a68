/**
 * `npm run bench:hop`: what one streaming hop between two services costs per turn, over HTTP/1.1
 * (a connection per stream) and over h2c (PeerClient's h2c pool, GATEWAY__AGENT_STREAM_H2C_STREAMS
 * streams a connection), in alternating rounds of the same run.
 *
 * A server process (a service-kit service, as the runtime) answers each call with an SSE stream of
 * FRAMES frames of ~150 bytes, all its streams' frames leaving on one shared tick (TICK_MS, the
 * runtime's token frame interval); this process (as the gateway) keeps STREAMS calls in flight
 * with a PeerClient and reads every frame. Printed per round and protocol: CPU ms per stream of the
 * server and of the client, and their system calls (reads + writes, from /proc) per stream.
 *
 *   BENCH_STREAMS=100 BENCH_FRAMES=13 BENCH_TICK_MS=30 BENCH_TURNS=2000 BENCH_ROUNDS=3 npm run bench:hop
 */
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createService, PeerClient, ServiceMetrics, startSse } from '@codelab/service-kit';
import { silentLogger } from '@codelab/service-kit/testing';
import { procSample } from './platform.ts';

const STREAMS = Number(process.env.BENCH_STREAMS || 100);
const FRAMES = Number(process.env.BENCH_FRAMES || 13);
const TICK_MS = Number(process.env.BENCH_TICK_MS || 30);
const TURNS = Number(process.env.BENCH_TURNS || 2000);
const ROUNDS = Number(process.env.BENCH_ROUNDS || 3);
const H2C_STREAMS = Number(process.env.BENCH_H2C_STREAMS || 32);

const frame = JSON.stringify({ type: 'assistant_message', token: 'three words here ', is_final: false, seq: 7, agent_type: 'coder' });

/** CPU ms (user + system) and system calls (reads + writes) of a process so far. */
function usage(pid: number): { cpu: number; syscalls: number } {
  const p = procSample(pid);
  return { cpu: p.cpu, syscalls: p.reads + p.writes };
}

async function serve(): Promise<void> {
  const svc = createService({ name: 'hop-server', version: '0', logLevel: 'warn', logger: silentLogger() });
  const waiting = new Set<() => void>();
  setInterval(() => {
    for (const tick of [...waiting]) tick();
  }, TICK_MS);
  svc.app.post('/turn', async (_request, reply) => {
    const sse = startSse(reply, {}, { flushHeaders: false });
    for (let i = 0; i < FRAMES; i++) {
      await new Promise<void>((resolve) => {
        const tick = (): void => {
          waiting.delete(tick);
          resolve();
        };
        waiting.add(tick);
      });
      await sse.raw(`data: ${frame}\n\n`);
    }
    sse.end('data: [DONE]\n\n');
  });
  await svc.app.listen({ host: '127.0.0.1', port: 0 });
  process.send!((svc.app.server.address() as { port: number }).port);
}

async function round(
  url: string,
  serverPid: number,
  h2cStreams: number,
): Promise<{ server: number; client: number; serverCalls: number; clientCalls: number }> {
  const client = new PeerClient({ peer: 'hop', baseUrl: url, metrics: new ServiceMetrics('hop-client'), connections: 1024, h2cStreams });
  const one = async (): Promise<void> => {
    const res = await client.request({ method: 'POST', path: '/turn', route: '/turn', body: {} });
    for await (const _ of res.body);
  };
  // warm-up: connections open, code paths compiled
  await Promise.all(Array.from({ length: STREAMS }, one));
  const s0 = usage(serverPid);
  const c0 = usage(process.pid);
  let started = 0;
  const worker = async (): Promise<void> => {
    while (started < TURNS) {
      started++;
      await one();
    }
  };
  await Promise.all(Array.from({ length: STREAMS }, worker));
  const s1 = usage(serverPid);
  const c1 = usage(process.pid);
  await client.close();
  return {
    server: (s1.cpu - s0.cpu) / TURNS,
    client: (c1.cpu - c0.cpu) / TURNS,
    serverCalls: (s1.syscalls - s0.syscalls) / TURNS,
    clientCalls: (c1.syscalls - c0.syscalls) / TURNS,
  };
}

async function main(): Promise<void> {
  const child: ChildProcess = fork(import.meta.filename, ['serve'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const [port] = (await once(child, 'message')) as [number];
  const url = `http://127.0.0.1:${port}`;
  console.log(
    `${STREAMS} streams in flight, ${TURNS} streams a round, ${FRAMES} frames each on a ${TICK_MS}-ms tick; h2c: ${H2C_STREAMS} streams a connection`,
  );
  const sums = { http1: [0, 0], h2c: [0, 0] };
  for (let r = 1; r <= ROUNDS; r++) {
    for (const [name, h2c] of [
      ['http1', 0],
      ['h2c', H2C_STREAMS],
    ] as const) {
      const m = await round(url, child.pid!, h2c);
      sums[name][0]! += m.server;
      sums[name][1]! += m.client;
      console.log(
        `  round ${r} ${name.padEnd(5)}: CPU per stream server ${m.server.toFixed(3)} ms, client ${m.client.toFixed(3)} ms; system calls per stream server ${m.serverCalls.toFixed(1)}, client ${m.clientCalls.toFixed(1)}`,
      );
    }
  }
  const [h1s, h1c] = sums.http1.map((x) => x / ROUNDS) as [number, number];
  const [h2s, h2c] = sums.h2c.map((x) => x / ROUNDS) as [number, number];
  console.log(
    `RESULT hop: CPU per stream (server + client) http1 ${(h1s + h1c).toFixed(3)} ms, h2c ${(h2s + h2c).toFixed(3)} ms: h2c/http1 x${((h2s + h2c) / (h1s + h1c)).toFixed(2)} (server x${(h2s / h1s).toFixed(2)}, client x${(h2c / h1c).toFixed(2)})`,
  );
  child.kill();
}

if (process.argv[2] === 'serve') await serve();
else await main();
