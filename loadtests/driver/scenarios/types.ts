/** What a scenario is made of, and what the runner gives it. */
import type { ScenarioName } from '../../lib/profiles.ts';
import type { IterationContext } from '../arrival.ts';
import type { Http } from '../http.ts';
import type { MetricDef, Registry, Tags } from '../metrics.ts';

export type Service = 'gateway' | 'auth' | 'llm';

export interface Targets {
  gateway: string;
  auth: string;
  llm: string;
}

export interface ScenarioEnv {
  targets: Targets;
  username: string;
  password: string | undefined;
  /** Where the password came from (for error messages). */
  passwordSource: string;
  llmKey: string | undefined;
  http: Http;
  metrics: Recorder;
  /** Longest wait for one chat turn (ms). */
  turnTimeoutMs: number;
}

/** A failure of setup: the run does not start, and the message says why and what to do. */
export class SetupError extends Error {
  override name = 'SetupError';
}

export interface Scenario<S = unknown> {
  name: ScenarioName;
  description: string;
  /** The services it talks to (their /ready is checked before the run). */
  needs: Service[];
  /** Its own metrics, besides the built-in ones. */
  metrics: MetricDef[];
  /** The latency it is judged by: the progress line's p95 and the report's latency chart. */
  latencyMetric: string;
  /** The Rate of its failures: the progress line's and the report's errors. */
  errorMetric: string;
  /** Time to first token (chat, llm): its own chart. */
  ttftMetric?: string;
  setup(env: ScenarioEnv): Promise<S>;
  iteration(state: S, ctx: IterationContext, env: ScenarioEnv): Promise<void>;
  teardown?(state: S, env: ScenarioEnv): Promise<void>;
}

/** The registry plus k6's `check()`. */
export class Recorder {
  readonly registry: Registry;

  constructor(registry: Registry) {
    this.registry = registry;
  }

  add(name: string, value: number | boolean, tags?: Tags): void {
    this.registry.add(name, value, tags);
  }

  /** Records a check (k6 `checks`, tagged with its name) and returns its outcome. */
  check(name: string, ok: boolean, tags?: Tags): boolean {
    this.registry.add('checks', ok, { check: name, ...tags });
    return ok;
  }
}
