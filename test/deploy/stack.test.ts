/**
 * The deployment, run for real with Docker Engine: the images of ./Dockerfile and the stack of
 * ./docker-compose.yml as users run them (test/deploy/README.md: on stand-ins of the official base
 * images, built here), everything through nginx, then the faults an operator meets: a gateway
 * killed mid-turn, PostgreSQL restarted under traffic, `stop`, `down` and `down -v`.
 *
 * One stack for the whole file, in the order an operator goes: up, use, scale, break, stop, wipe.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile, execFileSync } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { launchChromium, noChromium, signIn } from '../helpers/browser.ts';
import { REPO_ROOT } from '../helpers/processes.ts';
import { ComposeStack, buildImages, imageTag, SERVICE_IMAGES, turn } from './compose-stack.ts';
import { docker, dockerEnv, dockerMissing, dockerOk, ensureStandIns, exec, foundInImages, run, waitFor } from './docker.ts';

const missing = dockerMissing();

/** Secrets a careless build context holds (a filled-in .env, the keys of `npm start`): none may reach an image. */
const CANARY = {
  env: `canary-env-${randomBytes(12).toString('hex')}`,
  internalKey: `canary-key-${randomBytes(12).toString('hex')}`,
  privateKey: `canary-pem-${randomBytes(12).toString('hex')}`,
};

/**
 * The repository as a user's clone after `cp .env.example .env` and a few `npm start`s: every
 * tracked and untracked-but-not-ignored file, plus .env and data/ holding the canaries.
 */
function contextWithSecrets(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'codelab-context-'));
  const files = execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: REPO_ROOT })
    .toString()
    .split('\0')
    .filter(Boolean);
  for (const file of files) {
    if (!existsSync(path.join(REPO_ROOT, file))) continue; // deleted but not yet staged
    mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
    cpSync(path.join(REPO_ROOT, file), path.join(dir, file));
  }
  writeFileSync(path.join(dir, '.env'), `CODELAB_INTERNAL_API_KEY=${CANARY.env}\n`);
  mkdirSync(path.join(dir, 'data/auth/keys'), { recursive: true });
  writeFileSync(path.join(dir, 'data/internal-api-key'), CANARY.internalKey);
  writeFileSync(
    path.join(dir, 'data/auth/keys/private.pem'),
    `-----BEGIN PRIVATE KEY-----\n${CANARY.privateKey}\n-----END PRIVATE KEY-----\n`,
  );
  writeFileSync(path.join(dir, 'services/auth/.env'), `AUTH_SERVICE__MASTER_KEY=${CANARY.env}\n`);
  return dir;
}

