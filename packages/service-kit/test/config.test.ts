import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ConfigError, commonSettings, defineSettings, envName, loadConfigOrExit, pinoLevel, readConfig, setting } from '../src/config.ts';
import { TEST_INTERNAL_KEY } from '@codelab/service-kit/testing';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

/** The problems of a configuration that must not read. */
function problemsOf(read: () => unknown): readonly string[] {
  try {
    read();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems;
  }
  throw new Error('expected a ConfigError');
}

describe('config', () => {
  describe('setting.string', () => {
    it('reads the raw value as is', () => {
      expect(readConfig('APP', { name: setting.string() }, { APP__NAME: ' padded ' })).toEqual({ name: ' padded ' });
    });

    it('rejects a value shorter than minLength, saying how long it must be', () => {
      expect(problemsOf(() => readConfig('APP', { name: setting.string({ minLength: 5 }) }, { APP__NAME: 'abc' }))).toEqual([
        'APP__NAME="abc" is invalid: expected a string of at least 5 characters',
      ]);
    });
  });

  describe('setting.int', () => {
    const spec = { workers: setting.int({ min: 1, max: 8 }) };

    it('parses an integer within bounds, around spaces', () => {
      expect(readConfig('APP', spec, { APP__WORKERS: ' 8 ' })).toEqual({ workers: 8 });
      expect(readConfig('APP', { delta: setting.int() }, { APP__DELTA: '-3' })).toEqual({ delta: -3 });
    });

    it.each(['0', '9', '2.5', '1e2', 'four', '0x4'])('rejects %j', (raw) => {
      expect(problemsOf(() => readConfig('APP', spec, { APP__WORKERS: raw }))).toEqual([
        `APP__WORKERS=${JSON.stringify(raw)} is invalid: expected an integer from 1 to 8`,
      ]);
    });
  });

  describe('setting.number', () => {
    const spec = { ratio: setting.number({ min: 0, max: 1 }) };

    it('parses decimals within bounds', () => {
      expect(readConfig('APP', spec, { APP__RATIO: '0.25' })).toEqual({ ratio: 0.25 });
      expect(readConfig('APP', spec, { APP__RATIO: ' 1 ' })).toEqual({ ratio: 1 });
    });

    it.each(['1.5', '-0.1', 'NaN', 'Infinity', 'half'])('rejects %j', (raw) => {
      expect(problemsOf(() => readConfig('APP', spec, { APP__RATIO: raw }))).toEqual([
        `APP__RATIO=${JSON.stringify(raw)} is invalid: expected a number from 0 to 1`,
      ]);
    });
  });

  describe('setting.bool', () => {
    it.each([
      ['true', true],
      ['TRUE', true],
      ['1', true],
      ['yes', true],
      ['on', true],
      ['false', false],
      ['False', false],
      ['0', false],
      ['no', false],
      [' off ', false],
    ])('reads %j as %s', (raw, expected) => {
      expect(readConfig('APP', { debug: setting.bool() }, { APP__DEBUG: raw })).toEqual({ debug: expected });
    });

    it('rejects anything else', () => {
      expect(problemsOf(() => readConfig('APP', { debug: setting.bool() }, { APP__DEBUG: 'maybe' }))).toEqual([
        'APP__DEBUG="maybe" is invalid: expected true or false (also 1/0, yes/no)',
      ]);
    });
  });

  describe('setting.oneOf', () => {
    it('returns the declared spelling, ignoring case by default', () => {
      const spec = { mode: setting.oneOf(['Mock', 'live'] as const) };
      expect(readConfig('APP', spec, { APP__MODE: ' MOCK ' })).toEqual({ mode: 'Mock' });
    });

    it('matches case when caseInsensitive is false', () => {
      const spec = { mode: setting.oneOf(['Mock', 'live'] as const, { caseInsensitive: false }) };
      expect(readConfig('APP', spec, { APP__MODE: 'Mock' })).toEqual({ mode: 'Mock' });
      expect(problemsOf(() => readConfig('APP', spec, { APP__MODE: 'mock' }))).toEqual([
        'APP__MODE="mock" is invalid: expected one of Mock, live',
      ]);
    });

    it('rejects a value outside the list, listing the allowed ones', () => {
      const spec = { mode: setting.oneOf(['mock', 'live'] as const) };
      expect(problemsOf(() => readConfig('APP', spec, { APP__MODE: 'replay' }))).toEqual([
        'APP__MODE="replay" is invalid: expected one of mock, live',
      ]);
    });
  });

  describe('setting.url', () => {
    it('accepts http and https URLs and drops trailing slashes', () => {
      const spec = { upstream: setting.url() };
      expect(readConfig('APP', spec, { APP__UPSTREAM: 'http://localhost:8001/api//' })).toEqual({ upstream: 'http://localhost:8001/api' });
      expect(readConfig('APP', spec, { APP__UPSTREAM: ' https://example.test ' })).toEqual({ upstream: 'https://example.test' });
    });

    it('rejects an unparseable URL and another protocol, naming the protocols it takes', () => {
      const spec = { upstream: setting.url(), redis: setting.url({ protocols: ['redis:', 'rediss:'] }) };
      expect(problemsOf(() => readConfig('APP', spec, { APP__UPSTREAM: 'localhost:8001', APP__REDIS: 'http://cache:6379' }))).toEqual([
        'APP__UPSTREAM="localhost:8001" is invalid: expected a URL (http:// or https://…)',
        'APP__REDIS="http://cache:6379" is invalid: expected a URL (redis:// or rediss://…)',
      ]);
      expect(readConfig('APP', spec, { APP__REDIS: 'redis://cache:6379/0' })).toEqual({ redis: 'redis://cache:6379/0' });
    });
  });

  describe('setting.list', () => {
    it('splits on commas, trimming and dropping empty items', () => {
      expect(readConfig('APP', { origins: setting.list() }, { APP__ORIGINS: ' a.test, ,b.test,' })).toEqual({
        origins: ['a.test', 'b.test'],
      });
    });
  });

  describe('envName', () => {
    it('derives PREFIX__UPPER_SNAKE from the key unless the spec names the variable', () => {
      expect(envName('LLM_PROXY', 'llmMode', setting.string())).toBe('LLM_PROXY__LLM_MODE');
      expect(envName('GATEWAY', 'shutdownGraceSeconds', setting.number())).toBe('GATEWAY__SHUTDOWN_GRACE_SECONDS');
      expect(envName('GATEWAY', 'lokiUrl', setting.url({ env: 'LOKI_URL' }))).toBe('LOKI_URL');
    });
  });

  describe('readConfig', () => {
    it('treats a blank value as unset, falling back to the default', () => {
      const spec = defineSettings({
        port: setting.int({ fallback: 8000 }),
        name: setting.string({ fallback: 'x' }),
        token: setting.string(),
      });
      expect(readConfig('APP', spec, { APP__PORT: '   ', APP__NAME: '', APP__TOKEN: '' })).toEqual({ port: 8000, name: 'x' });
      expect('token' in readConfig('APP', spec, { APP__TOKEN: '  ' })).toBe(false);
    });

    it('reports a blank required value as missing', () => {
      expect(problemsOf(() => readConfig('APP', { key: setting.string({ required: true }) }, { APP__KEY: ' ' }))).toEqual([
        'APP__KEY is required: expected a string',
      ]);
    });

    it('evaluates function fallbacks after the other settings, from their values', () => {
      const spec = defineSettings({
        logDir: setting.string({ fallback: (p) => `${String(p.dataDir)}/logs` }),
        dataDir: setting.string({ fallback: '/var/lib/app' }),
      });
      expect(readConfig('APP', spec, {})).toEqual({ logDir: '/var/lib/app/logs', dataDir: '/var/lib/app' });
      expect(readConfig('APP', spec, { APP__DATA_DIR: '/srv' })).toEqual({ logDir: '/srv/logs', dataDir: '/srv' });
      expect(readConfig('APP', spec, { APP__LOG_DIR: '/tmp/l' })).toEqual({ logDir: '/tmp/l', dataDir: '/var/lib/app' });
    });

    it('returns a frozen object', () => {
      expect(Object.isFrozen(readConfig('APP', { port: setting.int({ fallback: 1 }) }, {}))).toBe(true);
    });

    it('collects every problem into one ConfigError naming each variable and what it expects', () => {
      const spec = defineSettings({
        port: setting.int({ min: 1, max: 65535 }),
        mode: setting.oneOf(['mock', 'live'] as const),
        key: setting.string({ required: true }),
        ok: setting.bool(),
        url: setting.url({ env: 'OTHER_URL' }),
      });
      let error: unknown;
      try {
        readConfig('APP', spec, { APP__PORT: '70000', APP__MODE: 'x', APP__OK: 'true', OTHER_URL: 'nope' });
      } catch (err) {
        error = err;
      }
      expect(error).toBeInstanceOf(ConfigError);
      const problems = (error as ConfigError).problems;
      expect(problems).toEqual([
        'APP__PORT="70000" is invalid: expected an integer from 1 to 65535',
        'APP__MODE="x" is invalid: expected one of mock, live',
        'APP__KEY is required: expected a string',
        'OTHER_URL="nope" is invalid: expected a URL (http:// or https://…)',
      ]);
      expect((error as ConfigError).message).toBe(`invalid configuration:\n  - ${problems.join('\n  - ')}`);
      expect((error as ConfigError).name).toBe('ConfigError');
    });

    it('cuts a long invalid value at 80 characters', () => {
      const raw = 'y'.repeat(100);
      expect(problemsOf(() => readConfig('APP', { ok: setting.bool() }, { APP__OK: raw }))).toEqual([
        `APP__OK="${'y'.repeat(80)}…" is invalid: expected true or false (also 1/0, yes/no)`,
      ]);
    });

    it.each([
      ['change-me'],
      ['CHANGE_ME_internal_api_key'],
      ['please-change-me-now'],
      ['<your key>'],
      ['password'],
      ['postgres://codelab:change-me@postgres:5432/codelab'],
    ])('refuses the placeholder %s in a secret, naming the variable and not the value', (value) => {
      const problems = problemsOf(() => readConfig('APP', { key: setting.string({ secret: true }) }, { APP__KEY: value }));
      expect(problems).toEqual(['APP__KEY holds a placeholder, not a secret: set one of your own (e.g. openssl rand -base64 32)']);
    });

    it('takes real secrets, and placeholders in settings that are not secret', () => {
      expect(readConfig('APP', { key: setting.string({ secret: true }) }, { APP__KEY: 'q8Jr2-not-a-placeholder-3Kx' }).key).toBe(
        'q8Jr2-not-a-placeholder-3Kx',
      );
      expect(
        readConfig(
          'APP',
          { url: setting.url({ protocols: ['postgres:'], secret: true }) },
          { APP__URL: 'postgres://codelab:s3cr3t-Vq9@db/codelab' },
        ).url,
      ).toContain('s3cr3t');
      expect(readConfig('APP', { name: setting.string() }, { APP__NAME: 'change-me' }).name).toBe('change-me');
    });

    it('never echoes the value of a secret', () => {
      const secret = 'hunter2-but-short';
      const problems = problemsOf(() => readConfig('APP', { key: setting.string({ minLength: 32, secret: true }) }, { APP__KEY: secret }));
      expect(problems).toEqual(['APP__KEY=(value hidden) is invalid: expected a string of at least 32 characters']);
      expect(problems.join('\n')).not.toContain('hunter2');
    });
  });

  describe('commonSettings', () => {
    const spec = commonSettings({ port: 8000 });

    it('applies the defaults when only the internal key is set', () => {
      const config = readConfig('GATEWAY', spec, { GATEWAY__INTERNAL_API_KEY: TEST_INTERNAL_KEY });
      expect(config).toEqual({
        host: '127.0.0.1',
        port: 8000,
        logLevel: 'info',
        version: '0.1.0',
        internalApiKey: TEST_INTERNAL_KEY,
        shutdownGraceSeconds: 10,
        environment: 'development',
        dataDir: './data',
      });
    });

    it('reads every setting under the service prefix, and LOKI_URL / CODELAB_DATA_DIR as they are', () => {
      const config = readConfig('GATEWAY', spec, {
        GATEWAY__HOST: '0.0.0.0',
        GATEWAY__PORT: '9000',
        GATEWAY__LOG_LEVEL: 'WARNING',
        GATEWAY__VERSION: '1.2.3',
        GATEWAY__INTERNAL_API_KEY: TEST_INTERNAL_KEY,
        GATEWAY__SHUTDOWN_GRACE_SECONDS: '2.5',
        GATEWAY__ENVIRONMENT: 'production',
        LOKI_URL: 'http://loki:3100/',
        CODELAB_DATA_DIR: '/data',
      });
      expect(config).toEqual({
        host: '0.0.0.0',
        port: 9000,
        logLevel: 'warning',
        version: '1.2.3',
        internalApiKey: TEST_INTERNAL_KEY,
        shutdownGraceSeconds: 2.5,
        environment: 'production',
        lokiUrl: 'http://loki:3100',
        dataDir: '/data',
      });
    });

    it('requires GATEWAY__INTERNAL_API_KEY', () => {
      expect(problemsOf(() => readConfig('GATEWAY', spec, {}))).toEqual([
        'GATEWAY__INTERNAL_API_KEY is required: expected a string of at least 16 characters',
      ]);
    });

    it('refuses an internal key under 16 characters without showing it', () => {
      expect(problemsOf(() => readConfig('GATEWAY', spec, { GATEWAY__INTERNAL_API_KEY: 'fifteen-chars-x' }))).toEqual([
        'GATEWAY__INTERNAL_API_KEY=(value hidden) is invalid: expected a string of at least 16 characters',
      ]);
      expect(readConfig('GATEWAY', spec, { GATEWAY__INTERNAL_API_KEY: 'sixteen-chars-xx' }).internalApiKey).toBe('sixteen-chars-xx');
    });

    it('does not read another service prefix', () => {
      expect(problemsOf(() => readConfig('RUNTIME', spec, { GATEWAY__INTERNAL_API_KEY: TEST_INTERNAL_KEY }))).toEqual([
        'RUNTIME__INTERNAL_API_KEY is required: expected a string of at least 16 characters',
      ]);
    });

    it('refuses a port out of range and an unknown log level together', () => {
      expect(
        problemsOf(() =>
          readConfig('GATEWAY', spec, { GATEWAY__INTERNAL_API_KEY: TEST_INTERNAL_KEY, GATEWAY__PORT: '65536', GATEWAY__LOG_LEVEL: 'loud' }),
        ),
      ).toEqual([
        'GATEWAY__PORT="65536" is invalid: expected an integer from 0 to 65535',
        'GATEWAY__LOG_LEVEL="loud" is invalid: expected one of trace, debug, info, warn, warning, error, fatal, critical',
      ]);
    });
  });

  describe('pinoLevel', () => {
    it.each([
      ['WARNING', 'warn'],
      ['warning', 'warn'],
      ['CRITICAL', 'fatal'],
      ['critical', 'fatal'],
      ['INFO', 'info'],
      ['debug', 'debug'],
      ['Error', 'error'],
    ])('maps %s to %s', (level, expected) => {
      expect(pinoLevel(level)).toBe(expected);
    });
  });

  describe('loadConfigOrExit', () => {
    it('returns what the reader returns', () => {
      expect(loadConfigOrExit('demo', () => ({ port: 1 }))).toEqual({ port: 1 });
    });

    it('rethrows an error that is not a ConfigError', () => {
      expect(() =>
        loadConfigOrExit('demo', () => {
          throw new TypeError('boom');
        }),
      ).toThrow(TypeError);
    });

    it('exits 1, naming every bad variable on stderr, on a bad configuration', () => {
      const script = [
        "import { loadConfigOrExit, readConfig, setting } from '@codelab/service-kit';",
        "const env = { DEMO__PORT: 'eighty', DEMO__KEY: 'short-secret' };",
        "const spec = { port: setting.int({ min: 1, max: 65535 }), key: setting.string({ minLength: 16, secret: true }), mode: setting.oneOf(['a', 'b'], { required: true }) };",
        "loadConfigOrExit('demo', () => readConfig('DEMO', spec, env));",
        "process.stdout.write('not reached');",
      ].join('\n');
      const run = spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: repoRoot, encoding: 'utf8', timeout: 20_000 });
      expect(run.status).toBe(1);
      expect(run.stdout).toBe('');
      expect(run.stderr).toBe(
        [
          'demo: invalid configuration:',
          '  - DEMO__PORT="eighty" is invalid: expected an integer from 1 to 65535',
          '  - DEMO__KEY=(value hidden) is invalid: expected a string of at least 16 characters',
          '  - DEMO__MODE is required: expected one of a, b',
          '',
        ].join('\n'),
      );
    });
  });
});
