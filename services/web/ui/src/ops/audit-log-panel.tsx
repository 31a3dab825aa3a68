/** The audit log (`/api/v1/events/audit-log`), filtered by session id, event type and count. */
import { useState } from 'preact/hooks';
import { AUDIT_EVENT_TYPES, type AuditEntry, type AuditFilters, auditLog } from '../api/events-api.ts';
import { LoadStatus } from '../components/load-status.tsx';
import { useAsync } from '../use-async.ts';
import { ScrollRegion } from '../components/scroll-region.tsx';

const SHOWN_APART = new Set(['timestamp', 'event_type', 'session_id', 'event_id', 'correlation_id']);

function details(entry: AuditEntry): string {
  const rest = Object.fromEntries(Object.entries(entry).filter(([k]) => !SHOWN_APART.has(k)));
  return JSON.stringify(rest);
}

export function AuditLogPanel() {
  const [draft, setDraft] = useState<AuditFilters>({ sessionId: '', eventType: '', limit: 50 });
  const [filters, setFilters] = useState<AuditFilters>(draft);
  const { data, error, loading, reload } = useAsync(() => auditLog(filters), [filters]);

  const submit = (event: Event) => {
    event.preventDefault();
    // a new object even when nothing changed, so that submitting again reloads
    setFilters({ ...draft, limit: Math.min(1000, Math.max(1, Math.round(draft.limit) || 50)) });
    if (JSON.stringify(draft) === JSON.stringify(filters)) reload();
  };

  return (
    <section class="panel" aria-labelledby="ops-audit-title" data-testid="ops-audit">
      <h2 id="ops-audit-title">Audit log</h2>
      <form class="filters" onSubmit={submit}>
        <div class="field">
          <label for="audit-session">Session id</label>
          <input
            id="audit-session"
            data-testid="audit-session-id"
            value={draft.sessionId}
            onInput={(e) => setDraft({ ...draft, sessionId: e.currentTarget.value })}
          />
        </div>
        <div class="field">
          <label for="audit-type">Event type</label>
          <select
            id="audit-type"
            data-testid="audit-event-type"
            value={draft.eventType}
            onChange={(e) => setDraft({ ...draft, eventType: e.currentTarget.value })}
          >
            <option value="">any</option>
            {AUDIT_EVENT_TYPES.map((t) => (
              <option key={t} value={t}>
                {t}
              </option>
            ))}
          </select>
        </div>
        <div class="field">
          <label for="audit-limit">Limit</label>
          <input
            id="audit-limit"
            type="number"
            min={1}
            max={1000}
            data-testid="audit-limit"
            value={draft.limit}
            onInput={(e) => setDraft({ ...draft, limit: Number(e.currentTarget.value) })}
          />
        </div>
        <button type="submit" data-testid="audit-submit">
          Show
        </button>
      </form>
      <LoadStatus loading={loading} error={error} what="the audit log" />
      {data && data.audit_log.length === 0 && <p>No entries match.</p>}
      {data && data.audit_log.length > 0 && (
        <ScrollRegion label={'audit log'}>
          <table>
            <caption class="muted">{data.audit_log.length} entries, oldest first</caption>
            <thead>
              <tr>
                <th scope="col">Time</th>
                <th scope="col">Type</th>
                <th scope="col">Session</th>
                <th scope="col">Details</th>
              </tr>
            </thead>
            <tbody>
              {data.audit_log.map((entry, i) => (
                <tr key={entry.event_id ?? i} data-testid="audit-entry">
                  <td>{entry.timestamp}</td>
                  <td>{entry.event_type}</td>
                  <td>
                    <code>{entry.session_id ?? '—'}</code>
                  </td>
                  <td>
                    <code class="wrap">{details(entry)}</code>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </ScrollRegion>
      )}
    </section>
  );
}
