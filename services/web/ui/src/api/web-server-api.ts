/** The web server's own routes: the services' health and readiness, the SLOs, and the docs. */
import { publicJson, publicText } from './http.ts';

export interface ServiceStatus {
  name: string;
  healthStatus: number | null;
  health: { status?: string; service?: string; version?: string } | null;
  readyStatus: number | null;
  ready: { status?: string; checks?: Record<string, string>; failed?: string[]; version?: string } | null;
  error?: string;
}

interface SloBudget {
  slo: string;
  service: string;
  objective?: number;
  budgetRemaining: number | null;
}

export function serviceStatuses(): Promise<{ services: ServiceStatus[] }> {
  return publicJson('/ops/services');
}

export function sloBudgets(): Promise<{ enabled: boolean; slos: SloBudget[] }> {
  return publicJson('/ops/slo');
}

/** The documents the server has (README, troubleshooting guide, runbooks). */
export const DOC_NAMES = ['readme', 'troubleshooting', 'runbooks'] as const;

export function docMarkdown(name: string): Promise<string> {
  return publicText(`/docs/${encodeURIComponent(name)}.md`);
}
