/**
 * A benchmark stopped by SIGTERM (a CI job's timeout, `kill`) stops the processes it started
 * (scripts/bench/platform.ts startNode) instead of leaving them running.
 */
import { spawn } from 'node:child_process';
import { describe, expect, it, vi } from 'vitest';
import { REPO_ROOT } from '../helpers/processes.ts';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('bench processes on SIGTERM', () => {
  it('stops the processes a bench started, then exits with 143', async () => {
    const script = `
      import { freePort } from '@codelab/service-kit/testing';
      import { startNode } from './scripts/bench/platform.ts';
      const port = await freePort();
      const hello = await startNode('hello-fastify', 'scripts/bench/hello-fastify.ts', port, { PORT: String(port) }, { readyPath: '/' });
      console.log('child ' + hello.pid);
      setInterval(() => {}, 1000);`;
    const bench = spawn(process.execPath, ['--input-type=module', '-e', script], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    bench.stdout.on('data', (d: Buffer) => (out += d.toString()));
    bench.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const exited = new Promise<number | null>((resolve) => bench.once('exit', (code) => resolve(code)));
    let child: number | undefined;
    try {
      await vi.waitFor(() => expect(out, err).toMatch(/child \d+/), { timeout: 60_000, interval: 50 });
      const pid = Number(/child (\d+)/.exec(out)![1]);
      child = pid;
      expect(alive(pid)).toBe(true);
      bench.kill('SIGTERM');
      expect(await exited).toBe(143);
      expect(err).toContain('bench: SIGTERM: stopping the 1 processes it started');
      await vi.waitFor(() => expect(alive(pid)).toBe(false), { timeout: 20_000, interval: 50 });
    } finally {
      bench.kill('SIGKILL');
      if (child !== undefined && alive(child)) process.kill(child, 'SIGKILL'); // what a failing run left
    }
  });
});
