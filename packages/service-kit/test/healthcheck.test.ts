/**
 * bin/healthcheck, the images' Docker HEALTHCHECK: healthy only on a 200 from GET /health, and a line
 * saying why otherwise (Docker keeps it in the container's health log).
 */
import { execFile } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { freePort } from '@codelab/service-kit/testing';

const SCRIPT = path.join(import.meta.dirname, '..', 'bin', 'healthcheck');

async function check(port: number): Promise<{ code: number; out: string }> {
  try {
    const { stdout } = await promisify(execFile)('bash', [SCRIPT, String(port)], { timeout: 20_000 });
    return { code: 0, out: stdout };
  } catch (err) {
    const e = err as { code?: number; stdout?: string };
    return { code: e.code ?? -1, out: e.stdout ?? '' };
  }
}

describe('bin/healthcheck', () => {
  let server: Server | undefined;
  const paths: string[] = [];
  afterEach(() => new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve())));

  async function serve(status: number): Promise<number> {
    server = createServer((req, res) => {
      paths.push(`${req.method} ${req.url} ${req.headers.host}`);
      res.writeHead(req.url === '/health' ? status : 404, { 'content-type': 'application/json' }).end('{"status":"x"}');
    });
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
    return (server.address() as { port: number }).port;
  }

  it('exits 0 on a 200 from GET /health, and asks for exactly that', async () => {
    const port = await serve(200);
    expect(await check(port)).toEqual({ code: 0, out: '' });
    expect(paths.at(-1)).toBe(`GET /health 127.0.0.1:${port}`);
  });

  it('exits 1 and names the status on anything else', async () => {
    const port = await serve(503);
    expect(await check(port)).toEqual({ code: 1, out: `GET http://127.0.0.1:${port}/health: HTTP/1.1 503\n` });
  });

  it('exits 1 when nothing listens', async () => {
    const port = await freePort();
    expect(await check(port)).toEqual({ code: 1, out: `GET http://127.0.0.1:${port}/health: nothing listening\n` });
  });

  it('exits 1 when the connection closes without an answer', async () => {
    server = createServer((req) => req.socket.destroy());
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    expect(await check(port)).toEqual({ code: 1, out: `GET http://127.0.0.1:${port}/health: no status line\n` });
  });
});
