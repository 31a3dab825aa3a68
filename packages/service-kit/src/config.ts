/**
 * Typed configuration from environment variables.
 *
 * A service declares its settings once (`defineSettings`) with the upstream variable names
 * (`GATEWAY__PORT`, `LLM_PROXY__LLM_MODE`, …). `readConfig` parses them into a frozen object; a blank
 * value counts as unset; every bad value is collected and reported together in one `ConfigError`
 * that names each variable and what it expects. `runService` turns that error into exit code 1.
 */

export interface SettingSpec<T> {
  /** Full variable name; defaults to `<PREFIX>__<UPPER_SNAKE(key)>`. */
  readonly env?: string;
  /** What the value must look like, for the error message. */
  readonly expects: string;
  /** Parses a non-blank raw value; throws or returns undefined when it is invalid. */
  readonly parse: (raw: string) => T | undefined;
  /** Value when unset. A function is evaluated after the other settings (it may derive from them). */
  readonly fallback?: T | ((partial: Record<string, unknown>) => T);
  /** When true and unset (and no fallback), the variable is required. */
  readonly required?: boolean;
  /** Secrets are never echoed back in error messages. */
  readonly secret?: boolean;
}

type AnySpec = SettingSpec<unknown>;
/** A setting's value type: possibly undefined unless it is required or has a fallback. */
type ValueOf<Sp> =
  Sp extends SettingSpec<infer T> ? (Sp extends { required: true } ? T : undefined extends Sp['fallback'] ? T | undefined : T) : never;
type Resolved<S extends Record<string, AnySpec>> = { readonly [K in keyof S]: ValueOf<S[K]> };

