/** `/ops` (admins): services, event metrics, error budgets, the audit log and pending approvals. */
import { AuditLogPanel } from '../ops/audit-log-panel.tsx';
import { MetricsPanel } from '../ops/metrics-panel.tsx';
import { PendingApprovalsPanel } from '../ops/pending-approvals-panel.tsx';
import { ServicesTable } from '../ops/services-table.tsx';
import { SloPanel } from '../ops/slo-panel.tsx';

export function OpsPage({ admin }: { admin: boolean }) {
  if (!admin)
    return (
      <section aria-labelledby="ops-title">
        <h1 id="ops-title">Operations</h1>
        <p role="alert">The operations view needs an administrator’s sign-in (the api:admin scope).</p>
      </section>
    );
  return (
    <section class="ops" aria-labelledby="ops-title">
      <h1 id="ops-title">Operations</h1>
      <ServicesTable />
      <SloPanel />
      <MetricsPanel />
      <AuditLogPanel />
      <PendingApprovalsPanel />
    </section>
  );
}
