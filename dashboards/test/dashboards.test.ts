/**
 * The generated dashboards: up to date with their TypeScript source, fixed uids and datasource uids,
 * `$__rate_interval` on every range, a title, description and unit on every panel, exemplars on
 * latency panels, PromQL that promtool parses, and metric names that the code defines.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { missingProgram } from '@codelab/service-kit/testing';
import { DASHBOARDS, renderDashboards } from '../src/index.ts';
import { allPanelQueries, DATASOURCE_UIDS, GENERATED_DIR, metricNamesOf } from '../src/lib.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const EXPECTED_UIDS = [
  'codelab-overview',
  'codelab-gateway',
  'codelab-runtime',
  'codelab-llm',
  'codelab-auth',
  'codelab-datastores',
  'codelab-node',
  'codelab-slo',
];
const FIXED_UIDS = new Set<string>(Object.values(DATASOURCE_UIDS));

interface JsonPanel {
  type: string;
  title?: string;
  description?: string;
  datasource?: { type?: string; uid?: string };
  fieldConfig?: { defaults?: { unit?: string } };
  targets?: { expr?: string; exemplar?: boolean; refId?: string; datasource?: { uid?: string } }[];
  panels?: JsonPanel[];
}
interface JsonDashboard {
  uid: string;
  title: string;
  panels: JsonPanel[];
  templating?: { list?: { name: string; datasource?: { uid?: string } }[] };
}

const generatedFiles = (): string[] =>
  readdirSync(GENERATED_DIR)
    .filter((f) => f.endsWith('.json'))
    .sort();
const load = (file: string): JsonDashboard => JSON.parse(readFileSync(join(GENERATED_DIR, file), 'utf8')) as JsonDashboard;
const dashboards = (): JsonDashboard[] => generatedFiles().map(load);
function panelsOf(d: JsonDashboard): JsonPanel[] {
  const out: JsonPanel[] = [];
  const walk = (ps: JsonPanel[]): void => {
    for (const p of ps) {
      if (p.type !== 'row') out.push(p);
      walk(p.panels ?? []);
    }
  };
  walk(d.panels);
  return out;
}

describe('dashboards', () => {
  describe('generated JSON', () => {
    it('is what `npm run dashboards` builds now, byte for byte, with no stale file', () => {
      const built = renderDashboards();
      expect(generatedFiles()).toEqual([...built.keys()].sort());
      for (const [file, content] of built)
        expect(readFileSync(join(GENERATED_DIR, file), 'utf8'), `${file} is stale: run npm run dashboards`).toBe(content);
    });

    it('has every dashboard under its fixed uid, in <uid>.json', () => {
      expect(Object.keys(DASHBOARDS).sort()).toEqual([...EXPECTED_UIDS].sort());
      for (const file of generatedFiles()) expect(file).toBe(`${load(file).uid}.json`);
    });

    // biome-ignore lint/suspicious/noTemplateCurlyInString: the test's name quotes Grafana's ${DS_…} syntax
    it('references datasources only by the fixed uids, never ${DS_…} inputs', () => {
      for (const file of generatedFiles()) {
        const text = readFileSync(join(GENERATED_DIR, file), 'utf8');
        expect(text, file).not.toContain('${DS_');
        expect(text, file).not.toContain('__inputs');
        const d = load(file);
        for (const v of d.templating?.list ?? [])
          if (v.datasource) expect(FIXED_UIDS.has(v.datasource.uid ?? ''), `${file} variable ${v.name}`).toBe(true);
        for (const p of panelsOf(d)) {
          expect(FIXED_UIDS.has(p.datasource?.uid ?? ''), `${file} / ${p.title}`).toBe(true);
          for (const t of p.targets ?? []) expect(FIXED_UIDS.has(t.datasource?.uid ?? ''), `${file} / ${p.title} / ${t.refId}`).toBe(true);
        }
      }
    });
  });

  describe('panels', () => {
    it('each have a title, a description, a unit and at least one query', () => {
      for (const d of dashboards()) {
        expect(panelsOf(d).length, d.uid).toBeGreaterThan(0);
        for (const p of panelsOf(d)) {
          const where = `${d.uid} / ${p.title ?? '?'}`;
          expect(p.title, where).toBeTruthy();
          expect(p.description, where).toBeTruthy();
          expect(p.fieldConfig?.defaults?.unit, where).toBeTruthy();
          expect(p.targets?.length, where).toBeGreaterThan(0);
        }
      }
    });

    it('have unique titles within a dashboard', () => {
      for (const d of dashboards()) {
        const titles = panelsOf(d).map((p) => p.title);
        expect(new Set(titles).size, d.uid).toBe(titles.length);
      }
    });

    it('show exemplars on every latency query (histogram quantile in seconds)', () => {
      for (const d of dashboards()) {
        for (const p of panelsOf(d)) {
          if (p.fieldConfig?.defaults?.unit !== 's') continue;
          for (const t of p.targets ?? []) {
            if (t.expr?.includes('histogram_quantile')) expect(t.exemplar, `${d.uid} / ${p.title} / ${t.refId}`).toBe(true);
          }
        }
      }
    });
  });

  describe('queries', () => {
    it('use $__rate_interval for every range', () => {
      const queries = allPanelQueries();
      expect(queries.length).toBeGreaterThan(50);
      for (const q of queries) {
        const ranges = [...q.raw.matchAll(/\[([^\]]*)\]/g)].map((m) => m[1]);
        for (const r of ranges) expect(r, `${q.dashboard} / ${q.panel}: ${q.raw}`).toBe('$__rate_interval');
        if (/\b(rate|irate|increase)\(/.test(q.raw)) expect(ranges.length, `${q.dashboard} / ${q.panel}`).toBeGreaterThan(0);
      }
    });

    it('are listed by allPanelQueries() for every panel, evaluable (no Grafana variable left)', () => {
      const queries = allPanelQueries();
      for (const d of dashboards()) {
        for (const p of panelsOf(d))
          expect(
            queries.some((q) => q.dashboard === d.uid && q.panel === p.title),
            `${d.uid} / ${p.title}`,
          ).toBe(true);
      }
      for (const q of queries) expect(q.expr, `${q.dashboard} / ${q.panel}`).not.toContain('$');
    });

    it.skipIf(missingProgram('promtool', 'prometheus'))('parse as PromQL (promtool check rules)', () => {
      const dir = mkdtempSync(join(tmpdir(), 'dashboards-promql-'));
      try {
        const rules = allPanelQueries().map((q, i) => `      - record: dashboard_query_${i}\n        expr: ${JSON.stringify(q.expr)}\n`);
        const file = join(dir, 'queries.yml');
        writeFileSync(file, `groups:\n  - name: dashboard-queries\n    rules:\n${rules.join('')}`);
        const out = execFileSync('promtool', ['check', 'rules', file], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
        expect(out).toContain('SUCCESS');
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    it('read metrics the code defines (services, service kit, prom-client defaults) or rules alerts/ records', () => {
      const sources = [
        ...['services', 'packages'].flatMap((top) =>
          readdirSync(join(ROOT, top)).flatMap((pkg) => {
            const src = join(ROOT, top, pkg, 'src');
            try {
              return readdirSync(src, { recursive: true, encoding: 'utf8' })
                .filter((f) => f.endsWith('.ts'))
                .map((f) => readFileSync(join(src, f), 'utf8'));
            } catch {
              return [];
            }
          }),
        ),
        ...readdirSync(join(ROOT, 'node_modules/prom-client/lib/metrics'))
          .filter((f) => f.endsWith('.js'))
          .map((f) => readFileSync(join(ROOT, 'node_modules/prom-client/lib/metrics', f), 'utf8')),
      ].join('\n');
      const rulesDir = join(ROOT, 'alerts/generated');
      const rules = readdirSync(rulesDir)
        .map((f) => readFileSync(join(rulesDir, f), 'utf8'))
        .join('\n');
      const missing: string[] = [];
      for (const q of allPanelQueries()) {
        for (const name of metricNamesOf(q.expr)) {
          if (name.includes(':')) {
            if (!rules.includes(`record: ${name}\n`)) missing.push(`${q.dashboard} / ${q.panel}: recording rule ${name}`);
            continue;
          }
          const base = name.replace(/_(bucket|count|sum)$/, '');
          if (!sources.includes(`'${base}'`) && !sources.includes(`'${name}'`)) missing.push(`${q.dashboard} / ${q.panel}: ${name}`);
        }
      }
      expect(missing).toEqual([]);
    });
  });
});

describe('metricNamesOf', () => {
  it('keeps metric and rule names, drops functions, keywords, labels and durations', () => {
    expect(metricNamesOf('histogram_quantile(0.95, sum by (le, service) (rate(x_bucket{service=~"a|b", le="1"}[1m])))')).toEqual([
      'x_bucket',
    ]);
    expect(metricNamesOf('slo:a:ratio{slo="x"} / on (slo) (1 - slo:b:ratio) or y * 0')).toEqual(['slo:a:ratio', 'slo:b:ratio', 'y']);
  });
});
