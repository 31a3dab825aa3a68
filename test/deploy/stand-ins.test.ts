/**
 * The stand-ins for the official images (test/deploy/stand-ins, built here because no registry can
 * be reached) honour the contracts docker-compose.yml and the Dockerfile rely on: the node base's
 * layout and user, postgres's POSTGRES_* start-up, authentication, persistence and refusal without
 * a password, redis reachable from another container, nginx's conf.d and logs on stdout/stderr,
 * Prometheus and Alertmanager with their official commands, users and volumes.
 * Skips without Docker (naming what to install); fails under CI=true.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  IMAGES,
  docker,
  dockerMissing,
  dockerOk,
  ensureStandIns,
  exec,
  publishedAddress,
  removeAll,
  run,
  uniqueName,
  waitFor,
} from './docker.ts';

const LONG = 120_000;

describe.skipIf(dockerMissing({ compose: false }))('stand-in images', () => {
  const network = uniqueName('stand-ins');
  const containers: string[] = [];
  const volumes: string[] = [];
  const dirs: string[] = [];
  const container = (role: string): string => {
    const name = uniqueName(`stand-in-${role}`);
    containers.push(name);
    return name;
  };

  beforeAll(async () => {
    await ensureStandIns();
    await dockerOk(['network', 'create', '--label', 'org.codelab.test=stand-ins', network]);
  }, 30 * 60_000);

  afterAll(async () => {
    await removeAll({ containers, networks: [network], volumes });
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  }, LONG);

  describe(IMAGES.node, () => {
    it(
      'runs node 26 and npm as the user node (uid/gid 1000, home /home/node)',
      async () => {
        const r = await run(IMAGES.node, ['sh', '-c', 'id -u; id -g; echo "$HOME"; node -v; npm -v; npx -v'], { user: 'node' });
        expect(r.code, r.stderr).toBe(0);
        const [uid, gid, home, node, npm, npx] = r.stdout.trim().split('\n');
        expect([uid, gid, home]).toEqual(['1000', '1000', '/home/node']);
        expect(node).toMatch(/^v26\.\d+\.\d+$/);
        expect(npm).toMatch(/^11\.\d+\.\d+$/);
        expect(npx).toBe(npm);
      },
      LONG,
    );

    it(
      'has the official layout: node, npm and npx in /usr/local/bin, ENTRYPOINT docker-entrypoint.sh, CMD node, no WORKDIR or USER',
      async () => {
        const config = JSON.parse(await dockerOk(['image', 'inspect', '-f', '{{json .Config}}', IMAGES.node])) as {
          Cmd: string[];
          Entrypoint: string[];
          WorkingDir: string;
          User: string;
          Env: string[];
        };
        expect(config.Cmd).toEqual(['node']);
        expect(config.Entrypoint).toEqual(['docker-entrypoint.sh']);
        expect(config.WorkingDir).toBe('');
        expect(config.User).toBe('');
        expect(config.Env.find((e) => e.startsWith('NODE_VERSION='))).toMatch(/^NODE_VERSION=26\./);
        const r = await run(IMAGES.node, [
          'sh',
          '-c',
          'readlink -f /usr/local/bin/node /usr/local/bin/npm /usr/local/bin/npx; getent passwd node',
        ]);
        expect(r.stdout.trim().split('\n')).toEqual([
          '/usr/local/bin/node',
          '/usr/local/lib/node_modules/npm/bin/npm-cli.js',
          '/usr/local/lib/node_modules/npm/bin/npx-cli.js',
          'node:x:1000:1000::/home/node:/bin/bash',
        ]);
        // the entrypoint runs node when the first argument is an option, as the official one
        const p = await run(IMAGES.node, ['-p', 'process.getuid() + " " + process.pid']);
        expect(p.stdout.trim()).toBe('0 1');
      },
      LONG,
    );
  });

  describe(IMAGES.postgres, () => {
    const env = { POSTGRES_USER: 'codelab', POSTGRES_PASSWORD: 'stand-in-secret', POSTGRES_DB: 'codelab' };
    const volume = uniqueName('stand-in-pgdata');
    volumes.push(volume);
    const first = container('postgres');

    const ready = (name: string): Promise<void> =>
      // over TCP: the socket-only server of the first start's initialisation does not count
      waitFor(
        `${name} ready`,
        async () => (await exec(name, ['pg_isready', '-h', '127.0.0.1', '-U', 'codelab', '-d', 'codelab'])).code === 0,
        90_000,
      );
    const psqlOverNetwork = (host: string, password: string, sql: string) =>
      run(IMAGES.postgres, ['psql', '-h', host, '-U', 'codelab', '-d', 'codelab', '-Atc', sql], {
        network,
        containerEnv: { PGPASSWORD: password },
      });

    it(
      'initialises from POSTGRES_USER/PASSWORD/DB, answers pg_isready, takes the password over TCP from another container and refuses a wrong one',
      async () => {
        await dockerOk(['volume', 'create', volume]);
        await dockerOk([
          'run',
          '-d',
          '--name',
          first,
          '--network',
          network,
          ...Object.entries(env).flatMap(([k, v]) => ['-e', `${k}=${v}`]),
          '-v',
          `${volume}:/var/lib/postgresql/data`,
          IMAGES.postgres,
        ]);
        await ready(first);
        // as in `docker compose exec postgres pg_isready -U codelab` (the Compose healthcheck)
        const isReady = await exec(first, ['pg_isready', '-U', 'codelab', '-d', 'codelab']);
        expect(isReady.code, isReady.stderr).toBe(0);
        expect(isReady.stdout).toContain('accepting connections');
        // PID 1 is the server, as the user postgres
        const pid1 = await exec(first, ['sh', '-c', 'tr "\\0" " " < /proc/1/cmdline; stat -c " %U" /proc/1']);
        expect(pid1.stdout.trim()).toMatch(/^postgres\s+postgres$/);

        const ok = await psqlOverNetwork(
          first,
          env.POSTGRES_PASSWORD,
          "SELECT current_user, current_database(), pg_encoding_to_char(encoding) FROM pg_database WHERE datname = 'codelab'",
        );
        expect(ok.code, ok.stderr).toBe(0);
        expect(ok.stdout.trim()).toBe('codelab|codelab|UTF8');
        const hba = await exec(first, ['sh', '-c', 'grep -v "^#" "$PGDATA/pg_hba.conf" | grep "^host all all all"']);
        expect(hba.stdout.trim()).toBe('host all all all scram-sha-256');

        const wrong = await psqlOverNetwork(first, 'not-the-password', 'SELECT 1');
        expect(wrong.code).not.toBe(0);
        expect(wrong.stderr).toContain('password authentication failed for user "codelab"');
      },
      LONG,
    );

    it(
      'keeps its data across `docker restart` and in a new container on the same volume (no second initialisation)',
      async () => {
        const created = await exec(first, [
          'psql',
          '-v',
          'ON_ERROR_STOP=1',
          '-U',
          'codelab',
          '-d',
          'codelab',
          '-c',
          'CREATE TABLE kept (x int); INSERT INTO kept VALUES (42)',
        ]);
        expect(created.code, created.stderr).toBe(0);

        await dockerOk(['restart', first], { timeoutMs: 60_000 });
        await ready(first);
        expect((await exec(first, ['psql', '-U', 'codelab', '-d', 'codelab', '-Atc', 'SELECT x FROM kept'])).stdout.trim()).toBe('42');
        // `docker stop` sends SIGINT (STOPSIGNAL, as the official image): fast shutdown, exit 0
        await dockerOk(['stop', first], { timeoutMs: 60_000 });
        expect(await dockerOk(['inspect', '-f', '{{.State.ExitCode}}', first])).toBe('0');
        const logs = await docker(['logs', first]);
        expect(logs.stderr).toContain('received fast shutdown request');
        expect(logs.stdout).toContain('PostgreSQL init process complete; ready for start up.');
        expect(logs.stdout).toContain('PostgreSQL Database directory appears to contain a database; Skipping initialization');
        await dockerOk(['rm', first]);

        const second = container('postgres-again');
        // the password given now is not used: the volume's cluster keeps the first one
        await dockerOk([
          'run',
          '-d',
          '--name',
          second,
          '--network',
          network,
          '-e',
          'POSTGRES_PASSWORD=another',
          '-v',
          `${volume}:/var/lib/postgresql/data`,
          IMAGES.postgres,
        ]);
        await ready(second);
        const kept = await psqlOverNetwork(second, env.POSTGRES_PASSWORD, 'SELECT x FROM kept');
        expect(kept.code, kept.stderr).toBe(0);
        expect(kept.stdout.trim()).toBe('42');
      },
      LONG,
    );

    it(
      'runs /docker-entrypoint-initdb.d scripts once, on the first start',
      async () => {
        const dir = mkdtempSync(path.join(tmpdir(), 'stand-in-initdb-'));
        dirs.push(dir);
        chmodSync(dir, 0o755);
        writeFileSync(path.join(dir, '10-table.sql'), 'CREATE TABLE from_initdb (note text);\n');
        writeFileSync(
          path.join(dir, '20-row.sh'),
          'psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" -c "INSERT INTO from_initdb VALUES (\'sourced\')"\n',
        );
        const name = container('postgres-initdb');
        await dockerOk([
          'run',
          '-d',
          '--name',
          name,
          '-e',
          'POSTGRES_PASSWORD=x',
          '-v',
          `${dir}:/docker-entrypoint-initdb.d:ro`,
          IMAGES.postgres,
        ]);
        await waitFor(
          `${name} ready`,
          async () => (await exec(name, ['pg_isready', '-h', '127.0.0.1', '-U', 'postgres'])).code === 0,
          90_000,
        );
        expect((await exec(name, ['psql', '-U', 'postgres', '-Atc', 'SELECT note FROM from_initdb'])).stdout.trim()).toBe('sourced');
        await dockerOk(['restart', name], { timeoutMs: 60_000 });
        await waitFor(
          `${name} ready again`,
          async () => (await exec(name, ['pg_isready', '-h', '127.0.0.1', '-U', 'postgres'])).code === 0,
          90_000,
        );
        expect((await exec(name, ['psql', '-U', 'postgres', '-Atc', 'SELECT count(*) FROM from_initdb'])).stdout.trim()).toBe('1');
      },
      LONG,
    );

    it(
      'refuses to start without POSTGRES_PASSWORD, saying why',
      async () => {
        const r = await run(IMAGES.postgres, [], { containerEnv: { POSTGRES_USER: 'codelab' }, timeoutMs: 60_000 });
        expect(r.code).toBe(1);
        expect(r.stderr).toContain('Error: Database is uninitialized and superuser password is not specified.');
        expect(r.stderr).toContain('POSTGRES_HOST_AUTH_METHOD=trust');
      },
      LONG,
    );
  });

  describe(IMAGES.redis, () => {
    it(
      'answers PING from another container on the network, redis-server as PID 1 with the command given',
      async () => {
        const name = container('redis');
        await dockerOk(['run', '-d', '--name', name, '--network', network, IMAGES.redis, 'redis-server', '--appendonly', 'yes']);
        await waitFor(`${name} ready`, async () => (await exec(name, ['redis-cli', 'ping'])).stdout.trim() === 'PONG', 30_000);
        const ping = await run(IMAGES.redis, ['redis-cli', '-h', name, 'ping'], { network });
        expect(ping.code, ping.stderr).toBe(0);
        expect(ping.stdout.trim()).toBe('PONG');
        const config = await run(IMAGES.redis, ['redis-cli', '-h', name, 'config', 'get', 'appendonly'], { network });
        expect(config.stdout.trim().split('\n')).toEqual(['appendonly', 'yes']);
        const pid1 = await exec(name, ['sh', '-c', 'tr "\\0" " " < /proc/1/cmdline; echo; stat -c "%U" /proc/1; pwd']);
        const [cmdline, user, cwd] = pid1.stdout.split('\n');
        expect(cmdline).toMatch(/^redis-server \*:6379/);
        expect([user, cwd]).toEqual(['redis', '/data']);
        await dockerOk(['stop', name], { timeoutMs: 60_000 });
        expect(await dockerOk(['inspect', '-f', '{{.State.ExitCode}}', name])).toBe('0');
      },
      LONG,
    );
  });

  describe(`${IMAGES.prometheus} and ${IMAGES.alertmanager}`, () => {
    it(
      'run their official commands as nobody; Prometheus scrapes itself and delivers a rule’s alert to Alertmanager on the network',
      async () => {
        const am = container('alertmanager');
        await dockerOk(['run', '-d', '--name', am, '--network', network, '-p', '127.0.0.1::9093', IMAGES.alertmanager]);
        const dir = mkdtempSync(path.join(tmpdir(), 'stand-in-prometheus-'));
        dirs.push(dir);
        // a config of its own, as docker-compose.observability.yml mounts one: an always-firing rule routed to `am`
        writeFileSync(
          path.join(dir, 'prometheus.yml'),
          [
            'global: { scrape_interval: 1s, evaluation_interval: 1s }',
            'rule_files: [/config/always.rules.yml]',
            `alerting: { alertmanagers: [{ static_configs: [{ targets: ['${am}:9093'] }] }] }`,
            "scrape_configs: [{ job_name: prometheus, static_configs: [{ targets: ['localhost:9090'] }] }]",
          ].join('\n'),
        );
        writeFileSync(
          path.join(dir, 'always.rules.yml'),
          'groups: [{ name: t, rules: [{ alert: StandInAlways, expr: \'up{job="prometheus"} == 1\', labels: { severity: info } }] }]\n',
        );
        chmodSync(dir, 0o755);
        const prom = container('prometheus');
        await dockerOk([
          'run',
          '-d',
          '--name',
          prom,
          '--network',
          network,
          '-p',
          '127.0.0.1::9090',
          '-v',
          `${dir}:/config:ro`,
          IMAGES.prometheus,
          '--config.file=/config/prometheus.yml',
          '--storage.tsdb.path=/prometheus',
          '--web.enable-lifecycle',
        ]);
        const promUrl = `http://${await publishedAddress(prom, 9090)}`;
        const amUrl = `http://${await publishedAddress(am, 9093)}`;
        await waitFor('Prometheus ready', async () => (await fetch(`${promUrl}/-/ready`)).ok, 60_000);
        await waitFor('Alertmanager ready', async () => (await fetch(`${amUrl}/-/ready`)).ok, 60_000);
        await waitFor(
          'Prometheus has scraped itself',
          async () => {
            const r = (await (await fetch(`${promUrl}/api/v1/query?query=up`)).json()) as {
              data: { result: { value: [number, string] }[] };
            };
            return r.data.result[0]?.value[1] === '1';
          },
          60_000,
        );
        await waitFor(
          'the rule’s alert reached Alertmanager',
          async () => {
            const alerts = (await (await fetch(`${amUrl}/api/v2/alerts`)).json()) as { labels: Record<string, string> }[];
            return alerts.some((a) => a.labels.alertname === 'StandInAlways');
          },
          60_000,
        );
        for (const [name, cmd] of [
          [prom, '/bin/prometheus --config.file=/config/prometheus.yml --storage.tsdb.path=/prometheus --web.enable-lifecycle'],
          [am, '/bin/alertmanager --config.file=/etc/alertmanager/alertmanager.yml --storage.path=/alertmanager'],
        ] as const) {
          const pid1 = await exec(name, ['sh', '-c', 'tr "\\0" " " < /proc/1/cmdline; echo; id -u; pwd']);
          const [cmdline, uid, cwd] = pid1.stdout.split('\n');
          expect(cmdline?.trim()).toBe(cmd);
          expect(uid).toBe('65534');
          expect(cwd).toBe(name === prom ? '/prometheus' : '/alertmanager');
        }
        expect((await exec(prom, ['promtool', 'check', 'config', '/config/prometheus.yml'])).code).toBe(0);
        expect((await exec(am, ['amtool', 'check-config', '/etc/alertmanager/alertmanager.yml'])).code).toBe(0);
        for (const name of [prom, am]) {
          await dockerOk(['stop', name], { timeoutMs: 60_000 });
          expect(await dockerOk(['inspect', '-f', '{{.State.ExitCode}}', name])).toBe('0');
        }
      },
      LONG,
    );
  });

  describe(IMAGES.nginx, () => {
    it(
      'serves a conf.d file and a template from the environment, logs requests to stdout and notices to stderr, stops on SIGQUIT',
      async () => {
        const dir = mkdtempSync(path.join(tmpdir(), 'stand-in-nginx-'));
        dirs.push(dir);
        mkdirSync(path.join(dir, 'templates'));
        chmodSync(dir, 0o755);
        writeFileSync(
          path.join(dir, 'test.conf'),
          'server {\n    listen 8080;\n    location = /stand-in { return 200 "from conf.d\\n"; }\n}\n',
        );
        // biome-ignore-start lint/suspicious/noTemplateCurlyInString: an nginx template (envsubst's ${VAR})
        writeFileSync(
          path.join(dir, 'templates', 'greeting.conf.template'),
          'server {\n    listen 8081;\n    location / { return 200 "${GREETING} from port $server_port\\n"; }\n}\n',
        );
        // biome-ignore-end lint/suspicious/noTemplateCurlyInString: end
        const name = container('nginx');
        await dockerOk([
          'run',
          '-d',
          '--name',
          name,
          '--network',
          network,
          '-e',
          'GREETING=hello',
          '-v',
          `${path.join(dir, 'test.conf')}:/etc/nginx/conf.d/test.conf:ro`,
          '-v',
          `${path.join(dir, 'templates')}:/etc/nginx/templates:ro`,
          '-p',
          '127.0.0.1::8080',
          '-p',
          '127.0.0.1::8081',
          '-p',
          '127.0.0.1::80',
          IMAGES.nginx,
        ]);
        const confd = `http://${await publishedAddress(name, 8080)}`;
        await waitFor(`${name} serving`, async () => (await fetch(`${confd}/stand-in`)).ok, 30_000);
        const res = await fetch(`${confd}/stand-in`);
        expect(res.status).toBe(200);
        expect(await res.text()).toBe('from conf.d\n');
        // ${GREETING} from the environment; nginx's own $server_port left alone
        const templated = await fetch(`http://${await publishedAddress(name, 8081)}/`);
        expect(await templated.text()).toBe('hello from port 8081\n');
        const home = await fetch(`http://${await publishedAddress(name, 80)}/`);
        expect(await home.text()).toContain('Welcome to nginx!');

        const logs = await docker(['logs', name]);
        expect(logs.stdout).toMatch(/"GET \/stand-in HTTP\/1\.1" 200 /);
        expect(logs.stdout).toContain(
          '20-envsubst-on-templates.sh: Running envsubst on /etc/nginx/templates/greeting.conf.template to /etc/nginx/conf.d/greeting.conf',
        );
        expect(logs.stderr).toContain('[notice]');
        expect(logs.stderr).not.toContain('GET /stand-in');

        const pid1 = await exec(name, ['sh', '-c', 'tr "\\0" " " < /proc/1/cmdline; echo; cat /var/run/nginx.pid']);
        expect(
          pid1.stdout
            .split('\n')
            .slice(0, 2)
            .map((l) => l.trim()),
        ).toEqual(['nginx: master process nginx -g daemon off;', '1']);
        expect(await dockerOk(['inspect', '-f', '{{.Config.StopSignal}}', name])).toBe('SIGQUIT');
        await dockerOk(['stop', name], { timeoutMs: 60_000 });
        expect(await dockerOk(['inspect', '-f', '{{.State.ExitCode}}', name])).toBe('0');
      },
      LONG,
    );
  });
});
