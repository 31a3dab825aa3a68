/**
 * docker-compose.yml and .env.example cannot drift from the services: every setting a service reads
 * reaches its container (fixed by the Compose file, or passed through from .env), .env.example names
 * every one of them, its secrets are placeholders the services refuse, and the stack's shape is the
 * one the README promises (only nginx publishes a port, healthchecks, restart policies, limits).
 */
import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parse } from 'yaml';
import { commonSettings, envName, isPlaceholderSecret, type SettingSpec } from '@codelab/service-kit';
import { findProgram, missingProgram } from '@codelab/service-kit/testing';
import { authSettings } from '@codelab/auth/config';
import { gatewaySettings } from '@codelab/gateway/config';
import { llmProxySettings } from '@codelab/llm-proxy/config';
import { runtimeSettings } from '@codelab/runtime/config';
import { webSettings } from '@codelab/web/config';
import { REPO_ROOT } from '../helpers/processes.ts';

interface ComposeService {
  image?: string;
  build?: { target?: string };
  environment?: Record<string, string>;
  ports?: string[];
  healthcheck?: unknown;
  restart?: string;
  depends_on?: Record<string, { condition: string }>;
  deploy?: { resources?: { limits?: { cpus?: string; memory?: string } } };
  volumes?: string[];
  read_only?: boolean;
  tmpfs?: string[];
  cap_drop?: string[];
  security_opt?: string[];
}

const compose = parse(readFileSync(path.join(REPO_ROOT, 'docker-compose.yml'), 'utf8'), { merge: true }) as {
  services: Record<string, ComposeService>;
  volumes: Record<string, unknown>;
};
const envExample = readFileSync(path.join(REPO_ROOT, '.env.example'), 'utf8');
const dockerfile = readFileSync(path.join(REPO_ROOT, 'Dockerfile'), 'utf8');

const SERVICES: [string, string, Record<string, SettingSpec<unknown>>][] = [
  ['gateway', 'GATEWAY', gatewaySettings],
  ['runtime', 'AGENT_RUNTIME', runtimeSettings],
  ['llm-proxy', 'LLM_PROXY', llmProxySettings],
  ['auth', 'AUTH_SERVICE', authSettings],
  ['web', 'WEB', webSettings],
];
/** Set by the image itself (Dockerfile ENV). */
const FROM_IMAGE = new Set(['HOST', 'PORT', 'CODELAB_DATA_DIR']);

describe('docker-compose.yml', () => {
  it.each(SERVICES)('gives %s every setting it reads: fixed here, from the image, or passed through from .env', (name, prefix, spec) => {
    const env = compose.services[name]!.environment ?? {};
    const all = { ...commonSettings({ port: 0 }), ...spec };
    const missing = Object.entries(all)
      .map(([key, s]) => envName(prefix, key, s))
      .filter((variable) => {
        const short = variable.startsWith(`${prefix}__`) ? variable.slice(prefix.length + 2) : variable;
        if (FROM_IMAGE.has(short)) return !dockerfile.includes(`${variable}=`) && variable !== 'CODELAB_DATA_DIR';
        return !(variable in env);
      });
    expect(missing).toEqual([]);
    // a pass-through is blank when unset (blank counts as unset: the service's own default)
    for (const [variable, value] of Object.entries(env)) {
      if (value.startsWith('${') && value.endsWith(':-}')) expect(value).toBe(`\${${variable}:-}`);
    }
    expect(env[`${prefix}__ENVIRONMENT`]).toBe('production');
  });

  it('publishes one port, nginx, and gives every service a healthcheck, a restart policy and limits', () => {
    const published = Object.entries(compose.services)
      .filter(([, s]) => s.ports?.length)
      .map(([n]) => n);
    expect(published).toEqual(['nginx']);
    for (const [name, s] of Object.entries(compose.services)) {
      expect(s.restart, name).toBe('unless-stopped');
      expect(s.deploy?.resources?.limits?.memory, name).toMatch(/^\d+[MG]$/);
      expect(s.deploy?.resources?.limits?.cpus, name).toMatch(/^\d+(\.\d+)?$/);
      // ours carry the Dockerfile's HEALTHCHECK; the official images get one here
      if (!s.build) expect(s.healthcheck, name).toBeDefined();
      for (const [dep, { condition }] of Object.entries(s.depends_on ?? {})) expect(condition, `${name} → ${dep}`).toBe('service_healthy');
    }
    const ports: Record<string, number> = { auth: 8003, gateway: 8000, runtime: 8001, 'llm-proxy': 8002, web: 3000 };
    for (const [target, port] of Object.entries(ports)) {
      expect(compose.services[target]!.build?.target).toBe(target);
      // the kit's bash probe of its own port (a Node process per check costs ~20 times the CPU)
      expect(dockerfile).toMatch(
        new RegExp(
          `FROM service AS ${target}\\n[^]*?HEALTHCHECK [^\\n]*\\n\\s*CMD \\["/app/packages/service-kit/bin/healthcheck", "${port}"\\]`,
        ),
      );
    }
    expect(Object.keys(compose.volumes).sort()).toEqual(['auth-keys', 'postgres-data', 'redis-data']);
  });

  it("runs the platform's services hardened (read-only root, no capability, no new privileges) and nginx read-only", () => {
    for (const name of ['auth', 'gateway', 'runtime', 'llm-proxy', 'web']) {
      const s = compose.services[name]!;
      expect([s.read_only, s.tmpfs, s.cap_drop, s.security_opt], name).toEqual([true, ['/tmp'], ['ALL'], ['no-new-privileges:true']]);
    }
    expect(compose.services.nginx!.read_only).toBe(true);
    // nginx's temporary files go where its tmpfs is
    const conf = readFileSync(path.join(REPO_ROOT, 'deploy/nginx/nginx.conf'), 'utf8');
    for (const m of conf.matchAll(/^\s*\w+_temp_path (\S+);/gm)) expect(m[1]!.startsWith('/tmp/'), m[0]).toBe(true);
    expect([...conf.matchAll(/_temp_path /g)].length).toBe(5);
  });
});

