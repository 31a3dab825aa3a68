/**
 * `npm start` as a newcomer runs it: all four services on embedded defaults (PGlite, mock LLM, no
 * Redis), healthy in time, a real turn, history that survives a restart, every /metrics accepted
 * by promtool, and a clean exit on SIGTERM.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { findProgram, freePort, missingProgram } from '@codelab/service-kit/testing';
import { FrameClient, passwordToken } from '../helpers/stack.ts';
import { runProcess } from '../helpers/processes.ts';

const noPromtool = missingProgram('promtool', 'prometheus');

describe('npm start (scripts/start.ts) on embedded defaults', () => {
  let dataDir: string;
  let env: Record<string, string>;
  let ports: Record<'gateway' | 'auth' | 'runtime' | 'llm', number>;

  beforeAll(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'codelab-start-'));
    ports = { gateway: await freePort(), auth: await freePort(), runtime: await freePort(), llm: await freePort() };
    env = {
      CODELAB_DATA_DIR: dataDir,
      GATEWAY__PORT: String(ports.gateway),
      AUTH_SERVICE__PORT: String(ports.auth),
      AGENT_RUNTIME__PORT: String(ports.runtime),
      LLM_PROXY__PORT: String(ports.llm),
      LLM_PROXY__MOCK_TTFT_MS: '0',
      LLM_PROXY__MOCK_TOKEN_DELAY_MS: '0',
    };
  });

  const start = async () => {
    const launcher = runProcess(['scripts/start.ts'], env);
    const started = Date.now();
    while (!/CodeLab Platform is up/.test(launcher.output())) {
      if (launcher.child.exitCode !== null) throw new Error(`launcher exited ${launcher.child.exitCode}:\n${launcher.output()}`);
      if (Date.now() - started > 60_000) throw new Error(`not up in 60 s:\n${launcher.output()}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    return { launcher, seconds: (Date.now() - started) / 1000 };
  };
  const url = (name: keyof typeof ports) => `http://127.0.0.1:${ports[name]}`;

  let sessionId: string;
  let finalContent: string;
  let token: string;

  it('starts all four services healthy within 30 s and says where they listen and how to get a token', async () => {
    const { launcher, seconds } = await start();
    try {
      expect(seconds).toBeLessThan(30);
      for (const name of ['gateway', 'auth', 'runtime', 'llm'] as const) {
        const res = await fetch(`${url(name)}/health`);
        expect(res.status).toBe(200);
      }
      const lastLine = launcher.output().trim().split('\n').at(-1)!;
      expect(lastLine).toContain(`gateway http://127.0.0.1:${ports.gateway}`);
      expect(lastLine).toContain(`/oauth/token`);
      expect(lastLine).toContain('admin-password');
      // every service logs readable lines prefixed with its name, and no secret
      for (const name of ['gateway', 'auth', 'runtime', 'llm-proxy']) expect(launcher.output()).toMatch(new RegExp(`^${name}\\s*\\|`, 'm'));

      const password = (await readFile(path.join(dataDir, 'auth', 'admin-password'), 'utf8')).trim();
      expect(launcher.output()).not.toContain(password);
      token = await passwordToken(url('auth'), 'admin', password);
      sessionId = `start-${randomUUID()}`;
      const client = new FrameClient(`ws://127.0.0.1:${ports.gateway}/api/v1/ws/${sessionId}`, { authorization: `Bearer ${token}` });
      await client.open();
      client.send({ type: 'user_message', content: 'hello from a fresh clone', role: 'user' });
      const frames = await client.until((f) => f.is_final === true);
      expect(frames.filter((f) => f.token).length).toBeGreaterThanOrEqual(5);
      finalContent = String(frames.at(-1)!.content);
      client.close();

      // the gateway exposes WebSocket connections and frames by type; runtime and auth their pools
      const scrape = async (name: keyof typeof ports) => (await fetch(`${url(name)}/metrics`)).text();
      const gw = await scrape('gateway');
      expect(gw).toMatch(/^gateway_ws_connections \d+$/m);
      expect(gw).toMatch(/^gateway_ws_messages_total\{direction="in",type="user_message"\} 1$/m);
      expect(gw).toMatch(/^gateway_ws_messages_total\{direction="out",type="assistant_message"\} \d+$/m);
      for (const [name, service] of [['runtime', 'runtime'], ['auth', 'auth']] as const) {
        const text = await scrape(name);
        for (const state of ['idle', 'used']) expect(text).toMatch(new RegExp(`^db_client_connections\\{service="${service}",pool="${service}",state="${state}"\\} \\d+$`, 'm'));
        expect(text).toMatch(new RegExp(`^db_client_connection_pending_requests\\{service="${service}",pool="${service}"\\} \\d+$`, 'm'));
        expect(text).toMatch(new RegExp(`^db_client_connections_max\\{service="${service}",pool="${service}"\\} [1-9]\\d*$`, 'm'));
      }

      if (!noPromtool) {
        for (const name of ['gateway', 'auth', 'runtime', 'llm'] as const) {
          const text = await (await fetch(`${url(name)}/metrics`)).text();
          const file = path.join(dataDir, `${name}.prom`);
          await writeFile(file, text);
          // promtool exits non-zero on any lint problem; execFileSync throws with its output.
          execFileSync(findProgram('promtool')!, ['check', 'metrics'], { input: text, encoding: 'utf8' });
        }
      }
    } finally {
      launcher.child.kill('SIGTERM');
      expect(await launcher.exited()).toBe(0);
    }
  }, 120_000);

  it('keeps the conversation across a stop and start', async () => {
    expect(sessionId).toBeDefined();
    const { launcher } = await start();
    try {
      const res = await fetch(`${url('gateway')}/api/v1/sessions/${sessionId}/history`, { headers: { authorization: `Bearer ${token}` } });
      expect(res.status).toBe(200);
      const body = (await res.json()) as { messages: { role: string; content: string }[] };
      expect(body.messages.map((m) => [m.role, m.content])).toEqual([
        ['user', 'hello from a fresh clone'],
        ['assistant', finalContent],
      ]);
    } finally {
      launcher.child.kill('SIGTERM');
      expect(await launcher.exited()).toBe(0);
    }
  }, 120_000);
});
