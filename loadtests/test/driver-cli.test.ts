/**
 * `npm run load`'s arguments: defaults and where each comes from (flags, LOAD_* variables, the
 * admin password `npm start` keeps), clear errors with exit code 2 for an unknown scenario,
 * profile or option, and the live progress line (in place on a TTY, plain lines otherwise).
 */
import { spawnSync } from 'node:child_process';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Schedule } from '../driver/arrival.ts';
import { Registry } from '../driver/metrics.ts';
import { DEFAULT_THRESHOLDS, parseOptions, RESULTS_DIR, ROOT, UsageError, type LoadOptions } from '../driver/options.ts';
import { Progress, progressLine } from '../driver/progress.ts';
import { main } from '../driver/run.ts';

class Capture extends Writable {
  text = '';
  isTTY = false;
  columns = 200;
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    this.text += String(chunk);
    cb();
  }
}

describe('load CLI arguments', () => {
  let dataDir: string;
  beforeAll(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'load-cli-'));
    await mkdir(path.join(dataDir, 'auth'));
    await writeFile(path.join(dataDir, 'auth', 'admin-password'), 'from-the-file\n');
  });
  afterAll(() => rm(dataDir, { recursive: true, force: true }));

  it('defaults to the local platform, the smoke profile and a timestamped results folder', () => {
    const o = parseOptions(['chat'], { CODELAB_DATA_DIR: path.join(dataDir, 'none') }, new Date('2026-11-28T08:09:10.123Z')) as LoadOptions;
    expect(o).toMatchObject({
      scenario: 'chat',
      profile: 'smoke',
      out: path.join(RESULTS_DIR, 'chat-smoke-2026-11-28T08-09-10Z'),
      targets: { gateway: 'http://127.0.0.1:8000', auth: 'http://127.0.0.1:8003', llm: 'http://127.0.0.1:8002' },
      readyPath: '/ready',
      username: 'admin',
      password: undefined,
      llmKey: undefined,
      durationScale: 1,
      gracefulStop: 30,
      thresholdsFile: DEFAULT_THRESHOLDS,
      progress: true,
    });
    expect(RESULTS_DIR).toBe(path.join(ROOT, 'loadtests', 'results'));
  });

  it('reads the admin password npm start keeps, unless LOAD_PASSWORD or --password says otherwise', () => {
    const env = { CODELAB_DATA_DIR: dataDir };
    expect(parseOptions(['api'], env)).toMatchObject({
      password: 'from-the-file',
      passwordSource: expect.stringContaining('admin-password'),
    });
    expect(parseOptions(['api'], { ...env, LOAD_PASSWORD: 'from-env' })).toMatchObject({
      password: 'from-env',
      passwordSource: 'LOAD_PASSWORD',
    });
    expect(parseOptions(['api', '--password', 'flag'], { ...env, LOAD_PASSWORD: 'from-env' })).toMatchObject({
      password: 'flag',
      passwordSource: '--password',
    });
  });

  it('takes every target and tunable from flags or LOAD_* variables', () => {
    const o = parseOptions(
      [
        'llm',
        '-p',
        'ci',
        '--gateway',
        'http://127.0.0.3:9000/',
        '--auth',
        'https://auth.local',
        '--llm-key',
        'k',
        '--duration-scale',
        '0.3',
        '--graceful-stop',
        '0',
        '--http-timeout',
        '5',
        '--turn-timeout',
        '7',
        '--out',
        'x',
        '--no-progress',
        '--username',
        'u',
        '--ready-path',
        '/{target}-ready',
      ],
      { LOAD_LLM_URL: 'http://127.0.0.2:1', LOAD_LLM_KEY: 'ignored' },
    ) as LoadOptions;
    expect(o).toMatchObject({
      profile: 'ci',
      targets: { gateway: 'http://127.0.0.3:9000', auth: 'https://auth.local', llm: 'http://127.0.0.2:1' },
      llmKey: 'k',
      durationScale: 0.3,
      gracefulStop: 0,
      httpTimeout: 5,
      turnTimeout: 7,
      out: path.resolve('x'),
      progress: false,
      username: 'u',
      readyPath: '/{target}-ready',
    });
    expect(parseOptions(['llm'], { LOAD_LLM_KEY: 'from-env' })).toMatchObject({ llmKey: 'from-env' });
    const dataDir = mkdtempSync(path.join(tmpdir(), 'codelab-load-key-'));
    expect(parseOptions(['llm'], { CODELAB_DATA_DIR: dataDir })).toMatchObject({ llmKey: undefined });
    writeFileSync(path.join(dataDir, 'internal-api-key'), 'key-kept-by-npm-start\n');
    expect(parseOptions(['llm'], { CODELAB_DATA_DIR: dataDir })).toMatchObject({ llmKey: 'key-kept-by-npm-start' });
    expect(parseOptions(['llm'], { CODELAB_DATA_DIR: dataDir, LOAD_LLM_KEY: 'from-env' })).toMatchObject({ llmKey: 'from-env' });
    rmSync(dataDir, { recursive: true });
    expect(parseOptions(['auth', '--help'])).toBe('help');
  });

  it.each([
    [[], /name a scenario: auth, api, chat, llm/],
    [['websocket'], /unknown scenario "websocket": expected one of auth, api, chat, llm/],
    [['chat', '--profile', 'huge'], /unknown profile "huge": expected one of smoke, ci, load, stress, soak, spike/],
    [['chat', '--vus', '3'], /Unknown option '--vus'/],
    [['chat', 'extra'], /unexpected argument\(s\): extra/],
    [['chat', '--duration-scale', '0'], /--duration-scale must be a positive number/],
    [['chat', '--gateway', 'localhost:8000'], /--gateway must be an http\(s\) URL/],
    [['chat', '--ready-path', 'ready'], /--ready-path must start with \/, got "ready"/],
  ])('refuses %j', (argv, message) => {
    expect(() => parseOptions(argv as string[], {})).toThrow(UsageError);
    expect(() => parseOptions(argv as string[], {})).toThrow(message);
  });

  it('exits 2 naming the problem, in process and as `npm run load` runs it', async () => {
    const stdout = new Capture();
    const stderr = new Capture();
    expect(await main(['chat', '--profile', 'nope'], { stdout, stderr }, {})).toBe(2);
    expect(stderr.text).toMatch(/^error: unknown profile "nope".*\n\(npm run load -- --help for the options\)/);
    const bad = spawnSync(process.execPath, [path.join(ROOT, 'scripts', 'load.ts'), 'nope'], {
      cwd: ROOT,
      encoding: 'utf8',
      timeout: 20_000,
    });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain('unknown scenario "nope"');
    const help = spawnSync(process.execPath, [path.join(ROOT, 'scripts', 'load.ts'), '--help'], {
      cwd: ROOT,
      encoding: 'utf8',
      timeout: 20_000,
    });
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/usage: npm run load -- <scenario>[\s\S]*--duration-scale/);
  }, 30_000);

  it('refuses a thresholds file without the scenario or with a bad expression (exit 2)', async () => {
    const file = path.join(dataDir, 'thresholds.json');
    await writeFile(file, JSON.stringify({ api: { http_req_duration: ['p95<3'] } }));
    const stderr = new Capture();
    expect(await main(['api', '--thresholds', file], { stdout: new Capture(), stderr }, {})).toBe(2);
    expect(stderr.text).toMatch(/not a threshold expression: "p95<3"/);
    expect(await main(['chat', '--thresholds', file], { stdout: new Capture(), stderr }, {})).toBe(2);
    expect(stderr.text).toMatch(/has no thresholds for scenario chat/);
  });
});

