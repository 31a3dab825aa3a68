/**
 * scripts/debug-info.sh (`npm run debug-info`), the report users paste into an issue: against a
 * platform `npm start` runs on embedded defaults (free ports, a data directory of its own) it has
 * every section, each service's health, readiness and version, the runtime's `.computed` (with jq,
 * and with node alone), and no secret anywhere: not the internal key, the admin password, a secret
 * setting of the environment, a database or Redis URL's password, a private key. Its Compose mode
 * runs against a stand-in `docker` (this machine has no daemon; the deploy suite runs the real
 * stack) whose `exec` runs the script's node snippets for real against the same platform, and
 * whose containers' environment and logs are full of secrets: the right compose commands (v2 and
 * v1, -p/-f, COMPOSE_PROJECT_NAME, COMPOSE_FILE, DOCKER_HOST), and again no secret.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { commonSettings, envName, type SettingSpec } from '@codelab/service-kit';
import { findProgram, freePort, freePorts, missingProgram } from '@codelab/service-kit/testing';
import { authSettings } from '@codelab/auth/config';
import { gatewaySettings } from '@codelab/gateway/config';
import { llmProxySettings } from '@codelab/llm-proxy/config';
import { runtimeSettings } from '@codelab/runtime/config';
import { platformErrorCodes } from '../helpers/error-codes.ts';
import { FrameClient, passwordToken } from '../helpers/stack.ts';
import { REPO_ROOT, runProcess } from '../helpers/processes.ts';

const SCRIPT = path.join(REPO_ROOT, 'scripts', 'debug-info.sh');
const GUIDE = readFileSync(path.join(REPO_ROOT, 'docs', 'troubleshooting.md'), 'utf8');
/** The guide without its table of what upstream's guide says (names that do not exist here, on purpose). */
const GUIDE_OWN =
  GUIDE.slice(0, GUIDE.indexOf('## Where this guide differs from the upstream guide')) + GUIDE.slice(GUIDE.indexOf('## Getting help'));
const noShellcheck = missingProgram('shellcheck', 'shellcheck');
const SERVICES = [
  ['gateway', 'GATEWAY'],
  ['runtime', 'AGENT_RUNTIME'],
  ['llm-proxy', 'LLM_PROXY'],
  ['auth', 'AUTH_SERVICE'],
  ['web', 'WEB'],
] as const;
type Name = (typeof SERVICES)[number][0];

interface Run {
  code: number;
  out: string;
  err: string;
}
/** The script as a user runs it: bash, from the repository, with only the environment given. */
function debugInfo(args: string[], env: Record<string, string>, cwd = REPO_ROOT): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      'bash',
      [SCRIPT, ...args],
      { cwd, env: { HOME: process.env.HOME ?? '/tmp', NO_COLOR: '1', ...env }, maxBuffer: 16 * 1024 * 1024, timeout: 120_000 },
      (err, stdout, stderr) => resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, out: stdout, err: stderr }),
    );
  });
}

/** The sections of a report, by title: `=== Title ===` up to the next. */
function sections(out: string): Map<string, string> {
  const map = new Map<string, string>();
  const parts = out.split(/^=== (.+) ===$/m);
  for (let i = 1; i < parts.length; i += 2) map.set(parts[i]!, parts[i + 1]!);
  return map;
}
const section = (out: string, prefix: string): string => {
  const found = [...sections(out)].find(([title]) => title.startsWith(prefix));
  if (!found) throw new Error(`no section "${prefix}…" in:\n${out}`);
  return found[1];
};

/** Every value that must never appear, with a name for the failure message. */
function expectNoSecret(out: string, secrets: Record<string, string>): void {
  for (const [what, value] of Object.entries(secrets)) {
    expect(value.length, what).toBeGreaterThanOrEqual(6);
    expect(out.includes(value), `${what} appears in the report`).toBe(false);
  }
}

/** A PATH on which curl and jq do not exist (everything else as usual): the node fallbacks. */
function pathWithout(programs: string[], dir: string): string {
  mkdirSync(dir, { recursive: true });
  for (const bin of (process.env.PATH ?? '').split(':').filter(Boolean)) {
    if (!existsSync(bin)) continue;
    for (const entry of readdirSync(bin)) {
      if (programs.includes(entry) || existsSync(path.join(dir, entry))) continue;
      try {
        symlinkSync(path.join(bin, entry), path.join(dir, entry));
      } catch {
        /* a name seen twice on PATH: the first wins */
      }
    }
  }
  return dir;
}

