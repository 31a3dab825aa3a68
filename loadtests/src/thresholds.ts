/**
 * The load tests' thresholds, derived from the SLO file (alerts/slos.yaml): each SLO becomes a
 * threshold of the scenario that exercises its journey, so a load test fails on what the
 * platform promises, not on numbers typed again. `npm run loadtests` writes them to
 * `loadtests/generated/thresholds.json`, which the k6 scripts (`open()`) and the Node driver read;
 * a test fails when the file is out of date. Besides the SLOs, every scenario is gated on
 * `dropped_iterations` (an overloaded system must not pass by receiving less load) and on its
 * checks; each error-rate SLO also gets a loose `abortOnFail` threshold that stops a hopeless run.
 */
import type { Slo } from '../../alerts/src/rules.ts';
import type { ScenarioName } from '../lib/profiles.ts';

type Threshold = string | { threshold: string; abortOnFail: boolean; delayAbortEval?: string };
export type ScenarioThresholds = Record<string, Threshold[]>;

/** Which scenario and metric measures each SLO. A new SLO must be placed here (the generator refuses an unknown one). */
export const SLO_METRICS: Record<string, { scenario: ScenarioName; metric: string; kind: 'latency' | 'errors' }> = {
  'token-issuance-availability': { scenario: 'auth', metric: 'http_req_failed', kind: 'errors' },
  'token-issuance-latency': { scenario: 'auth', metric: 'http_req_duration', kind: 'latency' },
  'rest-api-availability': { scenario: 'api', metric: 'http_req_failed', kind: 'errors' },
  'rest-api-latency': { scenario: 'api', metric: 'http_req_duration', kind: 'latency' },
  'conversation-ttft': { scenario: 'chat', metric: 'chat_time_to_first_token', kind: 'latency' },
  'turn-completion': { scenario: 'chat', metric: 'chat_turns_failed', kind: 'errors' },
  'llm-availability': { scenario: 'llm', metric: 'http_req_failed', kind: 'errors' },
  'llm-proxy-ttft': { scenario: 'llm', metric: 'llm_time_to_first_token', kind: 'latency' },
};

/** An error rate this high ends the run early: it cannot meet its objective any more. */
const HOPELESS_ERROR_RATE = 0.2;

/** Percentile with three significant digits, k6 style: 0.99 → p(99), 0.995 → p(99.5). */
function percentile(objective: number): string {
  return `p(${Number((objective * 100).toPrecision(3))})`;
}

function round(n: number): number {
  return Number(n.toPrecision(6));
}

export function thresholdsFromSlos(slos: readonly Slo[]): Record<ScenarioName, ScenarioThresholds> {
  const out: Record<ScenarioName, ScenarioThresholds> = {
    auth: { dropped_iterations: ['count==0'], checks: ['rate>0.99'] },
    api: { dropped_iterations: ['count==0'], checks: ['rate>0.99'] },
    chat: {
      dropped_iterations: ['count==0'],
      checks: ['rate>0.99'],
      chat_frames_missed: ['count==0'],
      chat_frames_out_of_order: ['count==0'],
    },
    llm: { dropped_iterations: ['count==0'], checks: ['rate>0.99'] },
  };
  for (const slo of slos) {
    const place = SLO_METRICS[slo.name];
    if (!place)
      throw new Error(`alerts/slos.yaml: SLO ${slo.name} has no load-test metric; add it to SLO_METRICS in loadtests/src/thresholds.ts`);
    const list = (out[place.scenario][place.metric] ??= []);
    if (place.kind === 'latency') {
      if (slo.threshold_seconds === undefined) throw new Error(`SLO ${slo.name} is a latency SLO without threshold_seconds`);
      list.push(`${percentile(slo.objective)}<${round(slo.threshold_seconds * 1000)}`);
    } else {
      list.push(`rate<${round(1 - slo.objective)}`);
      list.push({ threshold: `rate<${HOPELESS_ERROR_RATE}`, abortOnFail: true, delayAbortEval: '10s' });
    }
  }
  return out;
}
