/**
 * startNode (scripts/bench/platform.ts) is ready only when the process it started listens on its
 * port: a port another process answers on is not taken for the new process's (a bench would then
 * measure the other platform's service in its place).
 */
import { createServer } from 'node:http';
import { freePort } from '@codelab/service-kit/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { listensOn, startNode, type Proc } from '../../scripts/bench/platform.ts';

describe('bench processes and their ports', () => {
  const started: Proc[] = [];
  afterAll(async () => {
    await Promise.all(started.map((p) => p.stop()));
  });

  it('listensOn tells the process that listens on a port from one that does not', async () => {
    const server = createServer((_req, res) => res.end('ok'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    try {
      expect(listensOn(process.pid, port)).toBe(true);
      expect(listensOn(process.pid, await freePort())).toBe(false);
      expect(listensOn(1, port)).toBe(false);
    } finally {
      server.close();
    }
  });

  it('refuses a process whose port another process answers on, saying the port was taken', async () => {
    const port = await freePort();
    const first = await startNode('hello-a', 'scripts/bench/hello-fastify.ts', port, { PORT: String(port) }, { readyPath: '/' });
    started.push(first);
    expect(listensOn(first.pid, port)).toBe(true);
    // the same port again: the first one answers the readiness check, the second cannot listen
    await expect(startNode('hello-b', 'scripts/bench/hello-fastify.ts', port, { PORT: String(port) }, { readyPath: '/' })).rejects.toThrow(
      new RegExp(`hello-b exited with \\d+ while starting on port ${port}:[\\s\\S]*EADDRINUSE`),
    );
  });
});