describe.skipIf(missing)('the Compose stack behind nginx (Docker Engine)', () => {
  let stack: ComposeStack;
  let token: string;
  const buildSeconds = { images: 0 };
  const acknowledged: { sessionId: string; content: string }[] = [];

  beforeAll(async () => {
    await ensureStandIns();
    const context = contextWithSecrets();
    try {
      buildSeconds.images = await buildImages(context);
    } finally {
      rmSync(context, { recursive: true, force: true });
    }
    // a slow-enough mock for turns to be caught mid-way; the default grace
    stack = await ComposeStack.create({ LLM_PROXY__MOCK_TOKEN_DELAY_MS: '2' });
  }, 30 * 60_000);

  afterAll(async () => {
    if (!stack) return;
    if (process.env.CODELAB_DEPLOY_KEEP === '1') return void process.stderr.write(`kept: docker-compose -p ${stack.project}\n`);
    await stack.destroy();
  }, 120_000);

  it('refuses to start with a placeholder secret and says which', async () => {
    const r = await run(imageTag('auth'), [], {
      containerEnv: {
        AUTH_SERVICE__INTERNAL_API_KEY: 'change-me-internal-api-key',
        AUTH_SERVICE__MASTER_KEY: 'a real one 0123456789',
        AUTH_SERVICE__ENVIRONMENT: 'production',
      },
      timeoutMs: 60_000,
    });
    expect(r.code).not.toBe(0);
    expect(r.stdout + r.stderr).toContain('AUTH_SERVICE__INTERNAL_API_KEY holds a placeholder, not a secret');
    // Compose itself refuses a stack whose secrets are missing, naming the variable
    const config = await stack.compose(['config', '-q'], { env: { POSTGRES_PASSWORD: '' } });
    expect(config.code).not.toBe(0);
    expect(config.stderr).toContain('POSTGRES_PASSWORD');
  }, 120_000);

  it(
    'builds images that run as a non-root user with no secret, key or .env in any layer',
    async () => {
      const images = SERVICE_IMAGES.map(imageTag);
      for (const image of images) {
        const config = JSON.parse(await dockerOk(['image', 'inspect', '-f', '{{json .Config}}', image])) as {
          User: string;
          Healthcheck?: { Test: string[] };
          Env: string[];
        };
        expect(config.User, image).toBe('node');
        expect(config.Healthcheck?.Test.join(' '), image).toContain('/health');
        expect(config.Env.join('\n'), image).not.toMatch(/KEY=|PASSWORD=|SECRET=/);
      }
      expect(await foundInImages(images, Object.values(CANARY))).toEqual([]);
      // and no test file, .env or data directory was copied in
      const listing = await run(
        imageTag('runtime'),
        ['sh', '-c', 'find /app -name "*.test.ts" -o -name .env -o -name "*.pem" -o -path /app/data | grep -v /node_modules/ || true'],
        { timeoutMs: 60_000 },
      );
      expect(listing.stdout.trim()).toBe('');
    },
    10 * 60_000,
  );

  it(
    'goes from nothing to all healthy; through nginx: token, JWKS, health and a streamed conversation',
    async () => {
      const seconds = await stack.up();
      process.stderr.write(`deploy: images built in ${buildSeconds.images.toFixed(1)} s; up to healthy in ${seconds.toFixed(1)} s\n`);
      for (const p of ['/nginx-health', '/gateway-health', '/auth-health', '/web-health', '/gateway-ready', '/auth-ready'])
        expect((await fetch(`${stack.url}${p}`)).status, p).toBe(200);
      expect(((await (await fetch(`${stack.url}/gateway-health`)).json()) as { service: string }).service).toBe('gateway');
      expect(((await (await fetch(`${stack.url}/auth-health`)).json()) as { service: string }).service).toBe('auth');
      const jwks = (await (await fetch(`${stack.url}/.well-known/jwks.json`)).json()) as { keys: { kid: string; kty: string }[] };
      expect(jwks.keys.length).toBeGreaterThan(0);
      expect(jwks.keys[0]!.kty).toBe('RSA');
      const pgReady = await stack.compose(['exec', '-T', 'postgres', 'pg_isready']);
      expect(pgReady.code, pgReady.stdout + pgReady.stderr).toBe(0);

      token = await stack.adminToken();
      const sessionId = `deploy-${randomUUID()}`;
      const client = await stack.connect(token, sessionId);
      const t = await turn(client, 'hello through nginx [[mock:words 5]]');
      expect(t.final).toMatchObject({ type: 'assistant_message', is_final: true, content: 'w0 w1 w2 w3 w4' });
      expect(
        t.frames
          .filter((f) => f.is_final === false)
          .map((f) => f.token)
          .join(''),
      ).toBe('w0 w1 w2 w3 w4');
      acknowledged.push({ sessionId, content: 'hello through nginx [[mock:words 5]]' });
      client.close();
      // an unknown file answers the platform's JSON error, not nginx's page; the
      // services' own endpoints are not reachable from outside
      for (const p of ['/nope.php', '/metrics', '/ready']) {
        const res = await fetch(`${stack.url}${p}`);
        expect(res.status, p).toBe(404);
        expect(((await res.json()) as { error: { code: string } }).error.code, p).toMatch(/NOT_FOUND/);
      }
    },
    10 * 60_000,
  );

  it.skipIf(noChromium)(
    'serves the website at / through nginx (headless Chromium): sign in, an answer streamed on the same origin, every service ready in the operations view, the docs',
    async () => {
      const page = await fetch(`${stack.url}/`);
      expect(page.status).toBe(200);
      expect(page.headers.get('content-type')).toMatch(/^text\/html/);
      expect((await (await fetch(`${stack.url}/config.json`)).json()) as { authUrl: string; gatewayUrl: string }).toMatchObject({
        authUrl: '',
        gatewayUrl: '',
      });
      const browser = await launchChromium();
      try {
        const tab = await signIn(browser, stack.url, 'admin', stack.secrets.AUTH_SERVICE__MASTER_KEY);
        const origins = new Set<string>();
        tab.on('request', (r) => origins.add(new URL(r.url()).origin));
        await tab.getByTestId('new-conversation').click();
        await tab.getByTestId('message-input').fill('hello from a browser [[mock:words 12]]');
        await tab.getByTestId('send').click();
        const words = Array.from({ length: 12 }, (_, i) => `w${i}`).join(' ');
        await expect.poll(async () => tab.getByTestId('assistant-message').last().textContent(), { timeout: 60_000 }).toBe(words);

        await tab.getByTestId('nav-ops').click();
        for (const service of ['auth', 'gateway', 'runtime', 'llm-proxy'])
          await expect
            .poll(async () => tab.locator(`[data-testid="ops-services"] tr[data-service="${service}"]`).textContent(), { timeout: 30_000 })
            .toMatch(/healthy \(200\)ready \(200\)none/);
        await tab.getByTestId('ops-metrics').waitFor();
        mkdirSync(path.join(REPO_ROOT, 'test-results', 'web'), { recursive: true });
        await tab.screenshot({ path: path.join(REPO_ROOT, 'test-results', 'web', 'operations-compose.png'), fullPage: true });

        await tab.getByRole('link', { name: 'Docs' }).click();
        await expect.poll(async () => tab.getByTestId('docs-content').textContent(), { timeout: 30_000 }).toContain('CodeLab Platform');
        // everything the page asked for went to nginx: the page's own origin (no CORS in the stack)
        expect([...origins]).toEqual([stack.url]);
      } finally {
        await browser.close();
      }
    },
    5 * 60_000,
  );

  it('runs its services as `node` on a read-only root filesystem without capabilities, nginx read-only too', async () => {
    const states = await stack.states();
    expect(states.map((x) => x.service).sort()).toEqual([...SERVICE_IMAGES, 'nginx', 'postgres', 'redis'].sort());
    for (const x of states) {
      const [c] = JSON.parse(await dockerOk(['inspect', x.id])) as {
        Config: { User: string };
        HostConfig: { ReadonlyRootfs: boolean; CapDrop: string[] | null; SecurityOpt: string[] | null };
      }[];
      if (!SERVICE_IMAGES.includes(x.service as (typeof SERVICE_IMAGES)[number])) {
        if (x.service === 'nginx') expect(c!.HostConfig.ReadonlyRootfs, x.name).toBe(true);
        continue;
      }
      expect([c!.Config.User, c!.HostConfig.ReadonlyRootfs, c!.HostConfig.CapDrop, c!.HostConfig.SecurityOpt], x.name).toEqual([
        'node',
        true,
        ['ALL'],
        ['no-new-privileges:true'],
      ]);
      // and the kernel agrees: not even a directory the image gave to `node` can be written, /tmp can
      const probe = await exec(
        x.id,
        ['sh', '-c', 'touch /app/.compile-cache/probe 2>&1; echo $?; touch /tmp/probe && echo tmp-ok; id -u'],
        {
          timeoutMs: 30_000,
        },
      );
      expect(probe.stdout, x.name).toMatch(/Read-only file system\n1\ntmp-ok\n1000\n$/);
    }
  }, 120_000);

  it(
    'scales to 3 gateways and 2 runtimes: 30 concurrent conversations through nginx, none fails, every one counted by a gateway',
    async () => {
      await stack.up(['--scale', 'gateway=3', '--scale', 'runtime=2']);
      const gateways = await stack.ids('gateway');
      expect(gateways).toHaveLength(3);
      expect(await stack.ids('runtime')).toHaveLength(2);
      const received = async (): Promise<number[]> =>
        Promise.all(
          gateways.map(async (id) => {
            const { body } = await stack.inside(id, 'gateway', '/metrics');
            return Number(/^gateway_ws_messages_total\{direction="in",type="user_message"\} (\d+)/m.exec(body)?.[1] ?? 0);
          }),
        );
      const before = await received();
      const results = await Promise.all(
        Array.from({ length: 30 }, async (_, i) => {
          const sessionId = `scale-${i}-${randomUUID()}`;
          const client = await stack.connect(token, sessionId);
          try {
            const content = `conversation ${i} [[mock:words 20]]`;
            const t = await turn(client, content);
            if (t.final.type === 'assistant_message') acknowledged.push({ sessionId, content });
            return t.final;
          } finally {
            client.close();
          }
        }),
      );
      expect(results.filter((f) => f.type !== 'assistant_message')).toEqual([]);
      const after = await received();
      const perGateway = after.map((n, i) => n - before[i]!);
      expect(perGateway.reduce((a, b) => a + b, 0)).toBe(30);
      // Not asserted, because it does not hold yet (a known defect, issue 14's note of 2026-12-03):
      // that all three gateways get some. nginx (open source before 1.27.3) resolves `gateway` per
      // worker and starts each request's round robin afresh, so each worker sends every new
      // connection to the first address of its cached answer for the resolver's 5 s: runs show
      // 14/0/16 or 16/0/14. Balancing across replicas needs `upstream { zone; server gateway:8000
      // resolve; }` (nginx >= 1.27.3) or another balancer; this test gets the assertion back then.
      process.stderr.write(`deploy: user messages per gateway: ${perGateway.join(', ')}\n`);
    },
    10 * 60_000,
  );

  it(
    'debug-info reports the stack (every replica ready, nginx, PostgreSQL, Redis) without a secret',
    async () => {
      const out = await new Promise<string>((resolve, reject) => {
        execFile(
          'bash',
          [
            path.join(REPO_ROOT, 'scripts/debug-info.sh'),
            '--mode',
            'compose',
            '-p',
            stack.project,
            '-f',
            path.join(REPO_ROOT, 'docker-compose.yml'),
            '--nginx-url',
            stack.url,
          ],
          {
            env: dockerEnv({ ...stack.env, NGINX_BIND_ADDRESS: '127.0.0.1' }),
            cwd: REPO_ROOT,
            maxBuffer: 64 * 1024 * 1024,
            timeout: 5 * 60_000,
          },
          (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout)),
        );
      });
      expect(out).toContain('Compose stack: found (11 containers)');
      expect(out).toMatch(/problems seen: none/);
      expect(out.match(/^\S*gateway\S* \/ready 200 /gm) ?? [], out).toHaveLength(3);
      expect(out).toContain(`${stack.url}/gateway-health 200`);
      for (const [name, value] of Object.entries(stack.secrets)) expect(out.includes(value), `${name} in the report`).toBe(false);
      expect(out.includes(token), 'the access token in the report').toBe(false);
    },
    6 * 60_000,
  );

  it(
    'kills the gateway of a conversation mid-turn: the client resumes through nginx with last_seq and gets every frame once',
    async () => {
      const sessionId = `kill-${randomUUID()}`;
      const first = await stack.connect(token, sessionId);
      first.send({ type: 'user_message', content: 'a long answer [[mock:words 300]] [[mock:token_delay 50]]' });
      await first.until((f) => typeof f.token === 'string' && (f.seq as number) >= 5);
      // the gateway holding the connection: the one with an open WebSocket
      const gateways = await stack.ids('gateway');
      const open = await Promise.all(
        gateways.map(async (id) =>
          Number(/^gateway_ws_connections (\d+)/m.exec((await stack.inside(id, 'gateway', '/metrics')).body)?.[1] ?? 0),
        ),
      );
      expect(open.filter((n) => n === 1)).toHaveLength(1);
      const victim = gateways[open.indexOf(1)]!;
      await dockerOk(['kill', victim]);
      await first.closed();
      const lastSeq = Math.max(...first.frames.map((f) => f.seq as number).filter(Number.isFinite));
      // on a machine slow enough the turn ends before the kill lands: then there is nothing to resume
      const endedBeforeKill = first.frames.some((f) => f.is_final === true);

      const second = await stack.connect(token, sessionId, lastSeq);
      const rest = endedBeforeKill
        ? []
        : await second
            .until((f) => f.is_final === true, 0, 120_000)
            .catch(async (err: Error) => {
              // what the services saw, to tell a slow machine from a lost turn
              const logs = await stack.compose(['logs', '--no-color', '--tail', '60', 'runtime', 'gateway']);
              throw new Error(
                `${err.message}\nfirst client's frames: ${JSON.stringify(first.frames.slice(-3))}\n${logs.stdout.slice(-15_000)}`,
              );
            });
      const seqs = [...first.frames, ...rest].map((f) => f.seq as number);
      expect(seqs).toEqual(seqs.map((_, i) => i + 1)); // every frame exactly once, in order
      const final = [...first.frames, ...rest].at(-1)!;
      expect(final).toMatchObject({ type: 'assistant_message', is_final: true });
      const words = [...first.frames, ...rest]
        .filter((f) => f.is_final === false)
        .map((f) => f.token)
        .join('');
      expect(words).toBe(final.content);
      acknowledged.push({ sessionId, content: 'a long answer [[mock:words 300]] [[mock:token_delay 50]]' });
      second.close();
      // a killed container stays down (Docker's restart policy ignores `docker kill`); up brings it back
      expect((await stack.states('gateway')).filter((s) => s.running)).toHaveLength(2);
      await stack.up(['--scale', 'gateway=3', '--scale', 'runtime=2']);
      expect((await stack.states('gateway')).filter((s) => s.running)).toHaveLength(3);
    },
    8 * 60_000,
  );

  it(
    'restarts postgres during conversations: /ready names postgres while it is down, nothing acknowledged is lost, no service restarts',
    async () => {
      await stack.up(['--scale', 'gateway=3', '--scale', 'runtime=2']); // as the test before left it (or should have)
      const before = new Map((await stack.states()).map((s) => [s.id, s]));
      const runtimes = await stack.ids('runtime');
      let stop = false;
      const outcomes: string[] = [];
      const loops = Array.from({ length: 4 }, async (_, i) => {
        const sessionId = `pg-${i}-${randomUUID()}`;
        const client = await stack.connect(token, sessionId);
        for (let n = 0; !stop; n++) {
          const content = `turn ${n} of loop ${i} [[mock:words 10]]`;
          try {
            const t = await turn(client, content);
            outcomes.push(String(t.final.type === 'assistant_message' ? 'ok' : t.final.code));
            if (t.final.type === 'assistant_message') acknowledged.push({ sessionId, content });
          } catch (err) {
            outcomes.push(`no final frame: ${(err as Error).message.slice(0, 200)}`);
            break;
          }
        }
        client.close();
      });
      await waitFor('a few turns before the restart', async () => outcomes.length >= 8, 60_000);
      await stack.composeOk(['stop', 'postgres']);
      await waitFor(
        'the runtime reports postgres failing',
        async () => {
          const ready = await stack.inside(runtimes[0]!, 'runtime', '/ready');
          return ready.status === 503 && (JSON.parse(ready.body) as { failed: string[] }).failed.includes('postgres');
        },
        60_000,
      );
      const failing = outcomes.length;
      await stack.composeOk(['start', 'postgres']);
      await stack.waitHealthy();
      for (const id of runtimes) {
        await waitFor(
          `runtime ${id.slice(0, 12)} ready again`,
          async () => (await stack.inside(id, 'runtime', '/ready')).status === 200,
          60_000,
        );
      }
      await waitFor('turns after the restart', async () => outcomes.slice(failing).filter((o) => o === 'ok').length >= 8, 120_000);
      stop = true;
      await Promise.all(loops);
      // every turn ended with a final frame (an answer, or a clear error while the database was away)
      expect(outcomes.filter((o) => o.startsWith('no final frame'))).toEqual([]);
      // no service container restarted or was replaced
      for (const s of await stack.states()) {
        if (s.service === 'postgres') continue;
        const was = before.get(s.id);
        expect(was, `${s.name} is new`).toBeDefined();
        expect(s.startedAt, `${s.name} restarted`).toBe(was!.startedAt);
        expect(s.restarts, `${s.name} restarted`).toBe(0);
      }
      await expectAcknowledgedKept(stack, token, acknowledged);
    },
    10 * 60_000,
  );

  it(
    'keeps the data over down + up (users, keys, sessions) and stop drains a turn in flight with close 1001',
    async () => {
      await stack.composeOk(['down']);
      expect((await stack.volumes()).length).toBeGreaterThanOrEqual(3);
      await stack.up();
      // the token from before still verifies (the auth keys volume) and the history is there
      await expectAcknowledgedKept(stack, token, acknowledged);
      token = await stack.adminToken();

      const client = await stack.connect(token, `drain-${randomUUID()}`);
      client.send({ type: 'user_message', content: 'a long answer [[mock:words 200]] [[mock:token_delay 20]]' });
      await client.until((f) => typeof f.token === 'string');
      const gateway = (await stack.ids('gateway'))[0]!;
      const stopped = stack.compose(['stop', 'gateway']);
      const code = await client.closed();
      expect(code).toBe(1001);
      const final = client.frames.find((f) => f.is_final === true);
      expect(final, 'the turn ended or got an error frame before the close').toBeDefined();
      expect((await stopped).code).toBe(0);
      // it exited by itself within the grace period, not killed at its end
      const [state] = await stack.states('gateway');
      expect(state?.id.startsWith(gateway) || state?.id === gateway).toBe(true);
      expect(state?.exitCode, 'exit code of the stopped gateway (137: killed after the grace period)').toBe(0);
    },
    10 * 60_000,
  );

  it('has no secret in any container log', async () => {
    const logs = await stack.logs();
    expect(logs.length).toBeGreaterThan(1000);
    for (const [name, value] of Object.entries(stack.secrets)) expect(logs.includes(value), `${name} in the logs`).toBe(false);
    expect(logs.includes(token), 'an access token in the logs').toBe(false);
  }, 120_000);

  it(
    'down -v wipes it: containers, network and volumes',
    async () => {
      await stack.composeOk(['down', '-v']);
      expect(await stack.volumes()).toEqual([]);
      expect(await stack.ids()).toEqual([]);
      const networks = await docker(['network', 'inspect', stack.project]);
      expect(networks.code).not.toBe(0);
    },
    5 * 60_000,
  );
});

async function expectAcknowledgedKept(
  stack: ComposeStack,
  token: string,
  acknowledged: { sessionId: string; content: string }[],
): Promise<void> {
  const bySession = new Map<string, string[]>();
  for (const a of acknowledged) bySession.set(a.sessionId, [...(bySession.get(a.sessionId) ?? []), a.content]);
  for (const [sessionId, contents] of bySession) {
    const res = await fetch(`${stack.url}/api/v1/sessions/${sessionId}/history`, { headers: { authorization: `Bearer ${token}` } });
    expect(res.status, `history of ${sessionId}`).toBe(200);
    const { messages } = (await res.json()) as { messages: { role: string; content: string }[] };
    const users = messages.filter((m) => m.role === 'user').map((m) => m.content);
    for (const c of contents) expect(users, `${sessionId} lost "${c}"`).toContain(c);
  }
}
