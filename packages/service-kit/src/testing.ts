/**
 * Test helpers shared by every service's tests: the run's database and Redis, a fixed internal
 * key, a silent logger, and the rule for tests that need an installed program (promtool, nginx…):
 * they skip naming the Debian package to install, except under CI=true where the missing program
 * fails the test, so CI always proves the real thing.
 */
import { execFileSync } from 'node:child_process';
import type { FastifyInstance } from 'fastify';
import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import pg from 'pg';
import { pino, type Logger } from 'pino';

export const TEST_INTERNAL_KEY = 'test-internal-key-0123456789abcdef';

export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}

/** A destination that keeps JSON lines in memory (for a logger), and those lines parsed. */
export function memoryLines(): { destination: Writable; lines: () => Record<string, unknown>[] } {
  const chunks: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, done) {
      chunks.push(chunk.toString('utf8'));
      done();
    },
  });
  return {
    destination,
    lines: () =>
      chunks
        .join('')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

/** A logger that keeps its JSON lines in memory. */
export function capturingLogger(level = 'info'): { logger: Logger; lines: () => Record<string, unknown>[] } {
  const { destination, lines } = memoryLines();
  return { logger: pino({ level }, destination), lines };
}

/** Path of an installed program, or undefined. */
export function findProgram(name: string): string | undefined {
  try {
    return execFileSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
}

/**
 * For `it.skipIf(...)`/`describe.skipIf(...)`: true when the program is missing (and then says what
 * to install). Under CI=true a missing program throws instead of skipping.
 */
export function missingProgram(name: string, debianPackage: string): boolean {
  if (findProgram(name)) return false;
  const message = `${name} is not installed: apt-get install -y ${debianPackage}`;
  if (process.env.CI === 'true') throw new Error(`CI=true and ${message}`);
  process.stderr.write(`skipping tests that need ${name}: ${message}\n`);
  return true;
}

/** Same rule for a server the suite needs (Redis): true means skip. */
export function missingServer(what: string, envVar: string, value: string | null | undefined): boolean {
  if (value) return false;
  const message = `${what} tests need ${envVar} (a real server)`;
  if (process.env.CI === 'true') throw new Error(`CI=true and ${message}`);
  process.stderr.write(`skipping: ${message}\n`);
  return true;
}

/**
 * A full garbage collection on demand (V8's `gc`, exposed in this process): for tests that a stream
 * keeps no object it should not (a WeakRef to it is empty once the collector has run).
 */
export function collectGarbage(): () => void {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

/** A free TCP port on loopback (for spawned services). */
export async function freePort(): Promise<number> {
  const [port] = await freePorts(1);
  return port!;
}

/**
 * `n` free TCP ports on loopback, all different: held open together until each is known (ports
 * taken one after the other may repeat, each being free again once its probe closed — a Compose
 * stack whose nginx and Prometheus got the same host port failed to start).
 */
export async function freePorts(n: number): Promise<number[]> {
  const net = await import('node:net');
  const servers = Array.from({ length: n }, () => net.createServer());
  try {
    return await Promise.all(
      servers.map(
        (srv) =>
          new Promise<number>((resolve, reject) => {
            srv.once('error', reject);
            srv.listen(0, '127.0.0.1', () => resolve((srv.address() as { port: number }).port));
          }),
      ),
    );
  } finally {
    await Promise.all(servers.map((srv) => new Promise((resolve) => (srv.listening ? srv.close(resolve) : resolve(undefined)))));
  }
}

/** Polls `url` until it answers 200, or throws after `timeoutMs`. */
export async function waitForHttp(url: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
      if (res.ok) return;
      last = `status ${res.status}`;
    } catch (err) {
      last = (err as Error).message;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url} did not answer 200 within ${timeoutMs} ms (${last})`);
}

/**
 * Routes of a peer that fails after its headers, for a client's tests: `GET /broken` sends its
 * headers and part of a JSON body, then cuts the connection; `GET /stalls` sends its headers and
 * part of a body, then nothing until `release()` (for afterAll) ends every one waiting.
 */
export function misbehavingRoutes(app: FastifyInstance): { release(): void } {
  const stalled = new Set<() => void>();
  app.get('/broken', async (_request, reply) => {
    reply.hijack();
    reply.raw.writeHead(200, { 'content-type': 'application/json', 'content-length': '100' });
    reply.raw.write('{"half":');
    await new Promise((r) => setImmediate(r));
    reply.raw.destroy();
  });
  app.get('/stalls', async (_request, reply) => {
    reply.hijack();
    reply.raw.writeHead(200, { 'content-type': 'application/json' });
    reply.raw.write('{"started":');
    await new Promise<void>((r) => stalled.add(r));
    reply.raw.end('true}');
  });
  return {
    release: () => {
      for (const r of stalled) r();
      stalled.clear();
    },
  };
}

/** Runs one statement on its own connection to `url`. */
async function runOn(url: string, statement: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(statement);
  } finally {
    await client.end();
  }
}

/**
 * A database of its own (`<prefix>_<random>`) on the server of the run's `serverUrl`, for a test
 * that needs one apart from the other suites', and `drop` for its afterAll. On the embedded engine
 * (PGlite) every name opens the one database there is.
 */
export async function scratchDatabase(serverUrl: string, prefix: string): Promise<{ url: string; drop(): Promise<void> }> {
  const name = `${prefix}_${randomBytes(4).toString('hex')}`;
  await runOn(serverUrl, `CREATE DATABASE ${name}`);
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return { url: url.toString(), drop: () => runOn(serverUrl, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`) };
}
