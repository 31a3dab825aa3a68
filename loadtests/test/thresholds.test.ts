/**
 * Load-test thresholds come from the SLO file: the generated JSON is current, every SLO is a
 * threshold of the scenario that exercises it with the SLO's own objective and latency bound, and
 * the gates that are not SLOs (dropped iterations, checks, missed frames) are always there.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadSlos } from '../../alerts/src/rules.ts';
import { PROFILES, profile, SCENARIOS, seconds } from '../lib/profiles.ts';
import { renderThresholds, THRESHOLDS_FILE } from '../src/generate.ts';
import { SLO_METRICS, thresholdsFromSlos } from '../src/thresholds.ts';

const ROOT = path.resolve(import.meta.dirname, '..', '..');

describe('load-test thresholds', () => {
  it('generated/thresholds.json is what `npm run loadtests` writes from alerts/slos.yaml', () => {
    expect(readFileSync(THRESHOLDS_FILE, 'utf8')).toBe(renderThresholds());
  });

  it('turns every SLO into a threshold of its scenario, with its objective', () => {
    const { slos } = loadSlos(path.join(ROOT, 'alerts', 'slos.yaml'));
    const t = thresholdsFromSlos(slos);
    for (const slo of slos) {
      const { scenario, metric, kind } = SLO_METRICS[slo.name]!;
      const expected =
        kind === 'latency'
          ? `p(${Number((slo.objective * 100).toPrecision(3))})<${slo.threshold_seconds! * 1000}`
          : `rate<${Number((1 - slo.objective).toPrecision(6))}`;
      expect(t[scenario][metric], slo.name).toContain(expected);
    }
    expect(t.api.http_req_duration).toEqual(['p(99)<250']);
    expect(t.chat.chat_time_to_first_token).toEqual(['p(95)<2500']);
    for (const s of SCENARIOS) expect(t[s].dropped_iterations).toEqual(['count==0']);
    expect(t.chat.chat_frames_missed).toEqual(['count==0']);
  });

  it('refuses an SLO no scenario measures', () => {
    const { slos } = loadSlos(path.join(ROOT, 'alerts', 'slos.yaml'));
    expect(() => thresholdsFromSlos([...slos, { ...slos[0]!, name: 'new-journey' }])).toThrow(/new-journey has no load-test metric/);
  });
});

describe('load profiles', () => {
  it.each(SCENARIOS.flatMap((s) => PROFILES.map((p) => [s, p] as const)))(
    '%s/%s is an open-model arrival-rate scenario with bounded VUs',
    (s, p) => {
      const prof = profile(s, p);
      expect(prof.executor).toBe('ramping-arrival-rate');
      expect(prof.maxVUs).toBeGreaterThanOrEqual(prof.preAllocatedVUs);
      expect(prof.stages.length).toBeGreaterThan(0);
      for (const st of prof.stages) expect(seconds(st.duration)).toBeGreaterThan(0);
    },
  );

  it('keeps smoke to seconds and ci to a minute or two', () => {
    const total = (s: (typeof SCENARIOS)[number], p: (typeof PROFILES)[number]) =>
      profile(s, p).stages.reduce((n, st) => n + seconds(st.duration), 0);
    for (const s of SCENARIOS) {
      expect(total(s, 'smoke')).toBeLessThanOrEqual(30);
      expect(total(s, 'ci')).toBeGreaterThanOrEqual(60);
      expect(total(s, 'ci')).toBeLessThanOrEqual(120);
    }
    expect(seconds('1m30s')).toBe(90);
    expect(() => seconds('soon')).toThrow(/not a k6 duration/);
  });
});
