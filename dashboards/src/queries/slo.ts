/**
 * PromQL of the SLO dashboard, over the recording rules generated in `alerts/` from
 * `alerts/slos.yaml`: `slo:sli_error:ratio_rate<window>`, `slo:objective:ratio` and
 * `slo:error_budget_remaining:ratio`, all labelled `slo` (and `service`).
 */
import { matchVar } from '../lib.ts';

const SLO = matchVar('slo');

/** The burn-rate windows of the multiwindow, multi-burn-rate alerts. */
export type BurnWindow = '5m' | '30m' | '1h' | '2h' | '6h' | '1d' | '3d';

/** Error budget left over the 30-day period (1 = untouched, below 0 = overspent). */
export function errorBudgetRemaining(): string {
  return `slo:error_budget_remaining:ratio{${SLO}}`;
}

/** The objective of each SLO. */
export function objective(): string {
  return `slo:objective:ratio{${SLO}}`;
}

/** The SLI error ratio over a window. */
export function errorRatio(window: BurnWindow | '30d'): string {
  return `slo:sli_error:ratio_rate${window}{${SLO}}`;
}

/** Burn rate over a window: the error ratio divided by the error budget (1 − objective). */
export function burnRate(window: BurnWindow): string {
  return `${errorRatio(window)} / on (slo) (1 - ${objective()})`;
}
