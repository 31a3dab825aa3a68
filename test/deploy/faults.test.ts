/**
 * Faults on the running stack (issue 14): the Compose stack as users scale it (three gateways, two
 * runtimes, nginx, PostgreSQL, Redis, the llm-proxy in upstream mode in front of a mock provider,
 * faults/llm-upstream.ts) with Prometheus and Alertmanager
 * beside it (docker-compose.observability.yml) on a clock SCALE times faster, Alertmanager's webhooks
 * going to a receiver here. Each row breaks one thing while the chat load profile (the Node driver)
 * and a few witness conversations run, heals it, and checks at once what the clients saw, what the
 * database kept and what the on-call engineer was told (fired, then resolved). Last, every image
 * layer and container log is scanned for the secrets used.
 *
 * Run with `npm run test:faults` (vitest.faults.config.ts), alone on the machine: a second stack at
 * the same time would make the faults' timings the machine's; `.ci/run` runs it last. Its first runs
 * in CI found two defects, fixed since: a witness missed frames 531–534 in the partition row (its
 * gateway gave up on a turn the runtime then finished: the gateway now replays such frames before
 * the next turn's), and one 2 MiB frame in four or five closed 1006 through nginx (the gateway closed
 * while the client still sent it: frames up to 4× the limit are now read whole, then closed 1009).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePorts } from '@codelab/service-kit/testing';
import { INTERNAL_AUTH_HEADER } from '@codelab/service-kit';
import { ComposeStack, buildImages, imageTag, SERVICE_IMAGES } from './compose-stack.ts';
import { docker, dockerMissing, dockerOk, ensureStandIns, foundInImages, runCommand, waitFor } from './docker.ts';
import { AlertReceiver, query, writeObservabilityOverlay } from './faults/alerting.ts';
import { ChatLoad, type ChatLoadFigures } from './faults/chat-load.ts';
import { IDLE_TIMEOUT_SECONDS, writeLlmUpstreamOverlay } from './faults/llm-upstream.ts';
import { platformErrorCodes } from '../helpers/error-codes.ts';
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
/**
 * The gateway's limit on a runtime's silence during a turn (GATEWAY__AGENT_STREAM_TIMEOUT; default
 * 60 s, the runtime's keep-alives come every 15 s): how long a frozen or unreachable runtime holds
 * a client's turn before the client gets an error frame.
 */
