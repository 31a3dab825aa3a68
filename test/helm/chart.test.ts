/**
 * The Helm chart (deploy/helm/codelab), per environment (values-dev, -staging, -prod): `helm lint
 * --strict`, every rendered object valid against the Kubernetes schemas (kubernetes-models,
 * offline), and the policies the chart promises checked over the rendered objects: probes,
 * resources and hardened containers everywhere, a disruption budget for every Deployment with more
 * than one replica, every pod behind a network policy whose allowed edges are exactly the
 * platform's, the PrometheusRule and dashboards equal to the generated ones, no bundled database
 * and no inline secret in production. Bad values fail, naming the key.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { chartFileDrift } from '../../deploy/helm/scripts/chart-files.ts';
import { CHART, ENVIRONMENTS, helm, type K8sObject, ROOT, render, valuesFile } from './helm-tools.ts';
import { validateObject } from './k8s-schemas.ts';

type Container = {
  name: string;
  resources?: { requests?: Record<string, unknown>; limits?: Record<string, unknown> };
  securityContext?: Record<string, unknown>;
  livenessProbe?: unknown;
  readinessProbe?: unknown;
  env?: { name: string; value?: string; valueFrom?: unknown }[];
};
type PodSpec = {
  containers: Container[];
  initContainers?: Container[];
  securityContext?: Record<string, unknown>;
  automountServiceAccountToken?: boolean;
};

const WORKLOADS = new Set(['Deployment', 'StatefulSet', 'Job']);
const podOf = (o: K8sObject) => (o.spec as { template: { metadata: { labels: Record<string, string> }; spec: PodSpec } }).template;
const component = (labels: Record<string, string> | undefined) => labels?.['app.kubernetes.io/component'];

const rendered = new Map<string, Promise<K8sObject[]>>();
const objects = (env: (typeof ENVIRONMENTS)[number]) => {
  if (!rendered.has(env)) rendered.set(env, render(env));
  return rendered.get(env)!;
};

describe.each(ENVIRONMENTS)('the chart with values-%s.yaml', (env) => {
  it('passes helm lint --strict', async () => {
    const r = await helm(['lint', '--strict', CHART, '-f', valuesFile(env)]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toContain('0 chart(s) failed');
  });

  it('renders only objects valid against the Kubernetes schemas', async () => {
    const all = await objects(env);
    expect(all.length).toBeGreaterThan(20);
    const problems = (await Promise.all(all.map(async (o) => [`${o.kind}/${o.metadata.name}`, await validateObject(o)] as const)))
      .filter(([, p]) => p.length)
      .map(([n, p]) => `${n}: ${p.join('; ')}`);
    expect(problems).toEqual([]);
  });

  it('gives every container probes (services), requests and limits, and runs it non-root, read-only, without capabilities', async () => {
    const all = await objects(env);
    const workloads = all.filter((o) => WORKLOADS.has(o.kind));
    expect(workloads.length).toBeGreaterThanOrEqual(4);
    for (const w of workloads) {
      const pod = podOf(w).spec;
      expect(pod.automountServiceAccountToken, `${w.metadata.name}: no API token`).toBe(false);
      expect(pod.securityContext?.runAsNonRoot, w.metadata.name).toBe(true);
      for (const c of [...pod.containers, ...(pod.initContainers ?? [])]) {
        const where = `${w.kind}/${w.metadata.name}/${c.name}`;
        if (w.kind !== 'Job') {
          expect(c.livenessProbe, `${where} liveness`).toBeDefined();
          expect(c.readinessProbe, `${where} readiness`).toBeDefined();
        }
        expect(Object.keys(c.resources?.requests ?? {}).sort(), `${where} requests`).toEqual(['cpu', 'memory']);
        expect(Object.keys(c.resources?.limits ?? {}).sort(), `${where} limits`).toEqual(['cpu', 'memory']);
        expect(c.securityContext, where).toMatchObject({
          runAsNonRoot: true,
          readOnlyRootFilesystem: true,
          allowPrivilegeEscalation: false,
          capabilities: { drop: ['ALL'] },
          seccompProfile: { type: 'RuntimeDefault' },
        });
      }
    }
  });

  it('sets only environments the services accept (staging behaves as production)', async () => {
    const envs = (await objects(env))
      .filter((o) => o.kind === 'ConfigMap' && o.data)
      .flatMap((c) =>
        Object.entries(c.data!)
          .filter(([k]) => k.endsWith('__ENVIRONMENT'))
          .map(([, v]) => v),
      );
    expect(envs.length).toBe(4);
    expect(new Set(envs)).toEqual(new Set([env === 'dev' ? 'development' : 'production']));
  });

  it('gives every Deployment with more than one replica a PodDisruptionBudget that selects it', async () => {
    const all = await objects(env);
    const hpas = new Map(
      all
        .filter((o) => o.kind === 'HorizontalPodAutoscaler')
        .map((h) => [(h.spec as { scaleTargetRef: { name: string } }).scaleTargetRef.name, h]),
    );
    const pdbs = all.filter((o) => o.kind === 'PodDisruptionBudget');
    for (const d of all.filter((o) => o.kind === 'Deployment')) {
      const hpa = hpas.get(d.metadata.name)?.spec as { minReplicas: number } | undefined;
      const least = hpa ? hpa.minReplicas : ((d.spec as { replicas?: number }).replicas ?? 1);
      const labels = podOf(d).metadata.labels;
      const covering = pdbs.filter((p) =>
        Object.entries((p.spec as { selector: { matchLabels: Record<string, string> } }).selector.matchLabels).every(
          ([k, v]) => labels[k] === v,
        ),
      );
      expect(covering.length, `${d.metadata.name} (at least ${least} replicas)`).toBe(least > 1 ? 1 : 0);
    }
  });

  it('puts every pod behind the default deny and a policy of its own, and allows exactly the platform edges', async () => {
    const all = await objects(env);
    const policies = all.filter((o) => o.kind === 'NetworkPolicy');
    const selects = (p: K8sObject, labels: Record<string, string>) =>
      Object.entries((p.spec as { podSelector: { matchLabels: Record<string, string> } }).podSelector.matchLabels).every(
        ([k, v]) => labels[k] === v,
      );
    const deny = policies.find((p) => p.metadata.name.endsWith('-default-deny'))!;
    expect((deny.spec as Record<string, unknown>).ingress ?? []).toEqual([]);
    expect((deny.spec as Record<string, unknown>).egress ?? []).toEqual([]);
    for (const w of all.filter((o) => WORKLOADS.has(o.kind))) {
      const labels = podOf(w).metadata.labels;
      expect(selects(deny, labels), `${w.metadata.name}: default deny`).toBe(true);
      expect(policies.filter((p) => p !== deny && selects(p, labels)).length, `${w.metadata.name}: its policy`).toBe(1);
    }
    expect(edges(policies).sort()).toEqual(expectedEdges(env).sort());
  });

  it('carries exactly the generated Prometheus rules and dashboards (when monitoring is on)', async () => {
    const all = await objects(env);
    const monitoring = env !== 'dev';
    const rule = all.find((o) => o.kind === 'PrometheusRule');
    const dashboards = all.filter((o) => o.kind === 'ConfigMap' && o.metadata.labels?.grafana_dashboard === '1');
    const monitors = all.filter((o) => o.kind === 'ServiceMonitor');
    if (!monitoring) {
      expect([rule, dashboards.length, monitors.length]).toEqual([undefined, 0, 0]);
      return;
    }
    const generated = path.join(ROOT, 'alerts', 'generated');
    const groups = readdirSync(generated)
      .filter((f) => f.endsWith('.rules.yml'))
      .sort()
      .flatMap((f) => (parse(readFileSync(path.join(generated, f), 'utf8')) as { groups: unknown[] }).groups);
    expect((rule!.spec as { groups: unknown[] }).groups).toEqual(groups);
    const boards = path.join(ROOT, 'dashboards', 'generated');
    const files = readdirSync(boards).filter((f) => f.endsWith('.json'));
    expect(Object.fromEntries(dashboards.flatMap((c) => Object.entries(c.data!)))).toEqual(
      Object.fromEntries(files.map((f) => [f, readFileSync(path.join(boards, f), 'utf8')])),
    );
    // every service scraped, its job named after it (what the rules select on)
    expect(monitors.map((m) => component(m.metadata.labels)).sort()).toEqual(['auth', 'gateway', 'llm-proxy', 'runtime']);
    for (const m of monitors) expect((m.spec as { jobLabel: string }).jobLabel).toBe('app.kubernetes.io/component');
  });
});

describe('the chart across environments', () => {
  it('runs 1, 2 and 3+ replicas in dev, staging and prod, production at least upstream resources', async () => {
    const replicas = async (env: (typeof ENVIRONMENTS)[number]) => {
      const all = await objects(env);
      const hpa = (name: string) =>
        all.find((o) => o.kind === 'HorizontalPodAutoscaler' && o.metadata.name === name)?.spec as { minReplicas: number } | undefined;
      return Object.fromEntries(
        all
          .filter((o) => o.kind === 'Deployment')
          .map((d) => [component(d.metadata.labels), hpa(d.metadata.name)?.minReplicas ?? (d.spec as { replicas: number }).replicas]),
      );
    };
    expect(await replicas('dev')).toEqual({ auth: 1, gateway: 1, runtime: 1, 'llm-proxy': 1 });
    expect(await replicas('staging')).toEqual({ auth: 2, gateway: 2, runtime: 2, 'llm-proxy': 2 });
    for (const n of Object.values(await replicas('prod'))) expect(n).toBeGreaterThanOrEqual(3);
    const prod = await objects('prod');
    const resources = (c: string) =>
      podOf(prod.find((o) => o.kind === 'Deployment' && component(o.metadata.labels) === c)!).spec.containers[0]!.resources;
    expect(resources('gateway')).toEqual({ requests: { cpu: '500m', memory: '512Mi' }, limits: { cpu: '2', memory: '1Gi' } });
    expect(resources('runtime')).toEqual({ requests: { cpu: '1', memory: '1Gi' }, limits: { cpu: '4', memory: '4Gi' } });
    expect(resources('llm-proxy')).toEqual({ requests: { cpu: '500m', memory: '512Mi' }, limits: { cpu: '2', memory: '1Gi' } });
  });

  it('renders no bundled database and no inline secret in production; the migrations run as a hook before the services', async () => {
    const prod = await objects('prod');
    expect(prod.filter((o) => o.kind === 'StatefulSet' || o.kind === 'Secret').map((o) => `${o.kind}/${o.metadata.name}`)).toEqual([]);
    for (const w of prod.filter((o) => WORKLOADS.has(o.kind)))
      for (const c of [...podOf(w).spec.containers, ...(podOf(w).spec.initContainers ?? [])])
        for (const e of c.env ?? [])
          if (/KEY|PASSWORD|SECRET|_URL$/.test(e.name) && !/LITELLM_PROXY_URL|LLM_PROXY_URL/.test(e.name))
            expect(e.value, `${w.metadata.name}/${c.name} ${e.name} inline`).toBeUndefined();
    const job = prod.find((o) => o.kind === 'Job')!;
    expect(job.metadata.annotations?.['helm.sh/hook']).toBe('pre-install,pre-upgrade');
    const pod = podOf(job).spec;
    expect([...(pod.initContainers ?? []), ...pod.containers].map((c) => (c as unknown as { command: string[] }).command)).toEqual([
      ['node', 'services/auth/src/migrate.ts'],
      ['node', 'services/runtime/src/migrate.ts'],
    ]);
    // the bundled database of development: its services migrate at start instead (no hook that would find no database)
    expect((await objects('dev')).filter((o) => o.kind === 'Job')).toEqual([]);
  });

  it('has a schema check that refuses what Kubernetes would (so that a clean result means something)', async () => {
    const broken = { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'x' }, spec: { replicas: 'three' } };
    expect((await validateObject(broken as unknown as K8sObject)).join('\n')).toMatch(/replicas|selector|template/);
    expect(await validateObject({ apiVersion: 'example.com/v1', kind: 'Thing', metadata: { name: 'x' } })).toEqual([
      'no schema for apiVersion example.com/v1',
    ]);
  });

  it("keeps the chart's copies of the rules and dashboards in step with the generated ones (npm run chart:files)", () => {
    expect(chartFileDrift()).toEqual([]);
  });

  it.each([
    [['--set', 'gateway.replicas=three'], 'gateway.replicas'],
    [['--set', 'gateway.replicaz=3'], 'replicaz'],
    [['--set', 'environment=prodution'], 'environment'],
    [['--set', 'ingress.bodySize=lots'], 'ingress.bodySize'],
    [['--set', 'runtime.resources.limits.memory=lots'], 'runtime/resources/limits/memory'],
    [['--set-json', 'auth.signingKeys={"existingSecret":"k","generate":true}'], 'generate'],
  ])('refuses bad values %j, naming the key', async (args, key) => {
    for (const cmd of [
      ['lint', '--strict', CHART, '-f', valuesFile('prod')],
      ['template', 'x', CHART, '-f', valuesFile('prod')],
    ]) {
      const r = await helm([...cmd, ...args]);
      expect(r.code, `${cmd[0]} ${args.join(' ')}`).not.toBe(0);
      expect(r.stdout + r.stderr).toContain(key.split(/[./]/).at(-1)!);
      expect(r.stdout + r.stderr).toMatch(/schema|values don't meet the specifications/i);
    }
  });

  it('refuses two auth replicas without a shared signing key, and an external database without its URL, saying why', async () => {
    const twoAuths = await helm(['template', 'x', CHART, '-f', valuesFile('dev'), '--set', 'auth.replicas=2']);
    expect(twoAuths.code).not.toBe(0);
    expect(twoAuths.stderr).toContain('auth.signingKeys.existingSecret');
    const noUrl = await helm(['template', 'x', CHART, '-f', valuesFile('dev'), '--set', 'postgresql.bundled=false']);
    expect(noUrl.code).not.toBe(0);
    expect(noUrl.stderr).toContain('secrets.databaseUrl is required');
  });
});

/** The allowed edges of a set of network policies, as "from → to:port" with peers named by component. */
function edges(policies: K8sObject[]): string[] {
  type Peer = { podSelector?: { matchLabels?: Record<string, string> }; namespaceSelector?: unknown; ipBlock?: { cidr: string } };
  type Rule = { from?: Peer[]; to?: Peer[]; ports?: { port: number; protocol: string }[] };
  const name = (p: Peer): string => {
    if (p.ipBlock) return p.ipBlock.cidr;
    const l = p.podSelector?.matchLabels ?? {};
    if (l['k8s-app'] === 'kube-dns') return 'dns';
    if (l['app.kubernetes.io/name'] === 'ingress-nginx') return 'ingress-controller';
    if (l['app.kubernetes.io/name'] === 'prometheus') return 'prometheus';
    return component(l) ?? JSON.stringify(p);
  };
  const out: string[] = [];
  for (const p of policies) {
    const spec = p.spec as { podSelector: { matchLabels: Record<string, string> }; ingress?: Rule[]; egress?: Rule[] };
    const self = component(spec.podSelector.matchLabels);
    if (!self) continue;
    for (const r of spec.ingress ?? [])
      for (const f of r.from ?? []) for (const port of r.ports ?? []) out.push(`${name(f)} → ${self}:${port.port}`);
    for (const r of spec.egress ?? [])
      for (const t of r.to ?? [])
        for (const port of r.ports ?? []) out.push(`${self} → ${name(t)}:${port.port}${port.protocol === 'UDP' ? '/udp' : ''}`);
  }
  return [...new Set(out)];
}