describe('progress line', () => {
  const source = () => {
    let now = 0;
    const registry = new Registry(
      [
        { name: 'lat', type: 'trend', unit: 'ms' },
        { name: 'failed', type: 'rate' },
      ],
      { now: () => now },
    );
    for (let i = 1; i <= 100; i++) registry.add('lat', i * 10);
    registry.add('failed', true);
    registry.add('failed', false);
    now = 12_000;
    const schedule = new Schedule({
      startRate: 0,
      timeUnit: '1s',
      stages: [
        { duration: '20s', target: 4 },
        { duration: '40s', target: 4 },
      ],
    });
    return {
      label: 'chat/ci',
      schedule,
      state: { started: 31, dropped: 2, busy: 3, allocated: 10 },
      registry,
      latencyMetric: 'lat',
      errorMetric: 'failed',
    };
  };

  it('shows elapsed/total, the target rate, started and dropped iterations, VUs, p95 and errors', () => {
    expect(progressLine(source(), 12)).toBe(
      'chat/ci 0:12/1:00  target 2.40/s  started 31  dropped 2  VUs 3/10  p95 lat 950ms  failed 1/2 (50.0%)',
    );
  });

  it('rewrites one line in place on a TTY and prints plain lines otherwise', () => {
    const tty = new Capture();
    tty.isTTY = true;
    const p = new Progress(source(), tty);
    p.stop();
    // biome-ignore lint/suspicious/noControlCharactersInRegex: the terminal's escape sequence (ESC [2K) the progress line starts with
    expect(tty.text).toMatch(/^\r\x1b\[2Kchat\/ci 0:12\/1:00 .*\n$/);
    const plain = new Capture();
    new Progress(source(), plain).stop();
    expect(plain.text).toMatch(/^chat\/ci 0:12\/1:00 .*\(50\.0%\)\n$/);
  });
});