const STREAM_SILENCE_SECONDS = 20;
/** AGENT_RUNTIME__SESSION_LEASE_TTL as the stack runs it (the default): a turn lease not renewed for this long has lapsed. */
const LEASE_TTL_SECONDS = 15;

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
    // every host port the stack publishes, all different
    const [prometheusPort, alertmanagerPort, nginxPort] = await freePorts(3);
    const overlay = writeObservabilityOverlay(dir, {
      scale: SCALE,
      receiverPort: receiver.port,
      prometheusPort: prometheusPort!,
      alertmanagerPort: alertmanagerPort!,
    });
    prometheusUrl = `http://127.0.0.1:${prometheusPort}`;
    stack = await ComposeStack.create(
      { ...overlay.env, GATEWAY__AGENT_STREAM_TIMEOUT: String(STREAM_SILENCE_SECONDS) },
      [...overlay.files, writeLlmUpstreamOverlay(dir)],
      nginxPort,
    );
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
  async function traffic(name: string, answer = '[[mock:words 40]] [[mock:token_delay 10]]', count = 4) {
    const witnesses = new Witnesses(count, stack.ws, () => token);
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

  /** Rows of a query in the stack's PostgreSQL (columns split on tabs). */
  async function sql(text: string): Promise<[string, ...string[]][]> {
    const out = await stack.composeOk(['exec', '-T', 'postgres', 'psql', '-U', 'codelab', '-d', 'codelab', '-AtF', '\t', '-c', text]);
    return out
      .split('\n')
      .filter(Boolean)
      .map((l) => l.split('\t') as [string, ...string[]]);
  }

  const idList = (witnesses: Witnesses) => witnesses.conversations.map((c) => `'${c.sessionId}'`).join(',');

  /** Every numbered frame of every witness once, none missing; every acknowledged message stored; no partial answer stored. */
  async function expectNothingLost(witnesses: Witnesses): Promise<number> {
    let lost = 0;
    for (const c of witnesses.conversations) {
      const { duplicates, missing } = c.seqProblems();
      lost += missing.length;
      // on a gap: the frames around it and the connections' closes, to tell what happened there
      const near = c.frames
        .filter((f) => typeof f.seq === 'number' && [...missing, ...duplicates].some((m) => Math.abs((f.seq as number) - m) <= 2))
        .map((f) => `${f.seq}:${f.type}${f.code ? `/${f.code}` : ''}${f.is_final ? '/final' : ''}`);
      expect({ session: c.sessionId, duplicates, missing }, `frames near: ${near.join(' ')}; closes: ${c.drops.join(',')}`).toEqual({
        session: c.sessionId,
        duplicates: [],
        missing: [],
      });
    }
    const rows = await sql(
      `SELECT session_id, role, coalesce(content, '') FROM messages WHERE session_id IN (${idList(witnesses)}) ORDER BY session_id, seq`,
    );
    for (const c of witnesses.conversations) {
      const stored = rows.filter((r) => r[0] === c.sessionId);
      const users = stored.filter((r) => r[1] === 'user').map((r) => r[2]);
      for (const t of c.turns.filter((x) => x.acknowledged)) expect(users, `${c.sessionId} lost "${t.content}"`).toContain(t.content);
      const answers = c.answersSeen();
      for (const r of stored.filter((x) => x[1] === 'assistant'))
        expect(answers.has(r[2] ?? ''), `${c.sessionId}: a stored answer no client saw complete: "${String(r[2]).slice(0, 80)}"`).toBe(
          true,
        );
    }
    return lost;
  }

  interface Row {
    fault: string;
    /** Breaks it; returns the labels of the alert that must fire (undefined: none expected). */
    inject: (t: Traffic) => Promise<Record<string, string> | undefined>;
    /** Checks while it is broken (after the alert fired). */
    during?: (t: Traffic) => Promise<void>;
    heal: (t: Traffic) => Promise<void>;
    /** Witness outcomes accepted besides an answer (error codes, as `error:CODE`). */
    mayFail?: (outcome: string) => boolean;
    answer?: string;
    /** Witness conversations (4 unless a fault needs more of the traffic to be theirs). */
    witnesses?: number;
  }

  /**
   * One row of the fault matrix: traffic, the fault, its alert firing, checks during it, the heal,
   * the stack whole again with answers flowing, the alert resolved, then the clients' logs and the
   * database checked. Resolves with the witnesses (row-specific checks) after recording its figures.
   */
  async function row(r: Row): Promise<Witnesses> {
    await allTargetsUp();
    const t = await traffic(r.fault.replace(/\W+/g, '-'), r.answer, r.witnesses);
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
      await r.during?.(t);
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
      const unexplained = failed.filter((x) => !r.mayFail?.(x.outcome));
      // a turn left without its end: what the gateways and runtimes logged about its session
      const hung = t.witnesses.conversations.filter((c) => c.turns.some((x) => x.outcome === 'no final frame'));
      expect(
        unexplained.map((x) => `${x.content}: ${x.outcome}${x.detail ? ` (${x.detail})` : ''}`),
        `witness turns with an outcome this fault does not explain${hung.length ? `; service logs:\n${await serviceLogsAbout(hung.map((c) => c.sessionId))}` : ''}`,
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

  /** The lines of the gateways' and runtimes' logs that name one of `sessionIds` (the last 40 of each container). */
  async function serviceLogsAbout(sessionIds: string[]): Promise<string> {
    const out: string[] = [];
    for (const service of ['gateway', 'runtime']) {
      for (const id of await stack.ids(service)) {
        const r = await docker(['logs', id], { timeoutMs: 60_000 });
        const lines = (r.stdout + r.stderr).split('\n').filter((l) => sessionIds.some((s) => l.includes(s)));
        for (const l of lines.slice(-40)) out.push(`${service} ${id.slice(0, 12)}: ${l.slice(0, 600)}`);
      }
    }
    return out.join('\n');
  }

  const ipOf = async (container: string): Promise<string> =>
    (await dockerOk(['inspect', '-f', '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}', container])).trim();

  /**
   * The runtime replica running a witness's turn now, and that session: the turn's lease names its
   * holder by host (`lease_owner` starts with the container's short id).
   */
  async function runtimeOfWitness(witnesses: Witnesses): Promise<{ id: string; sessionId: string }> {
    const runtimes = await stack.ids('runtime');
    let found: { id: string; sessionId: string } | undefined;
    await waitFor(
      'a witness turn running on a runtime',
      async () => {
        const leases = await sql(
          `SELECT id, lease_owner FROM sessions WHERE id IN (${idList(witnesses)}) AND lease_owner LIKE '%:turn:%' AND lease_until > now()`,
        );
        for (const [sessionId, owner] of leases) {
          const id = runtimes.find((r) => owner!.startsWith(`${r.slice(0, 12)}-`));
          if (id) found = { id, sessionId: sessionId! };
        }
        return found !== undefined;
      },
      60_000,
      100,
    );
    return found!;
  }

  /** The gateway replica most witnesses are connected to (its log names their sessions). */
  async function gatewayOfWitnesses(witnesses: Witnesses): Promise<{ id: string; ip: string; sessions: number }> {
    const ids = await stack.ids('gateway');
    const counts = await Promise.all(
      ids.map(async (id) => {
        const r = await docker(['logs', id], { timeoutMs: 60_000 });
        const log = r.stdout + r.stderr;
        return witnesses.conversations.filter((c) => log.includes(c.sessionId)).length;
      }),
    );
    const best = counts.indexOf(Math.max(...counts));
    if (counts[best] === 0) throw new Error('no gateway log names a witness session');
    return { id: ids[best]!, ip: await ipOf(ids[best]!), sessions: counts[best]! };
  }

  it(
    'a gateway killed mid-turn: its clients resume through nginx with last_seq and get every frame once; nothing lost; the missing-target page fires, then resolves once it is back',
    async () => {
      const witnesses = await row({
        fault: 'gateway killed mid-turn',
        inject: async (t) => {
          const victim = await gatewayOfWitnesses(t.witnesses);
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
        inject: async (t) => {
          const victim = await runtimeOfWitness(t.witnesses);
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
    'a runtime frozen past its lease, then resumed: its turns are closed on the other runtime; after waking it writes nothing: no duplicate or interleaved frames or messages; the target-down page fires, then resolves',
    async () => {
      let victim = { id: '', sessionId: '' };
      let pausedAt = 0;
      // the user message of the turn it froze (each witness message is unique: `<row> <i>.<n> …`), and the
      // frame number that turn started from (its lease is named `<owner>:turn:<seq>`)
      let frozenMessage = '';
      let frozenTurnBase = 0;
      const witnesses = await row({
        fault: 'runtime frozen past its lease',
        answer: '[[mock:words 200]] [[mock:token_delay 20]]',
        inject: async (t) => {
          // a witness turn's runtime, frozen mid-answer: the turn still holds the session and its answer is
          // not stored yet (the runtime stores the answer before it sends the final frame, and releases the
          // lease after it, so a lease alone may belong to a turn whose final frame is already on its way).
          // A turn may end between the choice and the pause: then the runtime thaws and another is chosen.
          for (let attempt = 1; ; attempt++) {
            victim = await runtimeOfWitness(t.witnesses);
            await dockerOk(['pause', victim.id]);
            pausedAt = Date.now();
            const [state] = await sql(
              `SELECT coalesce(lease_owner, ''), coalesce(m.role, ''), coalesce(m.content, '') FROM sessions s LEFT JOIN LATERAL (SELECT role, content FROM messages WHERE session_id = s.id ORDER BY seq DESC LIMIT 1) m ON true WHERE s.id = '${victim.sessionId}'`,
            );
            const [owner = '', lastRole = '', lastContent = ''] = state ?? [];
            frozenMessage = lastContent;
            frozenTurnBase = Number(/:turn:(\d+)$/.exec(owner)?.[1] ?? 0);
            if (owner.startsWith(`${victim.id.slice(0, 12)}-`) && owner.includes(':turn:') && lastRole === 'user') break;
            await dockerOk(['unpause', victim.id]);
            if (attempt === 10) throw new Error('ten times the witness turn ended before its runtime froze');
          }
          // its scrapes time out while it is frozen
          return { alertname: 'CodelabTargetDown', job: 'runtime' };
        },
        during: async () => {
          // Once its lease has lapsed, a second client follows the session through the other runtime (as an IDE
          // reconnecting elsewhere would): that runtime closes the frozen turn with RT_ERR_TURN_INTERRUPTED and
          // fences its frames off. Without it the outcome would depend on where the witness's gateway happens to
          // follow the turn when its stream goes silent: Compose DNS may send that request to the frozen runtime
          // itself, which then wakes up to a lease nobody took and rightly finishes its turn.
          await waitFor('the frozen turn lease lapsed', async () => Date.now() - pausedAt >= (LEASE_TTL_SECONDS + 2) * 1000, 120_000, 500);
          const other = (await stack.ids('runtime')).find((id) => id !== victim.id)!;
          const followed = await stack.inside(other, 'runtime', `/sessions/${victim.sessionId}/frames?after=${frozenTurnBase}`, {
            [INTERNAL_AUTH_HEADER]: stack.secrets.CODELAB_INTERNAL_API_KEY,
          });
          expect(followed.status, followed.body.slice(0, 300)).toBe(200);
          expect(followed.body, 'the other runtime closed the frozen turn').toContain('RT_ERR_TURN_INTERRUPTED');
          // past the gateway's silence limit too: the witness got its error frame and sent its next message
          await waitFor(
            'frozen past the silence limit and the lease',
            async () => Date.now() - pausedAt >= (STREAM_SILENCE_SECONDS + LEASE_TTL_SECONDS) * 1000,
            120_000,
            1000,
          );
        },
        heal: async () => void (await dockerOk(['unpause', victim.id])),
        mayFail: (o) =>
          /^error:(RT_ERR_TURN_INTERRUPTED|GW_ERR_STREAM_INTERRUPTED|GW_ERR_RUNTIME_TIMEOUT|GW_ERR_RUNTIME_UNAVAILABLE)$/.test(o),
      });
      // the witness whose turn the frozen runtime held: that turn (found by its message, not by time: a turn may
      // end and the next one start while `docker pause` is under way) ended with an error frame (below), and a
      // later turn of it was answered
      const held = witnesses.conversations.find((c) => c.sessionId === victim.sessionId)!;
      const during = held.turns.findIndex((x) => x.content === frozenMessage);
      expect(during, `${victim.sessionId}: the turn running when its runtime froze (${frozenMessage})`).toBeGreaterThanOrEqual(0);
      expect(
        held.turns.slice(during + 1).some((x) => x.outcome === 'assistant_message'),
        `${victim.sessionId}: a turn answered after the freeze`,
      ).toBe(true);
      const outcome = held.turns[during]!.outcome;
      // after waking, the frozen runtime found its lease taken and stopped its turn: it wrote nothing
      // more (its frames refused by the log, its messages by the fence), counted as lease_lost
      const metrics = (await stack.inside(victim.id, 'runtime', '/metrics')).body;
      const lost = [...metrics.matchAll(/^runtime_turns_total\{[^}]*outcome="lease_lost"[^}]*\} (\d+)/gm)].reduce(
        (n, m) => n + Number(m[1]),
        0,
      );
      process.stderr.write(
        `faults: the frozen runtime's witness turn ended with ${outcome}; turns it stopped after waking (lease_lost): ${lost}\n`,
      );
      expect(outcome, 'the client got an error frame once the runtime was silent too long').toMatch(/^error:/);
      expect(lost, 'turns the frozen runtime stopped after waking because their session was taken over').toBeGreaterThan(0);
    },
    10 * 60_000,
  );

  it(
    'a partition between one gateway and the runtimes: its turns end with errors within its timeouts, no socket hangs; recovery after the heal; nothing lost; the readiness page fires, then resolves',
    async () => {
      let gateway = { id: '', ip: '', sessions: 0 };
      let runtimes: string[] = [];
      let cutAt = 0;
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
        inject: async (t) => {
          gateway = await gatewayOfWitnesses(t.witnesses);
          runtimes = await Promise.all((await stack.ids('runtime')).map(ipOf));
          cutAt = Date.now();
          await iptables('-I');
          return { alertname: 'CodelabServiceNotReady', service: 'gateway', check: 'runtime' };
        },
        // held until a witness behind the cut gateway got its error frame (within the gateway's
        // timeouts: no socket hangs), not only until the alert fired
        during: async (t) => {
          const failed = () => t.witnesses.turns.filter((x) => x.sentAt >= cutAt && x.outcome.startsWith('error:'));
          await waitFor(
            `an error frame through the cut gateway (${gateway.sessions} witnesses on it)`,
            async () => failed().length > 0,
            (STREAM_SILENCE_SECONDS + 60) * 1000,
            500,
          );
          const first = Math.min(...failed().map((x) => x.endedAt));
          process.stderr.write(`faults: partition: first error frame ${s(first - cutAt)} s after the cut\n`);
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
        // silent for longer than the proxy's idle timeout (IDLE_TIMEOUT_SECONDS) after 5 tokens
        `[[mock:words 40]] [[mock:stall_after 5 ${IDLE_TIMEOUT_SECONDS * 4 * 1000}]]`,
      ];
      let n = 0;
      let timer: NodeJS.Timeout | undefined;
      const witnesses = await row({
        fault: 'LLM errors: 5xx burst, cut mid-stream',
        // the page needs >14.4% of LLM calls failing over its window: with 4 witnesses among the
        // chat load's users it saw ~15% and fired late or not at all
        witnesses: 16,
        inject: async (t) => {
          // every witness message asks for one of the failures, in turn
          t.script.answer = faults[0]!;
          timer = setInterval(() => (t.script.answer = faults[++n % faults.length]!), 500);
          return { alertname: 'LlmProxyLlmAvailabilityBudgetBurn' };
        },
        heal: async (t) => {
          clearInterval(timer);
          t.script.answer = '[[mock:words 40]] [[mock:token_delay 10]]';
        },
        mayFail: (o) => /^error:[A-Z]+_ERR_[A-Z_]+$/.test(o),
      });
      const codes = [...new Set(witnesses.turns.filter((x) => x.outcome.startsWith('error:')).map((x) => x.outcome))];
      expect(codes.length, `stable error codes: ${codes.join(', ')}`).toBeGreaterThan(0);
      const known = new Set(platformErrorCodes());
      expect(
        codes.filter((c) => !known.has(c.slice('error:'.length))),
        "codes in no service's error table",
      ).toEqual([]);
      process.stderr.write(`faults: LLM failure codes seen by witnesses: ${codes.join(', ')}\n`);
    },
    10 * 60_000,
  );

  it(
    'the LLM provider gone (upstream stopped): turns fail with a stable code, the breaker opens and its page fires; with the provider back a probe closes it and the page resolves',
    async () => {
      let stoppedAt = 0;
      const witnesses = await row({
        fault: 'LLM provider down',
        inject: async () => {
          stoppedAt = Date.now();
          await stack.composeOk(['stop', 'llm-upstream']);
          return { alertname: 'LlmProxyCircuitBreakerOpen', upstream: 'fake-llm' };
        },
        during: async () => {
          // open: turns are refused without a call to the provider, at once
          const [open] = await query(prometheusUrl, 'max(llm_proxy_circuit_breaker_state)');
          expect(open?.value[1]).toBe('2');
        },
        heal: async () => {
          await stack.composeOk(['start', 'llm-upstream']);
          await stack.waitHealthy();
        },
        mayFail: (o) => /^error:[A-Z]+_ERR_[A-Z_]+$/.test(o),
      });
      const failed = witnesses.turns.filter((x) => x.sentAt >= stoppedAt && x.outcome !== 'assistant_message');
      expect(failed.length, 'witness turns refused while the provider was gone').toBeGreaterThan(0);
      const codes = [...new Set(failed.map((x) => x.outcome))];
      const known = new Set(platformErrorCodes());
      expect(
        codes.filter((c) => !known.has(c.slice('error:'.length))),
        `codes ${codes.join(', ')}`,
      ).toEqual([]);
      const fastest = Math.min(...failed.map((x) => x.endedAt - x.sentAt));
      const [closed] = await query(prometheusUrl, 'max(llm_proxy_circuit_breaker_state)');
      expect(closed?.value[1]).toBe('0');
      process.stderr.write(`faults: provider down: codes ${codes.join(', ')}; fastest refusal ${fastest} ms\n`);
    },
    10 * 60_000,
  );

  it(
    'a hostile client (2 MiB frames; malformed frames flooded without reading, sustained): closed with 1009, then 4008, every time; other clients unaffected; the slow-reader page fires, then resolves',
    async () => {
      const oversize: number[] = [];
      const slow: number[] = [];
      let stop = false;
      let flooding: Promise<unknown> = Promise.resolve();
      await row({
        fault: 'hostile client',
        inject: async () => {
          // enough of them that a close lost one time in five shows (0.8^20 ≈ 1%)
          for (let i = 0; i < 20; i++) oversize.push(await oversizeFrame());
          // two at a time, one after the other until the heal: a sustained wave of clients that do not read
          flooding = Promise.all(
            [0, 1].map(async () => {
              while (!stop) slow.push(await neverReads());
            }),
          );
          return { alertname: 'GatewayWebSocketSlowReaderDrops' };
        },
        heal: async () => {
          stop = true;
          await flooding;
        },
      });
      expect(
        oversize.filter((c) => c !== 1009),
        `close codes of the 2 MiB frames: ${oversize.join(',')}`,
      ).toEqual([]);
      expect(slow.length).toBeGreaterThan(5);
      expect(
        slow.filter((c) => c !== 4008),
        `close codes of the clients that did not read: ${slow.join(',')}`,
      ).toEqual([]);
    },
    10 * 60_000,
  );

  it(
    'after every fault: none of the secrets used (keys, passwords, the signing key, a token) in any image layer or any container log',
    async () => {
      const auth = (await stack.ids('auth'))[0]!;
      const pem = await dockerOk(['exec', auth, 'cat', '/data/auth/keys/private_key.pem']);
      const keyLines = pem.split('\n').filter((l) => /^[A-Za-z0-9+/]{64}$/.test(l));
      expect(keyLines.length).toBeGreaterThan(10);
      const secrets: Record<string, string> = { ...stack.secrets, 'the signing key': keyLines[10]!, 'an access token': token };
      const found = await foundInImages(SERVICE_IMAGES.map(imageTag), Object.values(secrets));
      expect(found.map((v) => Object.keys(secrets).find((k) => secrets[k] === v))).toEqual([]);
      // every container the project ever ran, stopped and killed ones included
      const containers = (await dockerOk(['ps', '-aq', '--filter', `label=com.docker.compose.project=${stack.project}`]))
        .split('\n')
        .filter(Boolean);
      expect(containers.length).toBeGreaterThanOrEqual(12);
      let bytes = 0;
      for (const c of containers) {
        const r = await docker(['logs', c], { timeoutMs: 120_000 });
        const log = r.stdout + r.stderr;
        bytes += log.length;
        for (const [name, value] of Object.entries(secrets)) expect(log.includes(value), `${name} in the log of ${c}`).toBe(false);
      }
      process.stderr.write(
        `faults: secret scan: ${containers.length} containers, ${(bytes / 1e6).toFixed(1)} MB of logs, ${SERVICE_IMAGES.length} images\n`,
      );
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

  /**
   * One connection that floods malformed frames and reads nothing until a gateway drops a client
   * for it (the drops counter, through Prometheus), then reads: the close code it was given. When
   * the drop was another client's, it stops reading again and goes on.
   */
  async function neverReads(): Promise<number> {
    const ws = new WebSocket(`${stack.ws}/api/v1/ws/hostile-${randomUUID()}`, { headers: { authorization: `Bearer ${token}` } });
    await new Promise((ok, fail) => ws.once('open', ok).once('error', fail));
    let code: number | undefined;
    ws.once('close', (c) => (code = c));
    ws.on('error', () => undefined);
    const socket = (ws as unknown as { _socket: { pause(): void; resume(): void } })._socket;
    // stop reading: what the gateway sends piles up in the kernel's, nginx's and the gateway's buffers
    socket.pause();
    const drops = async () => Number((await query(prometheusUrl, 'sum(gateway_ws_slow_reader_drops_total)'))[0]?.value[1] ?? 0);
    let before = await drops();
    const bad = JSON.stringify({ type: `x${'y'.repeat(64 * 1024)}` });
    await waitFor(
      'the gateway drops the client that does not read',
      async () => {
        // frames the gateway refuses, each answered with an error frame: ~64 KiB out per frame
        for (let i = 0; i < 50 && ws.readyState === ws.OPEN; i++) ws.send(bad);
        await new Promise<void>((ok) => ws.send('{not json', () => ok()));
        if ((await drops()) <= before) return false;
        socket.resume();
        // ours: its close frame is among what it now reads; another client's: none comes, read on paused
        if (code === undefined) await once(ws, 'close', { signal: AbortSignal.timeout(5000) }).catch(() => undefined);
        if (code !== undefined) return true;
        socket.pause();
        before = await drops();
        return false;
      },
      180_000,
      10,
    );
    return code!;
  }
});
