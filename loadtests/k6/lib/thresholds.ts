/**
 * The thresholds of every scenario, as `npm run loadtests` generated them from alerts/slos.yaml
 * (loadtests/generated/thresholds.json): read once per VU in the init context, never restated here.
 * `import.meta.resolve` makes the path relative to this module whatever script imports it.
 */
import type { Threshold } from 'k6/options';
import type { ScenarioName } from '../../lib/profiles.ts';

export type ScenarioThresholds = Record<string, Threshold[]>;

export const THRESHOLDS = JSON.parse(open(import.meta.resolve('../../generated/thresholds.json'))) as Record<
  ScenarioName,
  ScenarioThresholds
>;
