/**
 * Faults on the running stack (issue 14): the Compose stack as users scale it (three gateways, two
 * runtimes, nginx, PostgreSQL, Redis, the llm-proxy on the mock) with Prometheus and Alertmanager
 * beside it (docker-compose.observability.yml) on a clock SCALE times faster, Alertmanager's webhooks
 * going to a receiver here. Each row breaks one thing while the chat load profile (the Node driver)
 * and a few witness conversations run, heals it, and checks at once what the clients saw, what the
 * database kept and what the on-call engineer was told (fired, then resolved).
 *
 * Run with `npm run test:faults` (vitest.faults.config.ts), alone on the machine: a second stack at
 * the same time would make the faults' timings the machine's. Not yet part of `npm test` / .ci/run.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort } from '@codelab/service-kit/testing';
import { ComposeStack, buildImages } from './compose-stack.ts';
import { dockerMissing, dockerOk, ensureStandIns, runCommand, waitFor } from './docker.ts';
import { AlertReceiver, query, writeObservabilityOverlay } from './faults/alerting.ts';
import { ChatLoad, type ChatLoadFigures } from './faults/chat-load.ts';
import { Witnesses } from './faults/witness.ts';
import WebSocket from 'ws';

const missing = dockerMissing();

/** Rule windows, `for`s, scrape, evaluation and discovery intervals are divided by this. */
const SCALE = 20;
const SCALE_OUT = ['--scale', 'gateway=3', '--scale', 'runtime=2'];
const SERVICES_UP = [...SCALE_OUT, 'nginx', 'prometheus', 'alertmanager'];
/** Every service's targets Prometheus must see up before a row starts. */
const TARGETS = { gateway: 3, runtime: 2, 'llm-proxy': 1, auth: 1 };

interface RowFigures {
  fault: string;
  witnessTurns: number;
  witnessFailed: number;
  failedOutcomes: string[];
  load: ChatLoadFigures;
  framesLost: number;
  recoverySeconds: number;
  alert: string;
  firedAfterSeconds?: number;
  resolvedAfterSeconds?: number;
}

const s = (ms: number) => Math.round(ms / 100) / 10;