describe('.env.example', () => {
  it.each(SERVICES)('names every setting of %s', (_name, prefix, spec) => {
    const all = { ...commonSettings({ port: 0 }), ...spec };
    const missing = Object.entries(all)
      .map(([key, s]) => envName(prefix, key, s))
      .filter((variable) => !envExample.includes(variable));
    expect(missing).toEqual([]);
  });

  it('names every variable docker-compose.yml reads', () => {
    const text = readFileSync(path.join(REPO_ROOT, 'docker-compose.yml'), 'utf8');
    const read = new Set([...text.matchAll(/\$\{([A-Z0-9_]+)[:?}-]/g)].map((m) => m[1]!));
    expect([...read].filter((v) => !envExample.includes(v))).toEqual([]);
  });

  it('has no working secret: every required one is a placeholder the services refuse', () => {
    const values = Object.fromEntries(
      envExample
        .split('\n')
        .filter((l) => /^[A-Z]/.test(l))
        .map((l) => l.split('=', 2) as [string, string]),
    );
    for (const secret of ['CODELAB_INTERNAL_API_KEY', 'POSTGRES_PASSWORD', 'AUTH_SERVICE__MASTER_KEY']) {
      expect(isPlaceholderSecret(values[secret] ?? ''), secret).toBe(true);
    }
  });

  it.skipIf(missingProgram('docker-compose', 'docker-compose'))(
    'is a complete .env for docker-compose config (docker-compose from Debian)',
    () => {
      // `config` resolves every variable: a missing required one fails with its message
      const out = execFileSync(
        findProgram('docker-compose')!,
        ['--env-file', '.env.example', '-f', 'docker-compose.yml', 'config', '--quiet'],
        { cwd: REPO_ROOT, encoding: 'utf8', stdio: 'pipe', env: { PATH: process.env.PATH } },
      );
      expect(out).toBe('');
      const noEnv = (() => {
        try {
          const empty = path.join(mkdtempSync(path.join(tmpdir(), 'codelab-env-')), '.env');
          writeFileSync(empty, '');
          execFileSync(findProgram('docker-compose')!, ['--env-file', empty, '-f', 'docker-compose.yml', 'config', '--quiet'], {
            cwd: REPO_ROOT,
            encoding: 'utf8',
            stdio: 'pipe',
            env: { PATH: process.env.PATH },
          });
          return '';
        } catch (err) {
          return String((err as { stderr?: string }).stderr);
        }
      })();
      expect(noEnv).toMatch(/set CODELAB_INTERNAL_API_KEY in \.env/);
    },
  );
});
