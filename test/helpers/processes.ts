/**
 * Services as real processes (`node services/<name>/src/main.ts`), for tests of what
 * only a process shows: tracing across processes, signals and exit codes, the launcher.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, waitForHttp } from '@codelab/service-kit/testing';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

export const PREFIX = { auth: 'AUTH_SERVICE', gateway: 'GATEWAY', runtime: 'AGENT_RUNTIME', 'llm-proxy': 'LLM_PROXY' } as const;
export type ServiceName = keyof typeof PREFIX;

export interface RunningProcess {
  name: string;
  url: string;
  child: ChildProcess;
  output(): string;
  /** Sends a signal and resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  exited(): Promise<number | null>;
}

export function runProcess(args: string[], env: Record<string, string>): { child: ChildProcess; output: () => string; exited: () => Promise<number | null> } {
  const child = spawn(process.execPath, args, {
    cwd: REPO_ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', NO_COLOR: '1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, output: () => out, exited: () => exit };
}

export async function startProcess(name: ServiceName, env: Record<string, string>): Promise<RunningProcess> {
  const port = await freePort();
  const p = runProcess([`services/${name}/src/main.ts`], { [`${PREFIX[name]}__PORT`]: String(port), ...env });
  const url = `http://127.0.0.1:${port}`;
  try {
    await Promise.race([
      waitForHttp(`${url}/health`, 60_000),
      p.exited().then((code) => Promise.reject(new Error(`${name} exited with ${code}:\n${p.output()}`))),
    ]);
  } catch (err) {
    p.child.kill('SIGKILL');
    throw err;
  }
  return {
    name,
    url,
    child: p.child,
    output: p.output,
    exited: p.exited,
    stop: async (signal = 'SIGTERM') => {
      if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill(signal);
      return p.exited();
    },
  };
}