export class ConfigError extends Error {
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super(`invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

function upperSnake(key: string): string {
  return key.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase();
}

/** Builders for the usual setting kinds (blank counts as unset for all of them). */
export const setting = {
  string<const O extends Partial<SettingSpec<string>> & { minLength?: number }>(opts: O = {} as O): SettingSpec<string> & O {
    const min = opts.minLength ?? 1;
    return {
      expects: opts.expects ?? (min > 1 ? `a string of at least ${min} characters` : 'a string'),
      parse: (raw) => (raw.length >= min ? raw : undefined),
      ...opts,
    };
  },
  int<const O extends Partial<SettingSpec<number>> & { min?: number; max?: number }>(opts: O = {} as O): SettingSpec<number> & O {
    const { min = Number.MIN_SAFE_INTEGER, max = Number.MAX_SAFE_INTEGER } = opts;
    return {
      expects: opts.expects ?? `an integer from ${min} to ${max}`,
      parse: (raw) => {
        if (!/^-?\d+$/.test(raw.trim())) return undefined;
        const n = Number(raw);
        return n >= min && n <= max ? n : undefined;
      },
      ...opts,
    };
  },
  number<const O extends Partial<SettingSpec<number>> & { min?: number; max?: number }>(opts: O = {} as O): SettingSpec<number> & O {
    const { min = -Infinity, max = Infinity } = opts;
    return {
      expects: opts.expects ?? `a number from ${min} to ${max}`,
      parse: (raw) => {
        const n = Number(raw.trim());
        return Number.isFinite(n) && n >= min && n <= max ? n : undefined;
      },
      ...opts,
    };
  },
  bool<const O extends Partial<SettingSpec<boolean>>>(opts: O = {} as O): SettingSpec<boolean> & O {
    return {
      expects: 'true or false (also 1/0, yes/no)',
      parse: (raw) => {
        const v = raw.trim().toLowerCase();
        if (['true', '1', 'yes', 'on'].includes(v)) return true;
        if (['false', '0', 'no', 'off'].includes(v)) return false;
        return undefined;
      },
      ...opts,
    };
  },
  oneOf<const V extends string, const O extends Partial<SettingSpec<V>> & { caseInsensitive?: boolean } = Record<never, never>>(
    values: readonly V[],
    opts: O = {} as O,
  ): SettingSpec<V> & O {
    return {
      expects: `one of ${values.join(', ')}`,
      parse: (raw) => {
        const v = opts.caseInsensitive === false ? raw.trim() : raw.trim().toLowerCase();
        return values.find((x) => (opts.caseInsensitive === false ? x : x.toLowerCase()) === v);
      },
      ...opts,
    };
  },
  url<const O extends Partial<SettingSpec<string>> & { protocols?: readonly string[] }>(opts: O = {} as O): SettingSpec<string> & O {
    const protocols = opts.protocols ?? ['http:', 'https:'];
    return {
      expects: `a URL (${protocols.map((p) => p.replace(':', '://')).join(' or ')}…)`,
      parse: (raw) => {
        const u = new URL(raw.trim());
        return protocols.includes(u.protocol) ? raw.trim().replace(/\/+$/, '') : undefined;
      },
      ...opts,
    };
  },
  list<const O extends Partial<SettingSpec<string[]>>>(opts: O = {} as O): SettingSpec<string[]> & O {
    return {
      expects: 'a comma-separated list',
      parse: (raw) =>
        raw
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean),
      ...opts,
    };
  },
};

/**
 * Values that stand for a secret someone still has to choose (`.env.example` ships them): a service
 * refuses to start with one, naming the variable, rather than run with a secret everybody knows.
 */
const PLACEHOLDER = /change[-_ .]?me|replace[-_ .]?me|^<[^>]*>$|^\$\{.*\}$|^(secret|password|placeholder|example|todo|x{3,})$/i;

/** The secret part of a raw value: the password of a URL, else the value itself. */
function secretPart(raw: string): string {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(raw)) {
    try {
      return decodeURIComponent(new URL(raw).password);
    } catch {
      return raw;
    }
  }
  return raw;
}

/** True for a placeholder such as `change-me`, `<your key>` or `password` (for a URL: its password). */
export function isPlaceholderSecret(raw: string): boolean {
  const part = secretPart(raw.trim());
  return part !== '' && PLACEHOLDER.test(part);
}

export function defineSettings<S extends Record<string, AnySpec>>(spec: S): S {
  return spec;
}

export function envName(prefix: string, key: string, spec: AnySpec): string {
  return spec.env ?? `${prefix}__${upperSnake(key)}`;
}

/**
 * Reads every declared setting from `source`. Throws one ConfigError listing all problems.
 */
export function readConfig<S extends Record<string, AnySpec>>(
  prefix: string,
  spec: S,
  source: NodeJS.ProcessEnv = process.env,
): Resolved<S> {
  const out: Record<string, unknown> = {};
  const problems: string[] = [];
  const deferred: [string, (p: Record<string, unknown>) => unknown][] = [];
  for (const [key, s] of Object.entries(spec)) {
    const name = envName(prefix, key, s);
    const raw = source[name];
    if (raw === undefined || raw.trim() === '') {
      if (typeof s.fallback === 'function') deferred.push([key, s.fallback as (p: Record<string, unknown>) => unknown]);
      else if (s.fallback !== undefined) out[key] = s.fallback;
      else if (s.required) problems.push(`${name} is required: expected ${s.expects}`);
      continue;
    }
    let value: unknown;
    try {
      value = s.parse(raw);
    } catch {
      value = undefined;
    }
    if (value === undefined) {
      const shown = s.secret ? '(value hidden)' : JSON.stringify(raw.length > 80 ? `${raw.slice(0, 80)}…` : raw);
      problems.push(`${name}=${shown} is invalid: expected ${s.expects}`);
    } else if (s.secret && isPlaceholderSecret(raw)) {
      problems.push(`${name} holds a placeholder, not a secret: set one of your own (e.g. openssl rand -base64 32)`);
    } else {
      out[key] = value;
    }
  }
  for (const [key, fn] of deferred) out[key] = fn(out);
  if (problems.length > 0) throw new ConfigError(problems);
  return Object.freeze(out) as Resolved<S>;
}

/** Settings every service has, under its own prefix (e.g. GATEWAY__PORT, GATEWAY__LOG_LEVEL). */
export function commonSettings(defaults: { port: number }) {
  return defineSettings({
    host: setting.string({ fallback: '127.0.0.1' }),
    port: setting.int({ min: 0, max: 65535, fallback: defaults.port }),
    logLevel: setting.oneOf(['trace', 'debug', 'info', 'warn', 'warning', 'error', 'fatal', 'critical'] as const, { fallback: 'info' }),
    version: setting.string({ fallback: '0.1.0' }),
    internalApiKey: setting.string({ minLength: 16, required: true, secret: true }),
    shutdownGraceSeconds: setting.number({ min: 0, max: 3600, fallback: 10 }),
    environment: setting.oneOf(['development', 'test', 'production'] as const, { fallback: 'development' }),
    lokiUrl: setting.url({ env: 'LOKI_URL' }),
    dataDir: setting.string({ env: 'CODELAB_DATA_DIR', fallback: './data' }),
  });
}

/** pino level names from upstream-style names (WARNING, CRITICAL). */
export function pinoLevel(level: string): 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' {
  switch (level.toLowerCase()) {
    case 'warning':
      return 'warn';
    case 'critical':
      return 'fatal';
    default:
      return level.toLowerCase() as 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal';
  }
}

/** For main.ts: reads the config, or prints every problem and exits 1. */
export function loadConfigOrExit<T>(service: string, read: () => T): T {
  try {
    return read();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${service}: ${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
}
