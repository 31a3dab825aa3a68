/** Every CodeLab dashboard, by its stable uid, and its rendering as committed under `dashboards/generated/`. */
import type { Dashboard } from '@grafana/grafana-foundation-sdk/dashboard';
import { authDashboard, uid as authUid } from './auth.ts';
import { datastoresDashboard, uid as datastoresUid } from './datastores.ts';
import { gatewayDashboard, uid as gatewayUid } from './gateway.ts';
import { llmDashboard, uid as llmUid } from './llm.ts';
import { nodeDashboard, uid as nodeUid } from './node.ts';
import { overviewDashboard, uid as overviewUid } from './overview.ts';
import { runtimeDashboard, uid as runtimeUid } from './runtime.ts';
import { sloDashboard, uid as sloUid } from './slo.ts';

export const DASHBOARDS: Readonly<Record<string, () => Dashboard>> = {
  [overviewUid]: overviewDashboard,
  [gatewayUid]: gatewayDashboard,
  [runtimeUid]: runtimeDashboard,
  [llmUid]: llmDashboard,
  [authUid]: authDashboard,
  [datastoresUid]: datastoresDashboard,
  [nodeUid]: nodeDashboard,
  [sloUid]: sloDashboard,
};

/** File name → content of every generated dashboard (`<uid>.json`, 2-space JSON, final newline). */
export function renderDashboards(): Map<string, string> {
  const out = new Map<string, string>();
  for (const [uid, build] of Object.entries(DASHBOARDS)) out.set(`${uid}.json`, `${JSON.stringify(build(), null, 2)}\n`);
  return out;
}
