/** HTTP load with autocannon, with latencies kept at full resolution (autocannon's own histogram rounds to whole ms). */
import autocannon from 'autocannon';
import { freePort } from '@codelab/service-kit/testing';
import { CpuMeter, startNode, type Proc } from './platform.ts';
import { pct } from './timing.ts';

export interface LoadResult {
  name: string;
  /** 2xx answers per second over the run. */
  rps: number;
  ok: number;
  /** Non-2xx answers and connection errors: any makes the run invalid. */
  failed: number;
  p50: number;
  p99: number;
  seconds: number;
}

export interface LoadOptions {
  name: string;
  url: string;
  headers?: Record<string, string>;
  connections: number;
  seconds: number;
}

export function load(opts: LoadOptions): Promise<LoadResult> {
  const latencies: number[] = [];
  return new Promise((resolve, reject) => {
    const instance = autocannon(
      { url: opts.url, headers: opts.headers ?? {}, connections: opts.connections, duration: opts.seconds, pipelining: 1 },
      (err, r) => {
        if (err) return reject(err);
        const ok = r['2xx'];
        resolve({
          name: opts.name,
          rps: ok / r.duration,
          ok,
          failed: r.non2xx + r.errors,
          p50: pct(latencies, 50),
          p99: pct(latencies, 99),
          seconds: r.duration,
        });
      },
    );
    instance.on('response', (_client, status, _bytes, ms) => {
      if (status >= 200 && status < 300) latencies.push(ms);
    });
  });
}

/** Fails loudly when a run had errors (its throughput would not mean anything). */
export function checkLoad(r: LoadResult): LoadResult {
  if (r.failed > 0 || r.ok === 0) throw new Error(`${r.name}: ${r.failed} failed requests of ${r.ok + r.failed}`);
  return r;
}

export const f1 = (n: number): string => n.toFixed(1);
export const f2 = (n: number): string => n.toFixed(2);

/** A bare fastify hello-world (scripts/bench/hello-fastify.ts) as its own process: the reference every bench can measure against. */
export async function startHelloFastify(): Promise<Proc> {
  const port = await freePort();
  return startNode('hello-fastify', 'scripts/bench/hello-fastify.ts', port, { PORT: String(port) }, { readyPath: '/' });
}

/**
 * What one bare fastify hello-world request costs on this machine now: the hello-world process's
 * CPU time per request (server side only) and its requests/s, under autocannon for `seconds`
 * (after a 1 s warm-up).
 */
export async function helloCpuPerRequest(hello: Proc, connections = 16, seconds = 3): Promise<{ cpuMsPerRequest: number; rps: number }> {
  await load({ name: 'hello-fastify warm-up', url: `${hello.url}/`, connections, seconds: 1 });
  const meter = new CpuMeter({ hello: () => [hello.pid] });
  meter.start();
  const r = checkLoad(await load({ name: 'hello-fastify', url: `${hello.url}/`, connections, seconds }));
  const { cpu } = meter.stop();
  return { cpuMsPerRequest: cpu.hello! / r.ok, rps: r.rps };
}
