/**
 * Load profiles: one source for the k6 scripts and the Node load driver. Every scenario runs an
 * open model (k6 `ramping-arrival-rate`): iterations start at the profile's rate whether or not
 * the system keeps up; when no VU is free an iteration is dropped and counted
 * (`dropped_iterations`, gated at 0), so a slow system cannot pass by receiving less load.
 *
 * Rates are iterations per second: a token request (auth), an IDE's round of REST reads and a
 * write (api), a whole conversation of CHAT_TURNS turns (chat), one streamed completion (llm).
 * Pure data: no imports, so k6 and Node load it alike.
 */
export const SCENARIOS = ['auth', 'api', 'chat', 'llm'] as const;
export type ScenarioName = (typeof SCENARIOS)[number];

export const PROFILES = ['smoke', 'ci', 'load', 'stress', 'soak', 'spike'] as const;
export type ProfileName = (typeof PROFILES)[number];

export interface Stage {
  /** k6 duration: `30s`, `2m`, `1h`. */
  duration: string;
  /** Iterations per `timeUnit` reached at the end of the stage. */
  target: number;
}

export interface ArrivalProfile {
  executor: 'ramping-arrival-rate';
  startRate: number;
  timeUnit: '1s';
  preAllocatedVUs: number;
  maxVUs: number;
  stages: Stage[];
}

/** Turns per conversation of the chat scenario. */
export const CHAT_TURNS = 3;

/** Iterations per second each scenario runs at in the `load` profile (sized for a 2-core machine). */
const BASE_RATE: Record<ScenarioName, number> = { auth: 4, api: 40, chat: 4, llm: 20 };

/** Concurrent iterations each scenario may need at its base rate (k6 VUs; the driver's in-flight bound). */
const BASE_VUS: Record<ScenarioName, number> = { auth: 20, api: 40, chat: 40, llm: 40 };

/** Each profile's shape, as fractions of the base rate and stage durations. */
const SHAPES: Record<ProfileName, { stages: [duration: string, factor: number][]; vus: number }> = {
  smoke: { stages: [['10s', 0.25]], vus: 0.5 },
  ci: {
    stages: [
      ['15s', 0.5],
      ['60s', 0.5],
      ['10s', 0],
    ],
    vus: 1,
  },
  load: {
    stages: [
      ['1m', 1],
      ['5m', 1],
      ['30s', 0],
    ],
    vus: 2,
  },
  stress: {
    stages: [
      ['2m', 2],
      ['2m', 3],
      ['2m', 3],
      ['1m', 0],
    ],
    vus: 5,
  },
  soak: {
    stages: [
      ['2m', 0.8],
      ['1h', 0.8],
      ['2m', 0],
    ],
    vus: 2,
  },
  spike: {
    stages: [
      ['1m', 0.2],
      ['10s', 5],
      ['1m', 5],
      ['10s', 0.2],
      ['1m', 0.2],
    ],
    vus: 8,
  },
};

export function profile(scenario: ScenarioName, name: ProfileName): ArrivalProfile {
  const shape = SHAPES[name];
  const base = BASE_RATE[scenario];
  // fractional rates are kept here: the driver spreads them over time, and the k6 options restate
  // them per a longer time unit (k6 takes whole numbers; loadtests/k6/lib/options.ts)
  const rate = (f: number): number => Math.round(base * f * 100) / 100;
  const vus = Math.max(2, Math.ceil(BASE_VUS[scenario] * shape.vus));
  return {
    executor: 'ramping-arrival-rate',
    startRate: name === 'smoke' ? rate(shape.stages[0]![1]) : 0,
    timeUnit: '1s',
    preAllocatedVUs: Math.ceil(vus / 2),
    maxVUs: vus,
    stages: shape.stages.map(([duration, f]) => ({ duration, target: rate(f) })),
  };
}

/** Seconds in a k6 duration (`90s`, `2m`, `1h`, `1m30s`). */
export function seconds(duration: string): number {
  let total = 0;
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h)/g;
  let m: RegExpExecArray | null;
  let matched = '';
  while ((m = re.exec(duration))) {
    matched += m[0];
    total += Number(m[1]) * { ms: 0.001, s: 1, m: 60, h: 3600 }[m[2] as 'ms' | 's' | 'm' | 'h'];
  }
  if (!matched || matched !== duration) throw new Error(`not a k6 duration: ${duration}`);
  return total;
}
