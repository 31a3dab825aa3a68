/**
 * `export const options = buildOptions('<scenario>')` in every script: the scenario's load shape
 * from loadtests/lib/profiles.ts (the profile named by `-e PROFILE=…`, smoke by default) and its
 * thresholds from the generated SLO file. One k6 scenario, named after the profile (the load shape),
 * runs the script's exec function (named after what the user does). Fractional rates are
 * restated per a longer time unit (k6Arrivals), the only change made to a profile.
 */
import type { Options } from 'k6/options';
import { PROFILES, profile, seconds, type ArrivalProfile, type ProfileName, type ScenarioName } from '../../lib/profiles.ts';
import { THRESHOLDS, type ScenarioThresholds } from './thresholds.ts';

/** The exec function of each scenario's script. */
export const EXEC = {
  auth: 'signIn',
  api: 'openSession',
  chat: 'haveConversation',
  llm: 'streamCompletion',
} as const satisfies Record<ScenarioName, string>;

/** Trend statistics in the summary: the percentiles the SLO thresholds use, and the usual ones. */
export const SUMMARY_TREND_STATS = ['avg', 'min', 'med', 'max', 'p(90)', 'p(95)', 'p(99)'];

/** A profile as k6 takes it: whole iterations per `timeUnit`. */
export type K6Arrivals = Omit<ArrivalProfile, 'timeUnit'> & { timeUnit: string };

export type ScenarioOptions = Options & {
  scenarios: Record<string, K6Arrivals & { exec: string }>;
  thresholds: ScenarioThresholds;
};

const whole = (n: number): boolean => Math.abs(n - Math.round(n)) < 1e-9;

/**
 * k6 takes `startRate` and stage targets as integers (its config has them as int64, and a
 * fraction such as 3.2 refuses the options). A profile with a fractional rate per second is given
 * to k6 per 10 s (or 100 s, …) instead: 3.2/s becomes 32 per 10 s, the same arrivals, since k6
 * spreads a rate evenly over its time unit. Whole rates are passed as they are.
 */
export function k6Arrivals(arrivals: ArrivalProfile): K6Arrivals {
  const rates = [arrivals.startRate, ...arrivals.stages.map((s) => s.target)];
  let factor = 1;
  while (factor < 10_000 && !rates.every((r) => whole(r * factor))) factor *= 10;
  if (factor === 1) return arrivals;
  return {
    ...arrivals,
    timeUnit: `${factor}s`,
    startRate: Math.round(arrivals.startRate * factor),
    stages: arrivals.stages.map((s) => ({ duration: s.duration, target: Math.round(s.target * factor) })),
  };
}

/** `PROFILE` from the environment (smoke when unset); an unknown name stops the run at once. */
export function profileName(env: Record<string, string | undefined> = __ENV): ProfileName {
  const name = env.PROFILE || 'smoke';
  if (!(PROFILES as readonly string[]).includes(name))
    throw new Error(`PROFILE=${name} is not a profile: expected one of ${PROFILES.join(', ')}`);
  return name as ProfileName;
}

export function buildOptions(scenario: ScenarioName, name: ProfileName = profileName()): ScenarioOptions {
  const thresholds = THRESHOLDS[scenario];
  if (!thresholds) throw new Error(`loadtests/generated/thresholds.json has no thresholds for ${scenario}: run npm run loadtests`);
  return {
    scenarios: { [name]: { ...k6Arrivals(profile(scenario, name)), exec: EXEC[scenario] } },
    thresholds,
    summaryTrendStats: SUMMARY_TREND_STATS,
  };
}

/** How long a profile's arrivals last, in seconds (k6 then waits up to gracefulStop for running iterations). */
export function profileSeconds(scenario: ScenarioName, name: ProfileName): number {
  return profile(scenario, name).stages.reduce((total, stage) => total + seconds(stage.duration), 0);
}
