/** `npm run load -- <scenario> [options]`: arguments, their defaults and their validation. */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { PROFILES, SCENARIOS, type ProfileName, type ScenarioName } from '../lib/profiles.ts';
import type { Targets } from './scenarios/types.ts';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const DEFAULT_THRESHOLDS = path.join(ROOT, 'loadtests', 'generated', 'thresholds.json');
export const RESULTS_DIR = path.join(ROOT, 'loadtests', 'results');

export interface LoadOptions {
  scenario: ScenarioName;
  profile: ProfileName;
  out: string;
  targets: Targets;
  /** Path of each target's readiness check; `{target}` becomes gateway, auth or llm. */
  readyPath: string;
  username: string;
  password: string | undefined;
  passwordSource: string;
  llmKey: string | undefined;
  durationScale: number;
  gracefulStop: number;
  httpTimeout: number;
  turnTimeout: number;
  thresholdsFile: string;
  progress: boolean;
  /** Seconds between plain progress lines (stderr not a TTY). */
  progressInterval: number;
}

export class UsageError extends Error {
  override name = 'UsageError';
}

export const USAGE = `usage: npm run load -- <scenario> [--profile <profile>] [options]

Runs a load scenario with the same profiles and thresholds as the k6 scripts (loadtests/k6), for
machines without k6. Exit code 0: every threshold passed; 99: a threshold failed (or aborted the
run); 2: bad arguments; 1: the platform was not ready or setup failed; 105: interrupted.

  <scenario>              ${SCENARIOS.join(' | ')}
  --profile, -p <name>    ${PROFILES.join(' | ')} (default smoke)
  --out <dir>             where summary.json, timeline.json and report.html go
                          (default loadtests/results/<scenario>-<profile>-<timestamp>/)
  --gateway <url>         gateway (default http://127.0.0.1:8000, env LOAD_GATEWAY_URL)
  --auth <url>            auth service (default http://127.0.0.1:8003, env LOAD_AUTH_URL)
  --llm <url>             llm-proxy (default http://127.0.0.1:8002, env LOAD_LLM_URL)
  --ready-path <path>     readiness check of each target before the run, {target} replaced by
                          gateway, auth or llm (default /ready; through the Compose stack's
                          nginx: /{target}-ready)
  --username <name>       user of the api/chat/auth scenarios (default admin, env LOAD_USERNAME)
  --password <password>   its password (default env LOAD_PASSWORD, else data/auth/admin-password)
  --llm-key <key>         the platform's internal key, for the llm scenario (env LOAD_LLM_KEY,
                          else data/internal-api-key)
  --duration-scale <f>    multiply every stage's duration by f (e.g. 0.3 for a quick check)
  --graceful-stop <s>     seconds iterations in flight may finish after the last stage (default 30)
  --http-timeout <s>      per HTTP request (default 60)
  --turn-timeout <s>      per chat turn (default 60)
  --thresholds <file>     thresholds per scenario (default loadtests/generated/thresholds.json)
  --no-progress           no live progress line on stderr
  --help, -h              this text
`;

function timestamp(d = new Date()): string {
  return d
    .toISOString()
    .replace(/\.\d+Z$/, 'Z')
    .replace(/:/g, '-');
}

function positive(name: string, raw: string | undefined, fallback: number, allowZero = false): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < 0 || (!allowZero && n === 0))
    throw new UsageError(`--${name} must be a ${allowZero ? 'non-negative' : 'positive'} number, got "${raw}"`);
  return n;
}

