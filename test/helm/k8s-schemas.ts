/**
 * Offline schema validation of rendered objects: kubernetes-models' validator per kind (wrong
 * types, missing required fields), and the Prometheus Operator's kinds from
 * @kubernetes-models/prometheus-operator. An object of a kind neither knows is a problem itself.
 */
import * as monitoring from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';
import * as apps from 'kubernetes-models/apps/v1';
import * as autoscaling from 'kubernetes-models/autoscaling/v2';
import * as batch from 'kubernetes-models/batch/v1';
import * as networking from 'kubernetes-models/networking.k8s.io/v1';
import * as policy from 'kubernetes-models/policy/v1';
import * as core from 'kubernetes-models/v1';
import type { K8sObject } from './helm-tools.ts';

type Model = new (data: unknown) => { validate(): void };

const MODELS: Record<string, Record<string, unknown>> = {
  v1: core,
  'apps/v1': apps,
  'batch/v1': batch,
  'autoscaling/v2': autoscaling,
  'policy/v1': policy,
  'networking.k8s.io/v1': networking,
  'monitoring.coreos.com/v1': monitoring,
};

/** What is wrong with the object by its kind's schema (empty: valid). */
export async function validateObject(o: K8sObject): Promise<string[]> {
  const group = MODELS[o.apiVersion];
  if (!group) return [`no schema for apiVersion ${o.apiVersion}`];
  const model = group[o.kind] as Model | undefined;
  if (!model) return [`no schema for ${o.apiVersion} ${o.kind}`];
  try {
    new model(o).validate();
    return [];
  } catch (err) {
    const e = err as Error & { errors?: { instancePath?: string; message?: string }[] };
    return e.errors?.map((x) => `${x.instancePath ?? ''} ${x.message ?? ''}`.trim()) ?? [e.message];
  }
}