describe('scripts/debug-info.sh', () => {
  let dataDir: string;
  let ports: Record<Name, number>;
  let launcher: ReturnType<typeof runProcess> | undefined;
  let internalKey: string;
  let adminPassword: string;
  let computed: string;
  const versions = Object.fromEntries(SERVICES.map(([name]) => [name, `9.8.7-${name}`])) as Record<Name, string>;
  const url = (name: Name) => `http://127.0.0.1:${ports[name]}`;
  /** The launcher's own settings: where the script finds the platform. */
  const platformEnv = () => ({
    PATH: process.env.PATH ?? '',
    CODELAB_DATA_DIR: dataDir,
    ...Object.fromEntries(SERVICES.map(([name, prefix]) => [`${prefix}__PORT`, String(ports[name])])),
  });

  beforeAll(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'codelab-debug-info-'));
    const [gateway, runtime, llmProxy, auth, web] = (await freePorts(5)) as [number, number, number, number, number];
    ports = { gateway, runtime, 'llm-proxy': llmProxy, auth, web };
    launcher = runProcess(['scripts/start.ts'], {
      ...platformEnv(),
      ...Object.fromEntries(SERVICES.map(([name, prefix]) => [`${prefix}__VERSION`, versions[name]])),
      LLM_PROXY__MOCK_TTFT_MS: '0',
      LLM_PROXY__MOCK_TOKEN_DELAY_MS: '0',
      ...(process.env.NODE_OPTIONS ? { NODE_OPTIONS: process.env.NODE_OPTIONS } : {}),
    });
    const started = Date.now();
    while (!/CodeLab Platform is up/.test(launcher.output())) {
      if (launcher.child.exitCode !== null) throw new Error(`launcher exited ${launcher.child.exitCode}:\n${launcher.output()}`);
      if (Date.now() - started > 240_000) throw new Error(`not up in 240 s:\n${launcher.output()}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    internalKey = (await readFile(path.join(dataDir, 'internal-api-key'), 'utf8')).trim();
    adminPassword = (await readFile(path.join(dataDir, 'auth', 'admin-password'), 'utf8')).trim();

    // One turn, so that the runtime's metrics have something to compute.
    const token = await passwordToken(url('auth'), 'admin', adminPassword);
    const client = new FrameClient(`ws://127.0.0.1:${ports.gateway}/api/v1/ws/debug-info-${randomUUID()}`, {
      authorization: `Bearer ${token}`,
    });
    await client.open();
    client.send({ type: 'user_message', content: 'What is dependency injection?', role: 'user' });
    await client.until((f) => f.is_final === true);
    client.close();
    // The turn's events are written as it ends: wait until the computed figures include it.
    for (const deadline = Date.now() + 20_000; ; ) {
      const res = await fetch(`${url('runtime')}/events/metrics`, { headers: { 'x-internal-auth': internalKey } });
      const body = (await res.json()) as { computed: Record<string, number> };
      computed = JSON.stringify(body.computed);
      if (Object.keys(body.computed).length > 0 || Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 200));
    }
  }, 300_000); // the launcher on a busy machine

  afterAll(async () => {
    if (launcher && launcher.child.exitCode === null) {
      launcher.child.kill('SIGTERM');
      await launcher.exited();
    }
    await rm(dataDir, { recursive: true, force: true });
  }, 60_000);

  describe('on the platform npm start runs', () => {
    const fake = `fake-${randomBytes(6).toString('hex')}`;
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    /** Secrets an operator's shell may hold while running the script. */
    const shellSecrets = {
      AUTH_SERVICE__MASTER_KEY: `master-${fake}`,
      LLM_PROXY__LITELLM_API_KEY: `sk-test-${fake}`,
      'the database URL password': `pg-pw-${fake}`,
      'the Redis URL password': `redis-pw-${fake}`,
      CODELAB_DEPLOY_TOKEN: `deploy-token-${fake}`,
    };
    let closedPort: number;
    let report: Run;

    const shellEnv = () => ({
      ...platformEnv(),
      DOCKER_HOST: `unix://${path.join(dataDir, 'no-docker.sock')}`,
      AUTH_SERVICE__MASTER_KEY: shellSecrets.AUTH_SERVICE__MASTER_KEY,
      LLM_PROXY__LITELLM_API_KEY: shellSecrets.LLM_PROXY__LITELLM_API_KEY,
      AUTH_SERVICE__DB_URL: `postgres://codelab:${shellSecrets['the database URL password']}@127.0.0.1:${closedPort}/codelab`,
      AGENT_RUNTIME__REDIS_URL: `redis://:${shellSecrets['the Redis URL password']}@127.0.0.1:${closedPort}/0`,
      AUTH_SERVICE__PRIVATE_KEY: pem,
      CODELAB_DEPLOY_TOKEN: shellSecrets.CODELAB_DEPLOY_TOKEN,
      GATEWAY__LOG_LEVEL: 'debug',
    });
    const allSecrets = (): Record<string, string> => ({
      ...shellSecrets,
      'the internal key (data/internal-api-key)': internalKey,
      'the admin password (data/auth/admin-password)': adminPassword,
      ...Object.fromEntries(
        pem
          .split('\n')
          .filter((l) => l.length > 20 && !l.startsWith('-----'))
          .map((l, i) => [`line ${i + 1} of the private key`, l]),
      ),
    });

    beforeAll(async () => {
      closedPort = await freePort();
      report = await debugInfo([], shellEnv());
    }, 120_000);

    it('prints every section, and exits 0', () => {
      expect(report.code, report.err).toBe(0);
      expect(report.err).toBe('');
      const titles = [...sections(report.out).keys()];
      for (const title of [
        'Versions',
        'Configuration',
        'Compose: stack',
        'npm start: health and readiness',
        'npm start: runtime metrics',
        'npm start: processes',
        'npm start: PostgreSQL',
        'npm start: Redis',
        'Summary',
      ]) {
        expect(
          titles.some((t) => t.startsWith(title)),
          `section "${title}" in ${JSON.stringify(titles)}`,
        ).toBe(true);
      }
      // No Docker daemon at DOCKER_HOST: the Compose section says why in one line, and the report goes on.
      const compose = section(report.out, 'Compose: stack').trim();
      expect(compose.split('\n')).toHaveLength(1);
      expect(compose).toMatch(/^\(not run: .+\)$/);
      expect(section(report.out, 'Versions')).toMatch(/^uname -a: \S+/m);
      expect(section(report.out, 'Versions')).toMatch(/^node -v: v\d+\./m);
      expect(section(report.out, 'Versions')).toContain('--- docker version');
    });

    it("reports each service's /health, /ready and version", () => {
      const health = section(report.out, 'npm start: health and readiness');
      for (const [name] of SERVICES) {
        const line = (p: string) => health.split('\n').find((l) => l.startsWith(name.padEnd(9)) && l.includes(`${url(name)}${p} `));
        expect(line('/health'), `${name} /health`).toMatch(new RegExp(`/health 200 \\{.*"version":"${versions[name]}"`));
        expect(line('/ready'), `${name} /ready`).toMatch(/\/ready 200 \{"status":"ready"/);
        expect(section(report.out, 'Versions')).toMatch(new RegExp(`^npm start ${name}\\s+${versions[name]}$`, 'm'));
      }
      expect(section(report.out, 'Summary')).toContain('npm start: found (answering: gateway runtime llm-proxy auth web)');
    });

    it("reports the runtime's /events/metrics .computed, read with the kept internal key", () => {
      expect(computed).toMatch(/^\{".+\}$/);
      const metrics = section(report.out, 'npm start: runtime metrics');
      expect(metrics).toContain(`internal key from: ${path.join(dataDir, 'internal-api-key')} (not shown)`);
      expect(metrics).toContain(`computed: ${computed}\n`);
    });

    it('reports the embedded database from data/pg.lock, and checks the configured URLs', () => {
      const pg = section(report.out, 'npm start: PostgreSQL');
      expect(pg).toMatch(new RegExp(`pg\\.lock: holder=platform pid=${launcher!.child.pid} state=serving url=postgres://`));
      expect(pg).toContain(`pid ${launcher!.child.pid} is alive`);
      expect(pg).toContain(`AUTH_SERVICE__DB_URL=postgres://codelab:<redacted>@127.0.0.1:${closedPort}/codelab: `);
      expect(section(report.out, 'npm start: Redis')).toContain(`AGENT_RUNTIME__REDIS_URL=redis://:<redacted>@127.0.0.1:${closedPort}/0: `);
      // The Redis that does not answer is a problem the summary names.
      expect(section(report.out, 'Summary')).toMatch(/redis \(AGENT_RUNTIME__REDIS_URL\): PING answered: .*refused/i);
      expect(section(report.out, 'Summary')).toContain(
        `the database of AUTH_SERVICE__DB_URL: pg_isready says: 127.0.0.1:${closedPort} - no response`,
      );
    });

    it('shows settings by name, secrets as <set, N chars>', () => {
      const config = section(report.out, 'Configuration');
      expect(config).toContain(`AUTH_SERVICE__MASTER_KEY=<set, ${shellSecrets.AUTH_SERVICE__MASTER_KEY.length} chars>`);
      expect(config).toContain(`LLM_PROXY__LITELLM_API_KEY=<set, ${shellSecrets.LLM_PROXY__LITELLM_API_KEY.length} chars>`);
      expect(config).toContain(`AUTH_SERVICE__PRIVATE_KEY=<set, ${pem.length} chars>`);
      expect(config).toContain(`CODELAB_DEPLOY_TOKEN=<set, ${shellSecrets.CODELAB_DEPLOY_TOKEN.length} chars>`);
      expect(config).toContain(`AUTH_SERVICE__DB_URL=postgres://codelab:<redacted>@127.0.0.1:${closedPort}/codelab`);
      expect(config).toContain('GATEWAY__LOG_LEVEL=debug');
      expect(config).toContain(`GATEWAY__PORT=${ports.gateway}`);
      expect(config).not.toMatch(/^PATH=/m);
    });

    it('prints no secret anywhere', () => {
      expectNoSecret(report.out, allSecrets());
      expect(report.out).not.toContain('PRIVATE KEY-----');
    });

    it('works without curl and jq (node stands in), with the same answers and no secret', async () => {
      const bare = await debugInfo([], { ...shellEnv(), PATH: pathWithout(['curl', 'jq'], path.join(dataDir, 'bin-without-curl-jq')) });
      expect(bare.code, bare.err).toBe(0);
      const health = section(bare.out, 'npm start: health and readiness');
      for (const [name] of SERVICES) expect(health).toMatch(new RegExp(`${url(name)}/ready 200 \\{"status":"ready"`));
      expect(section(bare.out, 'npm start: runtime metrics')).toContain(`computed: ${computed}\n`);
      expect(section(bare.out, 'Versions')).toMatch(new RegExp(`^npm start gateway\\s+${versions.gateway}$`, 'm'));
      expectNoSecret(bare.out, allSecrets());
    }, 60_000);

    it('says when the runtime refuses the internal key of the environment, without printing it', async () => {
      const wrong = `wrong-internal-key-${fake}`;
      const run = await debugInfo(['--mode', 'local'], { ...platformEnv(), AGENT_RUNTIME__INTERNAL_API_KEY: wrong });
      expect(run.code).toBe(0);
      const metrics = section(run.out, 'npm start: runtime metrics');
      expect(metrics).toContain('internal key from: AGENT_RUNTIME__INTERNAL_API_KEY (not shown)');
      expect(metrics).toMatch(/\/events\/metrics: 401 /);
      expect(section(run.out, 'Summary')).toContain('runtime refused the internal key from AGENT_RUNTIME__INTERNAL_API_KEY (401)');
      // --mode local: Compose is not looked at.
      expect(section(run.out, 'Compose: stack').trim()).toBe('(not run: --mode local)');
      expectNoSecret(run.out, { 'the wrong internal key': wrong, 'the internal key': internalKey });
    }, 60_000);
  });

  it.skipIf(noShellcheck)('passes shellcheck', () => {
    return new Promise<void>((resolve, reject) =>
      execFile(findProgram('shellcheck')!, [SCRIPT], (err, stdout) => (err ? reject(new Error(`shellcheck:\n${stdout}`)) : resolve())),
    );
  });

  it('answers --help, and refuses a bad option with exit 2', async () => {
    const help = await debugInfo(['--help'], { PATH: process.env.PATH ?? '' });
    expect(help.code).toBe(0);
    for (const word of [
      '--mode',
      '--project-name',
      '--file',
      '--tail',
      'COMPOSE_PROJECT_NAME',
      'COMPOSE_FILE',
      'DOCKER_HOST',
      'CODELAB_DATA_DIR',
    ])
      expect(help.out).toContain(word);
    for (const args of [['--bogus'], ['--mode', 'kubernetes'], ['--tail', 'many'], ['-p']]) {
      const run = await debugInfo(args, { PATH: process.env.PATH ?? '' });
      expect(run.code, args.join(' ')).toBe(2);
      expect(run.out).toBe('');
      expect(run.err).toMatch(/^debug-info: .+ \(see --help\)\n$/);
    }
  });

  describe('docs/troubleshooting.md names only what exists', () => {
    it('error codes: every one it names is a code a service answers with', () => {
      const codes = new Set(platformErrorCodes());
      const nodes = new Set(['ERR_UNKNOWN_FILE_EXTENSION']); // Node's own, quoted as Node prints it
      const named = [...GUIDE.matchAll(/\b((?:GW_|RT_|LLMP_)?ERR_[A-Z_]+)\b/g)].map((m) => m[1]!).filter((code) => !nodes.has(code));
      expect(named.length).toBeGreaterThan(15);
      expect([...new Set(named)].filter((code) => !codes.has(code))).toEqual([]);
    });

    it("settings: every <P>__* it names (outside the table of upstream's) is one a service reads", () => {
      const all = new Set<string>();
      for (const [prefix, spec] of [
        ['GATEWAY', gatewaySettings],
        ['AGENT_RUNTIME', runtimeSettings],
        ['LLM_PROXY', llmProxySettings],
        ['AUTH_SERVICE', authSettings],
      ] as const) {
        for (const [key, s] of Object.entries({ ...commonSettings({ port: 0 }), ...spec }))
          all.add(envName(prefix, key, s as SettingSpec<unknown>));
      }
      const named = [...GUIDE_OWN.matchAll(/\b((?:GATEWAY|AGENT_RUNTIME|LLM_PROXY|AUTH_SERVICE)__[A-Z_]*[A-Z])\b/g)].map((m) => m[1]!);
      expect(named.length).toBeGreaterThan(40);
      expect([...new Set(named)].filter((name) => !all.has(name))).toEqual([]);
      // and the deployment's own variables are those of docker-compose.yml, .env.example or the launcher
      const deployment = ['docker-compose.yml', '.env.example', 'scripts/start.ts', 'README.md']
        .map((f) => readFileSync(path.join(REPO_ROOT, f), 'utf8'))
        .join('\n');
      const own = [...GUIDE_OWN.matchAll(/\b((?:CODELAB|NGINX|POSTGRES|REDIS|NODE_BASE)_[A-Z_]*[A-Z])\b/g)].map((m) => m[1]!);
      expect([...new Set(own)].filter((name) => !deployment.includes(name))).toEqual([]);
    });

    it('alerts: every one it names has a runbook', () => {
      const runbooks = readFileSync(path.join(REPO_ROOT, 'docs', 'runbooks.md'), 'utf8');
      const named = [...GUIDE.matchAll(/`((?:Codelab|Auth|Gateway|LlmProxy)[A-Z][A-Za-z]+)`/g)].map((m) => m[1]!);
      expect(named.length).toBeGreaterThan(5);
      expect([...new Set(named)].filter((alert) => !runbooks.includes(`\n## ${alert}\n`))).toEqual([]);
    });

    it("metrics: every one it names is on a service's /metrics", async () => {
      const scrapes = (await Promise.all(SERVICES.map(async ([name]) => (await fetch(`${url(name)}/metrics`)).text()))).join('\n');
      const named = [
        ...GUIDE.matchAll(/`((?:gateway|runtime|llm_proxy|auth|db_client|http|gen_ai|nodejs|process|service)_[a-z0-9_]+)(?:\{[^`]*\})?`/g),
      ].map((m) => m[1]!);
      expect(named.length).toBeGreaterThan(25);
      expect([...new Set(named)].filter((metric) => !scrapes.includes(`# TYPE ${metric} `))).toEqual([]);
    });
  });

  describe('Compose mode, with a stand-in docker', () => {
    /**
     * `docker` and `docker-compose` as far as the script uses them. Containers: two gateways (scaled),
     * one of each other service; `exec … node -e` runs the snippet with the container's environment,
     * whose ports and internal key point at the platform npm start runs here.
     */
    const FAKE_DOCKER = String.raw`
import { appendFileSync, readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
const cfg = JSON.parse(readFileSync(process.env.FAKE_DOCKER_CONFIG, 'utf8'));
const [prog, ...args] = process.argv.slice(2);
appendFileSync(cfg.log, JSON.stringify({ prog, args, env: { COMPOSE_PROJECT_NAME: process.env.COMPOSE_PROJECT_NAME, COMPOSE_FILE: process.env.COMPOSE_FILE, DOCKER_HOST: process.env.DOCKER_HOST, CODELAB_INTERNAL_API_KEY: process.env.CODELAB_INTERNAL_API_KEY } }) + '\n');
const out = (s) => process.stdout.write(s.endsWith('\n') ? s : s + '\n');
const ids = (service) => cfg.containers.filter((c) => !service || c.service === service).map((c) => c.id);
const byId = (id) => cfg.containers.find((c) => c.id === id);
function compose(a) {
  const globals = [];
  while (a[0] === '-p' || a[0] === '-f') globals.push(a.shift(), a.shift());
  const [cmd, ...rest] = a;
  // as Compose does when the file's \${CODELAB_INTERNAL_API_KEY:?…} is set neither in the environment nor in .env
  if (cfg.requireKey && cmd !== 'version' && !process.env.CODELAB_INTERNAL_API_KEY) {
    process.stderr.write('error while interpolating services.auth.environment.AUTH_SERVICE__INTERNAL_API_KEY: required variable CODELAB_INTERNAL_API_KEY is missing a value: set it in .env\n');
    process.exit(15);
  }
  const flags = rest.filter((x) => x.startsWith('-'));
  const positional = rest.filter((x) => !x.startsWith('-'));
  switch (cmd) {
    case 'version': return out(cfg.v1 ? 'docker-compose version 1.29.2, build fake' : 'Docker Compose version v2.99.0-fake');
    case 'ps':
      if (flags.includes('-q')) return out(ids(positional[0]).join('\n'));
      return out('NAME  SERVICE  STATUS\n' + cfg.containers.map((c) => c.name + '  ' + c.service + '  running').join('\n'));
    case 'config': return out([...new Set(cfg.containers.map((c) => c.service))].join('\n'));
    case 'images': return out('CONTAINER  REPOSITORY  TAG  SIZE\n' + cfg.containers.map((c) => c.name + '  ' + c.image + '  latest  ' + '210MB').join('\n'));
    case 'port': return out('0.0.0.0:' + cfg.nginxPort);
    case 'logs': return out((cfg.logs[positional[0]] ?? []).join('\n'));
    default: process.stderr.write('fake compose: ' + cmd + '?\n'); process.exit(1);
  }
}
if (prog === 'docker-compose') compose(args);
else if (args[0] === 'compose') {
  if (cfg.v1) { process.stderr.write("docker: 'compose' is not a docker command.\n"); process.exit(1); }
  compose(args.slice(1));
} else if (args[0] === 'version') out('Client: fake\n Version: 99.0.0');
else if (args[0] === 'inspect') {
  const format = args[2], c = byId(args[3]);
  if (!c) { process.stderr.write('No such object\n'); process.exit(1); }
  if (format === '{{.Name}}') out('/' + c.name);
  // Go's %q quoting, as the script asks for it: a value's newlines stay in its line
  else if (format === '{{range .Config.Env}}{{printf "%q\\n" .}}{{end}}') out(Object.entries(c.env).map(([k, v]) => JSON.stringify(k + '=' + v)).join('\n'));
  else out('/' + c.name + ' state=running health=healthy restarts=' + (c.restarts ?? 0) + ' exit=0 oom_killed=false started=2026-12-02T10:00:00Z image=' + c.image);
} else if (args[0] === 'stats') out('NAME  CPU %  MEM USAGE / LIMIT\n' + args.filter((x) => byId(x)).map((id) => byId(id).name + '  0.5%  100MiB / 1GiB').join('\n'));
else if (args[0] === 'exec') {
  const c = byId(args[1]);
  const cmd = args.slice(2);
  if (cmd[0] === 'node') {
    const r = spawnSync(process.execPath, cmd.slice(1), { env: { ...c.env, PATH: process.env.PATH }, encoding: 'utf8' });
    process.stdout.write(r.stdout); process.stderr.write(r.stderr); process.exit(r.status ?? 1);
  }
  const script = cmd.join(' ');
  if (script.includes('pg_isready')) out(script.includes('-U "$POSTGRES_USER"') ? '/var/run/postgresql:5432 - accepting connections' : 'pg_isready: no user from the environment');
  else if (script.includes('psql')) out('active 1\nidle 9\n100');
  else if (cmd[0] === 'redis-cli' && cmd[1] === 'ping') out('PONG');
  else if (cmd[0] === 'redis-cli') out('# Memory\r\nused_memory_human:1.5M\r\nmaxmemory_human:256.00M\r\nmaxmemory_policy:volatile-lru\r');
  else { process.stderr.write('fake exec: ' + script + '?\n'); process.exit(1); }
} else { process.stderr.write('fake docker: ' + args.join(' ') + '?\n'); process.exit(1); }
`;

    let dir: string;
    let nginx: Server;
    let nginxPort: number;
    const pgPassword = `pg-${randomBytes(12).toString('hex')}`;
    const masterKey = `admin-${randomBytes(12).toString('hex')}`;
    const litellmKey = `sk-test-${randomBytes(12).toString('hex')}`;
    const envFileKey = `env-file-key-${randomBytes(12).toString('hex')}`;
    const jwt = `eyJhbGciOiJSUzI1NiJ9.${Buffer.from(JSON.stringify({ sub: 'admin', scope: 'api:admin' })).toString('base64url')}.${randomBytes(32).toString('base64url')}`;
    const accessToken = `at-${randomBytes(12).toString('hex')}`;
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString().trim();

    const composeSecrets = () => ({
      'the internal key (a container environment)': internalKey,
      POSTGRES_PASSWORD: pgPassword,
      AUTH_SERVICE__MASTER_KEY: masterKey,
      LLM_PROXY__LITELLM_API_KEY: litellmKey,
      'the internal key of .env': envFileKey,
      'a JWT in a log line': jwt.split('.')[2]!,
      'an access_token in a log line': accessToken,
      ...Object.fromEntries(
        pem
          .split('\n')
          .filter((l) => !l.startsWith('-----'))
          .map((l, i) => [`line ${i + 1} of the private key`, l]),
      ),
    });

    beforeAll(async () => {
      dir = await mkdtemp(path.join(tmpdir(), 'codelab-debug-info-compose-'));
      nginx = createServer((req, res) => {
        const bodies: Record<string, string> = {
          '/nginx-health': 'healthy\n',
          '/gateway-health': JSON.stringify({ status: 'healthy', service: 'gateway', version: versions.gateway }),
          '/auth-health': JSON.stringify({ status: 'healthy', service: 'auth', version: versions.auth }),
          '/web-health': JSON.stringify({ status: 'healthy', service: 'web', version: versions.web }),
        };
        res.writeHead(bodies[req.url ?? ''] ? 200 : 404).end(bodies[req.url ?? ''] ?? 'not found');
      });
      nginxPort = await freePort();
      await new Promise<void>((resolve) => nginx.listen(nginxPort, '127.0.0.1', resolve));

      const dbUrl = `postgres://codelab:${pgPassword}@postgres:5432/codelab`;
      const common = { PATH: '/usr/local/bin:/usr/bin', NODE_VERSION: '26.10.0', NODE_ENV: 'production', CODELAB_DATA_DIR: '/data' };
      let count = 0;
      const container = (
        service: string,
        n: number,
        prefix: string | null,
        env: Record<string, string>,
        extra: Record<string, unknown> = {},
      ) => ({
        id: `c0de${String(++count).padStart(8, '0')}`,
        service,
        name: `codelab-test-${service}-${n}`,
        image: `codelab/${service}`,
        env: {
          ...common,
          ...(prefix
            ? {
                [`${prefix}__PORT`]: String(ports[service as Name]),
                [`${prefix}__INTERNAL_API_KEY`]: internalKey,
                [`${prefix}__ENVIRONMENT`]: 'production',
                [`${prefix}__LOG_LEVEL`]: '',
              }
            : {}),
          ...env,
        },
        ...extra,
      });
      const containers = [
        container('nginx', 1, null, {}),
        container('auth', 1, 'AUTH_SERVICE', {
          AUTH_SERVICE__DB_URL: dbUrl,
          AUTH_SERVICE__MASTER_KEY: masterKey,
          AUTH_SERVICE__PRIVATE_KEY: pem,
          AUTH_SERVICE__PRIVATE_KEY_PATH: '/data/auth/keys/private_key.pem',
        }),
        container('gateway', 1, 'GATEWAY', { GATEWAY__AGENT_URL: 'http://runtime:8001' }),
        container('gateway', 2, 'GATEWAY', { GATEWAY__AGENT_URL: 'http://runtime:8001' }),
        container(
          'runtime',
          1,
          'AGENT_RUNTIME',
          { AGENT_RUNTIME__DB_URL: dbUrl, AGENT_RUNTIME__REDIS_URL: 'redis://redis:6379/0' },
          { restarts: 3 },
        ),
        container('llm-proxy', 1, 'LLM_PROXY', { LLM_PROXY__LITELLM_API_KEY: litellmKey, LLM_PROXY__LLM_MODE: 'openai' }),
        container('web', 1, 'WEB', { WEB__OPS_TARGETS: 'auth=http://auth:8003,gateway=http://gateway:8000' }),
        container('postgres', 1, null, { POSTGRES_USER: 'codelab', POSTGRES_DB: 'codelab', POSTGRES_PASSWORD: pgPassword }),
        container('redis', 1, null, {}),
      ];
      const logs = {
        nginx: [`{"path":"/api/v1/ws/s1","status":101,"query":"access_token=${accessToken}"}`],
        gateway: [
          `{"level":30,"msg":"request","headers":{"authorization":"Bearer ${jwt}"}}`,
          `GET /api/v1/ws/s1?access_token=${accessToken} 101`,
          `retry with: curl -H "Authorization: Bearer ${jwt}" http://gateway:8000/api/v1/sessions`,
        ],
        auth: [
          `{"level":40,"msg":"login","password":"${masterKey}"}`,
          `connecting to ${dbUrl}`,
          `key loaded: ${pem.split('\n').join('\n')}`,
          'after the key: still printed',
        ],
        runtime: [`{"level":50,"msg":"internal call refused","x-internal-auth":"${internalKey}"}`, `X-Internal-Auth: ${envFileKey}`],
        'llm-proxy': [`upstream answered 401 for key ${litellmKey}`],
        web: ['{"level":30,"msg":"listening","port":3000}'],
        postgres: ['database system is ready to accept connections'],
        redis: ['Ready to accept connections tcp'],
      };
      writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ log: path.join(dir, 'calls.jsonl'), containers, logs, nginxPort }));
      writeFileSync(path.join(dir, 'fake-docker.mjs'), FAKE_DOCKER);
      mkdirSync(path.join(dir, 'bin'));
      for (const prog of ['docker', 'docker-compose']) {
        writeFileSync(
          path.join(dir, 'bin', prog),
          `#!/bin/sh\nexec "${process.execPath}" "${path.join(dir, 'fake-docker.mjs')}" ${prog} "$@"\n`,
        );
        chmodSync(path.join(dir, 'bin', prog), 0o755);
      }
      mkdirSync(path.join(dir, 'stack'));
      // biome-ignore-start lint/suspicious/noTemplateCurlyInString: Compose's ${VAR:?message} interpolation
      writeFileSync(
        path.join(dir, 'stack', 'docker-compose.yml'),
        'services:\n  auth:\n    environment:\n      AUTH_SERVICE__INTERNAL_API_KEY: ${CODELAB_INTERNAL_API_KEY:?set it in .env}\n',
      );
      // biome-ignore-end lint/suspicious/noTemplateCurlyInString: end
      writeFileSync(
        path.join(dir, 'stack', '.env'),
        `# the stack's secrets\nCODELAB_INTERNAL_API_KEY="${envFileKey}"\nPOSTGRES_PASSWORD=${pgPassword}\n`,
      );
    }, 60_000);
    afterAll(async () => {
      await new Promise((resolve) => nginx?.close(resolve));
      await rm(dir, { recursive: true, force: true });
    });

    const composeEnv = (extra: Record<string, string> = {}) => ({
      PATH: `${path.join(dir, 'bin')}:${process.env.PATH ?? ''}`,
      FAKE_DOCKER_CONFIG: path.join(dir, 'config.json'),
      DOCKER_HOST: 'unix:///run/test-docker.sock',
      ...extra,
    });
    const calls = () =>
      readFileSync(path.join(dir, 'calls.jsonl'), 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { prog: string; args: string[]; env: Record<string, string | undefined> });

    it('reports the stack with `docker compose -p … -f …`, each container from inside, and no secret', async () => {
      const file = path.join(dir, 'stack', 'docker-compose.yml');
      const run = await debugInfo(['--mode', 'compose', '-p', 'codelab-test', '-f', file], composeEnv());
      expect(run.code, run.err).toBe(0);
      const out = run.out;

      // Every compose call names the project and the file; DOCKER_HOST reaches docker.
      const composeCalls = calls().filter((c) => c.args[0] === 'compose' && c.args[1] !== 'version');
      expect(composeCalls.length).toBeGreaterThan(5);
      for (const c of composeCalls) expect(c.args.slice(1, 5)).toEqual(['-p', 'codelab-test', '-f', file]);
      expect(calls().every((c) => c.env.DOCKER_HOST === 'unix:///run/test-docker.sock')).toBe(true);

      expect(section(out, 'Compose: stack')).toContain('codelab-test-gateway-2');
      expect(section(out, 'Compose: containers')).toMatch(/^codelab-test-runtime-1 state=running health=healthy restarts=3 /m);
      expect(section(out, 'Compose: services')).toContain('llm-proxy');
      expect(section(out, 'Compose: images')).toContain('codelab/gateway');
      expect(section(out, 'Compose: resource usage')).toContain('codelab-test-postgres-1');

      // /health and /ready from inside every container, both gateway replicas included.
      const health = section(out, 'Compose: health and readiness');
      for (const [name] of SERVICES) {
        expect(health).toMatch(new RegExp(`^codelab-test-${name}-1 /health 200 \\{.*"version":"${versions[name]}"`, 'm'));
        expect(health).toMatch(new RegExp(`^codelab-test-${name}-1 /ready 200 \\{"status":"ready"`, 'm'));
      }
      expect(health).toMatch(/^codelab-test-gateway-2 \/ready 200 /m);
      for (const [name] of SERVICES)
        expect(section(out, 'Versions')).toMatch(new RegExp(`^compose ${name}\\s+${versions[name]} \\(codelab-test-${name}-1\\)$`, 'm'));
      expect(section(out, 'Versions')).toMatch(new RegExp(`^compose gateway\\s+${versions.gateway} \\(codelab-test-gateway-2\\)$`, 'm'));

      const nginxSection = section(out, 'Compose: through nginx');
      for (const p of [
        '/nginx-health 200 healthy',
        `/gateway-health 200 {"status":"healthy","service":"gateway","version":"${versions.gateway}"}`,
        '/auth-health 200 ',
        `/web-health 200 {"status":"healthy","service":"web","version":"${versions.web}"}`,
      ]) {
        expect(nginxSection).toContain(`http://127.0.0.1:${nginxPort}${p}`);
      }
      expect(section(out, 'Compose: PostgreSQL')).toContain('pg_isready: /var/run/postgresql:5432 - accepting connections');
      expect(section(out, 'Compose: PostgreSQL')).toContain('idle 9');
      expect(section(out, 'Compose: Redis')).toContain('redis-cli ping: PONG');
      expect(section(out, 'Compose: Redis')).toMatch(/^used_memory_human:1\.5M$/m);
      expect(section(out, 'Compose: runtime metrics')).toContain(`computed: ${computed}\n`);

      // Logs: every service's, scrubbed (the line after a private key is kept).
      const logs = section(out, 'Compose: logs (last 50 lines');
      for (const service of ['nginx', 'gateway', 'auth', 'runtime', 'llm-proxy', 'web', 'postgres', 'redis'])
        expect(logs).toContain(`--- ${service}\n`);
      expect(logs).toContain('"authorization":"<redacted>"');
      expect(logs).toContain('curl -H "Authorization: Bearer <redacted');
      expect(logs).toContain('access_token=<redacted>');
      expect(logs).toContain('postgres://codelab:<redacted>@postgres:5432/codelab');
      expect(logs).toContain('<private key redacted>');
      expect(logs).toContain('after the key: still printed');
      expect(logs).toContain('database system is ready to accept connections');
      expect(calls().some((c) => c.args.includes('logs') && c.args.includes('--tail=50') && c.args.includes('--no-color'))).toBe(true);

      // The containers' settings by name; secrets hidden, blank ones (unset) and PATH left out.
      const config = section(out, "Compose: configuration (the containers' environment");
      expect(config).toContain(`  AUTH_SERVICE__MASTER_KEY=<set, ${masterKey.length} chars>`);
      expect(config).toContain(`  GATEWAY__INTERNAL_API_KEY=<set, ${internalKey.length} chars>`);
      expect(config).toContain(`  AUTH_SERVICE__PRIVATE_KEY=<set, ${pem.length} chars>`);
      expect(config).toContain('  AUTH_SERVICE__PRIVATE_KEY_PATH=/data/auth/keys/private_key.pem');
      expect(config).toContain(`  POSTGRES_PASSWORD=<set, ${pgPassword.length} chars>`);
      expect(config).toContain('  AUTH_SERVICE__DB_URL=postgres://codelab:<redacted>@postgres:5432/codelab');
      expect(config).toContain('  LLM_PROXY__LLM_MODE=openai');
      expect(config).not.toContain('GATEWAY__LOG_LEVEL');
      expect(config).not.toMatch(/^\s*PATH=/m);

      const summary = section(out, 'Summary');
      expect(summary).toContain('Compose stack: found (9 containers)');
      expect(summary).toContain('npm start: not examined: --mode compose');
      expect(summary).toContain('container codelab-test-runtime-1 restarted 3 times');

      expectNoSecret(out, composeSecrets());
      expect(out).not.toContain('PRIVATE KEY-----');
    }, 120_000);

    it('uses docker-compose (v1) when `docker compose` is missing, and leaves COMPOSE_PROJECT_NAME and COMPOSE_FILE to Compose', async () => {
      const config = JSON.parse(readFileSync(path.join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
      writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...config, v1: true, requireKey: true }));
      try {
        writeFileSync(path.join(dir, 'calls.jsonl'), '');
        const file = path.join(dir, 'stack', 'docker-compose.yml');
        const run = await debugInfo(
          [],
          composeEnv({
            COMPOSE_PROJECT_NAME: 'from-env',
            COMPOSE_FILE: file,
            ...platformEnv(),
            PATH: `${path.join(dir, 'bin')}:${process.env.PATH ?? ''}`,
          }),
        );
        expect(run.code, run.err).toBe(0);
        expect(sections(run.out).has('Compose: stack (docker-compose ps)')).toBe(true);
        const v1 = calls().filter((c) => c.prog === 'docker-compose');
        expect(v1.length).toBeGreaterThan(5);
        for (const c of v1.filter((c) => c.args[0] !== 'version')) {
          expect(c.args).not.toContain('-p');
          expect(c.env).toMatchObject({ COMPOSE_PROJECT_NAME: 'from-env', COMPOSE_FILE: file });
        }
        expect(section(run.out, 'Compose: stack')).toContain('project: from-env');
        // The file's required variable, set nowhere: Compose is read with a stand-in value, and says so.
        expect(section(run.out, 'Compose: stack')).toContain(
          "(the Compose file's required variables are set neither here nor in .env: read with stand-in values; the first error was: ",
        );
        expect(v1.filter((c) => c.args[0] !== 'version').at(-1)!.env.CODELAB_INTERNAL_API_KEY).toBe('stand-in-for-debug-info');
        // auto mode: the npm start platform is reported too, in its own sections.
        expect(section(run.out, 'npm start: health and readiness')).toMatch(/\/ready 200 /);
        expect(section(run.out, 'Compose: runtime metrics')).toContain(`computed: ${computed}\n`);
        expectNoSecret(run.out, { ...composeSecrets(), 'the admin password': adminPassword });
      } finally {
        writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config));
      }
    }, 120_000);
  });
});