function url(name: string, raw: string | undefined, fallback: string): string {
  const value = raw ?? fallback;
  let u: URL;
  try {
    u = new URL(value);
  } catch {
    throw new UsageError(`--${name} must be an http(s) URL, got "${value}"`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new UsageError(`--${name} must be an http(s) URL, got "${value}"`);
  return value.replace(/\/+$/, '');
}

const dataFile = (env: NodeJS.ProcessEnv, ...parts: string[]): string =>
  path.join(env.CODELAB_DATA_DIR || path.join(ROOT, 'data'), ...parts);

/** The admin password `npm start` keeps, if this checkout has one. */
function passwordFile(env: NodeJS.ProcessEnv): string {
  return dataFile(env, 'auth', 'admin-password');
}

/** The internal key `npm start` keeps (the llm scenario's credential), if this checkout has one. */
function internalKeyFile(env: NodeJS.ProcessEnv): string {
  return dataFile(env, 'internal-api-key');
}

const readIfThere = (file: string): string | undefined => (existsSync(file) ? readFileSync(file, 'utf8').trim() || undefined : undefined);

/** Parses argv (without node and the script). Throws UsageError; returns 'help' for --help. */
export function parseOptions(argv: string[], env: NodeJS.ProcessEnv = process.env, now = new Date()): LoadOptions | 'help' {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        profile: { type: 'string', short: 'p' },
        out: { type: 'string' },
        gateway: { type: 'string' },
        auth: { type: 'string' },
        llm: { type: 'string' },
        'ready-path': { type: 'string' },
        username: { type: 'string' },
        password: { type: 'string' },
        'llm-key': { type: 'string' },
        'duration-scale': { type: 'string' },
        'graceful-stop': { type: 'string' },
        'http-timeout': { type: 'string' },
        'turn-timeout': { type: 'string' },
        thresholds: { type: 'string' },
        'no-progress': { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const v = parsed.values;
  if (v.help) return 'help';
  const [scenario, ...extra] = parsed.positionals;
  if (!scenario) throw new UsageError(`name a scenario: ${SCENARIOS.join(', ')}`);
  if (!(SCENARIOS as readonly string[]).includes(scenario))
    throw new UsageError(`unknown scenario "${scenario}": expected one of ${SCENARIOS.join(', ')}`);
  if (extra.length) throw new UsageError(`unexpected argument(s): ${extra.join(' ')}`);
  const profile = v.profile ?? 'smoke';
  if (!(PROFILES as readonly string[]).includes(profile))
    throw new UsageError(`unknown profile "${profile}": expected one of ${PROFILES.join(', ')}`);

  let password = v.password;
  let passwordSource = '--password';
  if (password === undefined && env.LOAD_PASSWORD) {
    password = env.LOAD_PASSWORD;
    passwordSource = 'LOAD_PASSWORD';
  }
  if (password === undefined) {
    const file = passwordFile(env);
    password = readIfThere(file);
    passwordSource = password === undefined ? 'nowhere' : path.relative(process.cwd(), file) || file;
  }
  const readyPath = v['ready-path'] ?? '/ready';
  if (!readyPath.startsWith('/')) throw new UsageError(`--ready-path must start with /, got "${readyPath}"`);
  const thresholdsFile = v.thresholds ? path.resolve(v.thresholds) : DEFAULT_THRESHOLDS;
  return {
    scenario: scenario as ScenarioName,
    profile: profile as ProfileName,
    out: path.resolve(v.out ?? path.join(RESULTS_DIR, `${scenario}-${profile}-${timestamp(now)}`)),
    targets: {
      gateway: url('gateway', v.gateway ?? env.LOAD_GATEWAY_URL, 'http://127.0.0.1:8000'),
      auth: url('auth', v.auth ?? env.LOAD_AUTH_URL, 'http://127.0.0.1:8003'),
      llm: url('llm', v.llm ?? env.LOAD_LLM_URL, 'http://127.0.0.1:8002'),
    },
    readyPath,
    username: v.username ?? env.LOAD_USERNAME ?? 'admin',
    password,
    passwordSource,
    llmKey: v['llm-key'] ?? (env.LOAD_LLM_KEY || readIfThere(internalKeyFile(env))),
    durationScale: positive('duration-scale', v['duration-scale'], 1),
    gracefulStop: positive('graceful-stop', v['graceful-stop'], 30, true),
    httpTimeout: positive('http-timeout', v['http-timeout'], 60),
    turnTimeout: positive('turn-timeout', v['turn-timeout'], 60),
    thresholdsFile,
    progress: v['no-progress'] !== true,
    progressInterval: 5,
  };
}
