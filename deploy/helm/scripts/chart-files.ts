/**
 * `npm run chart:files`: copies the platform's generated Prometheus rules (alerts/generated/*.rules.yml)
 * and Grafana dashboards (dashboards/generated/*.json) into the chart (deploy/helm/codelab/files/),
 * which Helm can only read from inside the chart. `--check` copies nothing and exits 1 when a copy
 * differs from its source, or is missing or left over (the chart test runs the same comparison).
 */
import { copyFileSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';

const ROOT = path.resolve(import.meta.dirname, '..', '..', '..');
const CHART_FILES = path.join(ROOT, 'deploy', 'helm', 'codelab', 'files');

/** Each copy the chart holds: its source and its place in the chart. */
export const CHART_COPIES = [
  { from: path.join(ROOT, 'alerts', 'generated'), to: path.join(CHART_FILES, 'alerts'), match: /\.rules\.yml$/ },
  { from: path.join(ROOT, 'dashboards', 'generated'), to: path.join(CHART_FILES, 'dashboards'), match: /\.json$/ },
];

const list = (dir: string, match: RegExp): string[] => {
  try {
    return readdirSync(dir)
      .filter((f) => match.test(f))
      .sort();
  } catch {
    return [];
  }
};

/** What differs between the sources and the chart's copies (empty: in step). */
export function chartFileDrift(): string[] {
  const drift: string[] = [];
  for (const { from, to, match } of CHART_COPIES) {
    const sources = list(from, match);
    const copies = list(to, match);
    for (const f of sources)
      if (!copies.includes(f)) drift.push(`${path.relative(ROOT, path.join(to, f))} is missing`);
      else if (!readFileSync(path.join(from, f)).equals(readFileSync(path.join(to, f))))
        drift.push(`${path.relative(ROOT, path.join(to, f))} differs from ${path.relative(ROOT, path.join(from, f))}`);
    for (const f of copies) if (!sources.includes(f)) drift.push(`${path.relative(ROOT, path.join(to, f))} has no source any more`);
  }
  return drift;
}

if (import.meta.main) {
  if (process.argv.includes('--check')) {
    const drift = chartFileDrift();
    for (const d of drift) console.error(d);
    if (drift.length) console.error('run npm run chart:files');
    process.exitCode = drift.length ? 1 : 0;
  } else {
    for (const { from, to, match } of CHART_COPIES) {
      rmSync(to, { recursive: true, force: true });
      mkdirSync(to, { recursive: true });
      for (const f of list(from, match)) copyFileSync(path.join(from, f), path.join(to, f));
    }
    console.log(`chart files: ${CHART_COPIES.map((c) => `${list(c.to, c.match).length} in ${path.relative(ROOT, c.to)}`).join(', ')}`);
  }
}