/** The platform's edges (the list), per environment. */
function expectedEdges(env: (typeof ENVIRONMENTS)[number]): string[] {
  const bundled = env !== 'prod';
  const db = bundled ? 'postgresql' : '10.20.0.0/16';
  const redis = bundled ? 'redis' : '10.30.0.0/16';
  const e = [
    'ingress-controller → gateway:8000',
    'ingress-controller → auth:8003',
    'gateway → auth:8003',
    'gateway → runtime:8001',
    'runtime → llm-proxy:8002',
    `runtime → ${db}:5432`,
    `runtime → ${redis}:6379`,
    `auth → ${db}:5432`,
    `auth → ${redis}:6379`,
    'prometheus → auth:8003',
    'prometheus → gateway:8000',
    'prometheus → runtime:8001',
    'prometheus → llm-proxy:8002',
  ];
  // the runtime's and auth's own ingress rules repeat what their peers' egress allows
  e.push('gateway → auth:8003', 'gateway → runtime:8001', 'runtime → llm-proxy:8002');
  if (bundled) e.push('auth → postgresql:5432', 'runtime → postgresql:5432', 'auth → redis:6379', 'runtime → redis:6379');
  else e.push('migrations → 10.20.0.0/16:5432', 'llm-proxy → 0.0.0.0/0:443');
  const pods = ['auth', 'gateway', 'runtime', 'llm-proxy', ...(bundled ? ['postgresql', 'redis'] : ['migrations'])];
  for (const p of pods) e.push(`${p} → dns:53/udp`, `${p} → dns:53`);
  return [...new Set(e)];
}