describe.skipIf(missing)('faults on the running stack, under load, with alerts', () => {
  let stack: ComposeStack;
  let token = '';
  let prometheusUrl = '';
  const receiver = new AlertReceiver();
  const dir = mkdtempSync(path.join(tmpdir(), 'codelab-faults-'));
  const figures: RowFigures[] = [];

  beforeAll(async () => {
    await ensureStandIns();
    await buildImages();
    await receiver.start();
    const prometheusPort = await freePort();
    const overlay = writeObservabilityOverlay(dir, {
      scale: SCALE,
      receiverPort: receiver.port,
      prometheusPort,
      alertmanagerPort: await freePort(),
    });
    prometheusUrl = `http://127.0.0.1:${prometheusPort}`;
    stack = await ComposeStack.create({ ...overlay.env, LLM_PROXY__MOCK_TOKEN_DELAY_MS: '2' }, overlay.files);
    const seconds = await stack.up(SERVICES_UP);
    process.stderr.write(`faults: stack up in ${seconds.toFixed(1)} s\n`);
    token = await stack.adminToken();
  }, 30 * 60_000);

  afterAll(async () => {
    receiver.close();
    if (figures.length) process.stderr.write(`faults: figures\n${JSON.stringify(figures, null, 2)}\n`);
    if (!stack) return;
    if (process.env.CODELAB_DEPLOY_KEEP === '1') return void process.stderr.write(`kept: docker-compose -p ${stack.project}\n`);
    await stack.destroy();
    rmSync(dir, { recursive: true, force: true });
  }, 120_000);

  /** Every target of every service scraped and up (after a heal: the stack is whole again). */
  async function allTargetsUp(timeoutMs = 120_000): Promise<void> {
    await waitFor(
      `Prometheus scrapes every target (${JSON.stringify(TARGETS)})`,
      async () => {
        const up = await query(prometheusUrl, 'count by (job) (up == 1)');
        const byJob = Object.fromEntries(up.map((r) => [r.metric.job, Number(r.value[1])]));
        return Object.entries(TARGETS).every(([job, n]) => byJob[job] === n);
      },
      timeoutMs,
      500,
    );
  }

  /** Witness conversations and the chat load, until `end()`. */
  async function traffic(name: string, answer = '[[mock:words 40]] [[mock:token_delay 10]]') {
    const witnesses = new Witnesses(4, stack.ws, () => token);
    const script = { answer };
    witnesses.start((i, n) => `${name} ${i}.${n} ${script.answer}`);
    const load = new ChatLoad(mkdtempSync(path.join(dir, 'load-')));
    await load.start({ url: stack.url, password: stack.secrets.AUTH_SERVICE__MASTER_KEY });
    const started = Date.now();
    await waitFor(`${name}: witness turns before the fault`, async () => witnesses.count(started) >= 4, 120_000);
    return {
      witnesses,
      /** What the witnesses' next messages ask the mock LLM for (fault injection by directive). */
      script,
      async end(): Promise<ChatLoadFigures> {
        await witnesses.stop();
        witnesses.close();
        return load.stop();
      },
    };
  }

  type Traffic = Awaited<ReturnType<typeof traffic>>;

  /** Every numbered frame of every witness once, none missing; every acknowledged message stored; no partial answer stored. */
  async function expectNothingLost(witnesses: Witnesses): Promise<number> {
    let lost = 0;
    for (const c of witnesses.conversations) {
      const { duplicates, missing } = c.seqProblems();
      lost += missing.length;
      expect({ session: c.sessionId, duplicates, missing }).toEqual({ session: c.sessionId, duplicates: [], missing: [] });
    }
    const ids = witnesses.conversations.map((c) => `'${c.sessionId}'`).join(',');
    const rows = (
      await stack.composeOk([
        'exec',
        '-T',
        'postgres',
        'psql',
        '-U',
        'codelab',
        '-d',
        'codelab',
        '-AtF',
        '\t',
        '-c',
        `SELECT session_id, role, coalesce(content, '') FROM messages WHERE session_id IN (${ids}) ORDER BY session_id, seq`,
      ])
    )
      .split('\n')
      .filter(Boolean)
      .map((l) => l.split('\t') as [string, string, string]);
    for (const c of witnesses.conversations) {
      const stored = rows.filter((r) => r[0] === c.sessionId);
      const users = stored.filter((r) => r[1] === 'user').map((r) => r[2]);
      for (const t of c.turns.filter((x) => x.acknowledged)) expect(users, `${c.sessionId} lost "${t.content}"`).toContain(t.content);
      const answers = new Set(c.turns.filter((t) => t.outcome === 'assistant_message').map((t) => t.finalContent));
      for (const r of stored.filter((x) => x[1] === 'assistant'))
        expect(answers.has(r[2]), `${c.sessionId}: a stored answer no client saw complete: "${r[2].slice(0, 80)}"`).toBe(true);
    }
    return lost;
  }

  interface Row {
    fault: string;
    /** Breaks it; returns the labels of the alert that must fire (undefined: none expected). */
    inject: (t: Traffic) => Promise<Record<string, string> | undefined>;
    /** Checks while it is broken (after the alert fired). */
    during?: () => Promise<void>;
    heal: (t: Traffic) => Promise<void>;
    /** Witness outcomes accepted besides an answer (error codes, as `error:CODE`). */
    mayFail?: (outcome: string) => boolean;
    answer?: string;
  }

  /**
   * One row of the fault matrix: traffic, the fault, its alert firing, checks during it, the heal,
   * the stack whole again with answers flowing, the alert resolved, then the clients' logs and the
   * database checked. Resolves with the witnesses (row-specific checks) after recording its figures.
   */
  async function row(r: Row): Promise<Witnesses> {
    await allTargetsUp();
    const t = await traffic(r.fault.replace(/\W+/g, '-'), r.answer);
    const faultAt = Date.now();
    let healed = false;
    let ended = false;
    try {
      const alert = await r.inject(t);
      const notified = async (status: 'firing' | 'resolved', since: number): Promise<number> => {
        await waitFor(`${JSON.stringify(alert)} ${status}`, async () => receiver.seen(alert!, status, since) !== undefined, 180_000).catch(
          (err: Error) => {
            throw new Error(`${err.message}; notifications since the fault: ${receiver.summary(faultAt)}`);
          },
        );
        return receiver.seen(alert!, status, since)!;
      };
      const firedAt = alert ? await notified('firing', faultAt) : undefined;
      await r.during?.();
      const healedAt = Date.now();
      healed = true;
      await r.heal(t);
      await allTargetsUp();
      await waitFor(`${r.fault}: answers after the heal`, async () => t.witnesses.count(healedAt) >= 4, 180_000);
      const resolvedAt = alert ? await notified('resolved', healedAt) : undefined;
      ended = true;
      const load = await t.end();
      const turns = t.witnesses.turns;
      const failed = turns.filter((x) => x.outcome !== 'assistant_message');
      expect(
        failed.filter((x) => !r.mayFail?.(x.outcome)).map((x) => `${x.content}: ${x.outcome}${x.detail ? ` (${x.detail})` : ''}`),
        'witness turns with an outcome this fault does not explain',
      ).toEqual([]);
      const framesLost = await expectNothingLost(t.witnesses);
      const firstAnswer = (since: number) =>
        Math.min(...turns.filter((x) => x.sentAt >= since && x.outcome === 'assistant_message').map((x) => x.endedAt)) - since;
      figures.push({
        fault: r.fault,
        witnessTurns: turns.length,
        witnessFailed: failed.length,
        failedOutcomes: [...new Set(failed.map((x) => x.outcome))],
        load,
        framesLost,
        recoverySeconds: s(firstAnswer(healedAt)),
        alert: alert?.alertname ?? '—',
        firedAfterSeconds: firedAt === undefined ? undefined : s(firedAt - faultAt),
        resolvedAfterSeconds: resolvedAt === undefined ? undefined : s(resolvedAt - healedAt),
      });
      return t.witnesses;
    } finally {
      // a row that failed half-way leaves the stack whole for the next one
      if (!healed) await r.heal(t).catch(() => undefined);
      if (!ended) await t.end().catch(() => undefined);
    }
  }

  const ipOf = async (container: string): Promise<string> =>
    (await dockerOk(['inspect', '-f', '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}', container])).trim();

  /** The replica of a service that carries the most conversations now. */
  async function busiest(service: 'gateway' | 'runtime'): Promise<{ id: string; ip: string }> {
    const ids = await stack.ids(service);
    let id = ids[0]!;
    // the one with the most open WebSockets (gateway) or turns running (runtime)
    const gauge = service === 'gateway' ? /^gateway_ws_connections (\d+)/m : /^runtime_active_turns (\d+)/m;
    const load = await Promise.all(ids.map(async (c) => Number(gauge.exec((await stack.inside(c, service, '/metrics')).body)?.[1] ?? 0)));
    id = ids[load.indexOf(Math.max(...load))]!;
    return { id, ip: await ipOf(id) };
  }

  it(
    'a gateway killed mid-turn: its clients resume through nginx with last_seq and get every frame once; nothing lost; the missing-target page fires, then resolves once it is back',
    async () => {
      const witnesses = await row({
        fault: 'gateway killed mid-turn',
        inject: async () => {
          const victim = await busiest('gateway');
          await dockerOk(['kill', victim.id]);
          return { alertname: 'CodelabTargetMissing', job: 'gateway' };
        },
        heal: async () => void (await stack.up(SERVICES_UP)),
      });
      expect(
        witnesses.turns.some((x) => x.connections > 1),
        'a witness lost its gateway and resumed its turn on another',
      ).toBe(true);
    },
    10 * 60_000,
  );

  it(
    'a runtime killed mid-turn: its turns end with an error frame, the next turn on the session is answered; user messages kept, no partial answer stored; the missing-target page fires, then resolves',
    async () => {
      const witnesses = await row({
        fault: 'runtime killed mid-turn',
        inject: async () => {
          const victim = await busiest('runtime');
          await dockerOk(['kill', victim.id]);
          return { alertname: 'CodelabTargetMissing', job: 'runtime' };
        },
        heal: async () => void (await stack.up(SERVICES_UP)),
        mayFail: (o) => /^error:(RT_ERR_TURN_INTERRUPTED|GW_ERR_STREAM_INTERRUPTED|GW_ERR_RUNTIME_UNAVAILABLE)$/.test(o),
        // turns of 4 s: the runtime killed holds some witness turns
        answer: '[[mock:words 200]] [[mock:token_delay 20]]',
      });
      expect(
        witnesses.turns.filter((x) => x.outcome !== 'assistant_message').length,
        'witness turns the killed runtime held ended with an error frame',
      ).toBeGreaterThan(0);
      // every conversation whose turn failed had a later turn answered
      for (const c of witnesses.conversations) {
        const lastFailed = c.turns.map((x) => x.outcome !== 'assistant_message').lastIndexOf(true);
        if (lastFailed >= 0)
          expect(
            c.turns.slice(lastFailed + 1).some((x) => x.outcome === 'assistant_message'),
            c.sessionId,
          ).toBe(true);
      }
    },
    10 * 60_000,
  );

  it(
    'PostgreSQL down for 60 s: REST 503 with a clear code, WS error frames, /ready 503 naming postgres; recovery without restarting a service; nothing acknowledged lost; the readiness page fires, then resolves',
    async () => {
      const before = new Map((await stack.states()).map((x) => [x.id, x.startedAt]));
      let startedDown = 0;
      await row({
        fault: 'PostgreSQL down for 60 s',
        inject: async () => {
          startedDown = Date.now();
          await stack.composeOk(['stop', 'postgres']);
          return { alertname: 'CodelabServiceNotReady', service: 'runtime', check: 'postgres' };
        },
        during: async () => {
          const rest = await fetch(`${stack.url}/api/v1/sessions?limit=5`, { headers: { authorization: `Bearer ${token}` } });
          const body = (await rest.json()) as { error?: { code?: string; message?: string } };
          expect([rest.status, body.error?.code]).toEqual([503, 'ERR_DATABASE_UNAVAILABLE']);
          const runtime = (await stack.ids('runtime'))[0]!;
          const ready = await stack.inside(runtime, 'runtime', '/ready');
          expect(ready.status).toBe(503);
          expect((JSON.parse(ready.body) as { failed: string[] }).failed).toContain('postgres');
          await waitFor('60 s of outage', async () => Date.now() - startedDown >= 60_000, 120_000, 1000);
        },
        heal: async () => {
          await stack.composeOk(['start', 'postgres']);
          await stack.waitHealthy();
        },
        mayFail: (o) => o.startsWith('error:'),
      });
      for (const x of await stack.states()) {
        if (x.service === 'postgres') continue;
        expect(x.startedAt, `${x.name} restarted`).toBe(before.get(x.id));
      }
    },
    10 * 60_000,
  );

  /** A password grant through nginx: its status and error code. */
  async function login(): Promise<{ status: number; code?: string }> {
    const res = await fetch(`${stack.url}/oauth/token`, {
      method: 'POST',
      body: new URLSearchParams({
        grant_type: 'password',
        client_id: 'codelab-flutter-app',
        username: 'admin',
        password: stack.secrets.AUTH_SERVICE__MASTER_KEY,
      }),
    });
    const body = (await res.json().catch(() => ({}))) as { error?: string | { code?: string } };
    return { status: res.status, code: typeof body.error === 'string' ? body.error : body.error?.code };
  }

  it(
    'Redis down for 60 s: conversations go on, logins keep working on per-instance limits; both Redis pages fire, then resolve',
    async () => {
      let downAt = 0;
      const logins: number[] = [];
      await row({
        fault: 'Redis down for 60 s',
        inject: async () => {
          downAt = Date.now();
          await stack.composeOk(['stop', 'redis']);
          return { alertname: 'CodelabServiceNotReady', service: 'runtime', check: 'redis' };
        },
        during: async () => {
          // a login every 2 s while Redis is away: each one answered, and auth's own page fires
          await waitFor(
            '60 s of outage with logins',
            async () => {
              logins.push((await login()).status);
              return Date.now() - downAt >= 60_000 && receiver.seen({ alertname: 'AuthRedisUnreachable' }, 'firing', downAt) !== undefined;
            },
            180_000,
            2000,
          );
        },
        heal: async () => {
          await stack.composeOk(['start', 'redis']);
          await stack.waitHealthy();
        },
      });
      expect(logins.filter((x) => x !== 200)).toEqual([]);
      await waitFor(
        'AuthRedisUnreachable resolved',
        async () => receiver.seen({ alertname: 'AuthRedisUnreachable' }, 'resolved', downAt) !== undefined,
        180_000,
      );
    },
    10 * 60_000,
  );

  it(
    'auth down: tokens already issued keep working, new logins get 503 ERR_UPSTREAM_UNAVAILABLE; the missing-target page fires for auth, then resolves',
    async () => {
      await row({
        fault: 'auth down',
        inject: async () => {
          await stack.composeOk(['stop', 'auth']);
          return { alertname: 'CodelabTargetMissing', job: 'auth' };
        },
        during: async () => {
          expect(await login()).toEqual({ status: 503, code: 'ERR_UPSTREAM_UNAVAILABLE' });
          // the issued token still opens conversations and reads (cached JWKS)
          const rest = await fetch(`${stack.url}/api/v1/sessions?limit=5`, { headers: { authorization: `Bearer ${token}` } });
          expect(rest.status).toBe(200);
        },
        heal: async () => {
          await stack.composeOk(['start', 'auth']);
          await stack.waitHealthy();
        },
      });
      expect((await login()).status).toBe(200);
    },
    10 * 60_000,
  );

  it(
    'a runtime frozen past its lease, then resumed: its turns are closed on the other runtime; after waking it writes nothing: no duplicate or interleaved frames or messages',
    async () => {
      let victim = { id: '', ip: '' };
      let pausedAt = 0;
      await row({
        fault: 'runtime frozen past its lease',
        answer: '[[mock:words 200]] [[mock:token_delay 20]]',
        inject: async () => {
          victim = await busiest('runtime');
          pausedAt = Date.now();
          await dockerOk(['pause', victim.id]);
          return undefined;
        },
        // past the lease (AGENT_RUNTIME__SESSION_LEASE_TTL, 15 s) and long enough for the other runtime to take its sessions over
        during: async () => waitFor('30 s frozen', async () => Date.now() - pausedAt >= 30_000, 60_000, 1000),
        heal: async () => void (await dockerOk(['unpause', victim.id])),
        mayFail: (o) =>
          /^error:(RT_ERR_TURN_INTERRUPTED|GW_ERR_STREAM_INTERRUPTED|GW_ERR_RUNTIME_TIMEOUT|GW_ERR_RUNTIME_UNAVAILABLE)$/.test(o),
      });
      // what it tried to write after waking was refused: its fenced writes and frames are counted, never applied
      const metrics = (await stack.inside(victim.id, 'runtime', '/metrics')).body;
      process.stderr.write(
        `faults: the frozen runtime after waking: ${metrics
          .split('\n')
          .filter((l) => /^runtime_(turns_interrupted|lease)/.test(l))
          .join('; ')}\n`,
      );
    },
    10 * 60_000,
  );

  it(
    'a partition between one gateway and the runtimes: its turns end with errors within its timeouts, no socket hangs; recovery after the heal; nothing lost; the readiness page fires, then resolves',
    async () => {
      let gateway = { id: '', ip: '' };
      let runtimes: string[] = [];
      const iptables = async (op: '-I' | '-D') => {
        const pid = (await dockerOk(['inspect', '-f', '{{.State.Pid}}', gateway.id])).trim();
        for (const ip of runtimes)
          await runCommand('nsenter', ['-t', pid, '-n', 'iptables', op, 'OUTPUT', '-d', ip, '-j', 'DROP'], { timeoutMs: 30_000 }).then(
            (r) => {
              if (r.code !== 0) throw new Error(`iptables ${op}: ${r.stderr}`);
            },
          );
      };
      await row({
        fault: 'partition gateway-runtime',
        inject: async () => {
          gateway = await busiest('gateway');
          runtimes = await Promise.all((await stack.ids('runtime')).map(ipOf));
          await iptables('-I');
          return { alertname: 'CodelabServiceNotReady', service: 'gateway', check: 'runtime' };
        },
        heal: async () => iptables('-D'),
        mayFail: (o) =>
          /^error:(GW_ERR_RUNTIME_UNAVAILABLE|GW_ERR_RUNTIME_TIMEOUT|GW_ERR_STREAM_INTERRUPTED|RT_ERR_TURN_INTERRUPTED)$/.test(o),
      });
    },
    10 * 60_000,
  );

  it(
    'LLM failures (a 5xx burst, a stream cut mid-answer, a stall past the idle timeout): error frames with stable codes, failed turns stored as failed, never as an answer; the LLM availability page fires, then resolves',
    async () => {
      const faults = [
        '[[mock:error 503]]',
        '[[mock:words 40]] [[mock:disconnect_after 5]]',
        '[[mock:words 40]] [[mock:error_after 5 502]]',
      ];
      let n = 0;
      let timer: NodeJS.Timeout | undefined;
      const witnesses = await row({
        fault: 'LLM errors: 5xx burst, cut mid-stream',
        inject: async (t) => {
          // every witness message asks for one of the failures, in turn
          t.script.answer = faults[0]!;
          timer = setInterval(() => (t.script.answer = faults[++n % faults.length]!), 500);
          return { alertname: 'LlmProxyLlmAvailabilityBudgetBurn', long: '1h' };
        },
        heal: async (t) => {
          clearInterval(timer);
          t.script.answer = '[[mock:words 40]] [[mock:token_delay 10]]';
        },
        mayFail: (o) => /^error:[A-Z]+_ERR_[A-Z_]+$/.test(o),
      });
      const codes = [...new Set(witnesses.turns.filter((x) => x.outcome.startsWith('error:')).map((x) => x.outcome))];
      expect(codes.length, `stable error codes: ${codes.join(', ')}`).toBeGreaterThan(0);
    },
    10 * 60_000,
  );

  it(
    'a hostile client (2 MiB frames, a flood of malformed frames without reading): closed with 1009, then 4008, every time; other clients unaffected',
    async () => {
      const closes: number[] = [];
      await row({
        fault: 'hostile client',
        inject: async () => {
          for (let i = 0; i < 5; i++) closes.push(await oversizeFrame());
          closes.push(await neverReads());
          return undefined;
        },
        heal: async () => undefined,
      });
      expect(closes).toEqual([1009, 1009, 1009, 1009, 1009, 4008]);
    },
    10 * 60_000,
  );

  /** One connection through nginx that sends a 2 MiB frame: the close code it gets. */
  async function oversizeFrame(): Promise<number> {
    const ws = new WebSocket(`${stack.ws}/api/v1/ws/hostile-${randomUUID()}`, { headers: { authorization: `Bearer ${token}` } });
    await new Promise((ok, fail) => ws.once('open', ok).once('error', fail));
    const closed = new Promise<number>((ok) => ws.once('close', (code) => ok(code)));
    ws.on('error', () => undefined);
    ws.send(JSON.stringify({ type: 'user_message', content: 'x'.repeat(2 * 1024 * 1024) }));
    return closed;
  }

  /** One connection that sends malformed frames and reads nothing, until the gateway gives up on it; then reads: its close code. */
  async function neverReads(): Promise<number> {
    const ws = new WebSocket(`${stack.ws}/api/v1/ws/hostile-${randomUUID()}`, { headers: { authorization: `Bearer ${token}` } });
    await new Promise((ok, fail) => ws.once('open', ok).once('error', fail));
    const closed = new Promise<number>((ok) => ws.once('close', (code) => ok(code)));
    ws.on('error', () => undefined);
    // stop reading: what the gateway sends piles up in the kernel's, nginx's and the gateway's buffers
    (ws as unknown as { _socket: { pause(): void; resume(): void } })._socket.pause();
    const drops = async () =>
      (
        await Promise.all(
          (
            await stack.ids('gateway')
          ).map(async (c) =>
            Number(/^gateway_ws_slow_reader_drops_total (\d+)/m.exec((await stack.inside(c, 'gateway', '/metrics')).body)?.[1] ?? 0),
          ),
        )
      ).reduce((a, b) => a + b, 0);
    const before = await drops();
    const bad = JSON.stringify({ type: `x${'y'.repeat(64 * 1024)}` });
    await waitFor(
      'the gateway drops the client that does not read',
      async () => {
        // frames the gateway refuses, each answered with an error that repeats the bad type: ~64 KiB out per frame
        for (let i = 0; i < 50 && ws.readyState === ws.OPEN; i++) ws.send(bad);
        await new Promise<void>((ok) => ws.send('{not json', () => ok()));
        return (await drops()) > before;
      },
      180_000,
      10,
    );
    (ws as unknown as { _socket: { resume(): void } })._socket.resume();
    return closed;
  }
});
