/** The tool calls of one session that wait for a person's decision (`/sessions/:id/pending-approvals`). */
import { useState } from 'preact/hooks';
import { type PendingApproval, pendingApprovals } from '../api/sessions-api.ts';

export function PendingApprovalsPanel() {
  const [sessionId, setSessionId] = useState('');
  const [result, setResult] = useState<{ id: string; approvals: PendingApproval[] } | undefined>(undefined);
  const [error, setError] = useState<string | undefined>(undefined);
  const [loading, setLoading] = useState(false);

  const submit = async (event: Event) => {
    event.preventDefault();
    const id = sessionId.trim();
    if (!id) return;
    setLoading(true);
    setError(undefined);
    try {
      const answer = await pendingApprovals(id);
      setResult({ id, approvals: answer.pending_approvals ?? [] });
    } catch (err) {
      setResult(undefined);
      setError((err as Error).message);
    } finally {
      setLoading(false);
    }
  };

  return (
    <section class="panel" aria-labelledby="ops-approvals-title" data-testid="ops-approvals">
      <h2 id="ops-approvals-title">Pending approvals</h2>
      <form class="filters" onSubmit={submit}>
        <div class="field">
          <label for="approvals-session">Session id</label>
          <input
            id="approvals-session"
            required
            data-testid="approvals-session-id"
            value={sessionId}
            onInput={(e) => setSessionId(e.currentTarget.value)}
          />
        </div>
        <button type="submit" data-testid="approvals-submit" disabled={loading}>
          Show
        </button>
      </form>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      {result && result.approvals.length === 0 && (
        <p>
          Nothing waits for approval in <code>{result.id}</code>.
        </p>
      )}
      {result && result.approvals.length > 0 && (
        <ul class="approval-list">
          {result.approvals.map((a) => (
            <li key={a.call_id}>
              <strong>{a.tool_name}</strong> <code>{a.call_id}</code>
              {a.reason && <span class="muted"> — {a.reason}</span>}
              {a.expires_at && <span class="muted"> (expires {a.expires_at})</span>}
              <pre class="json">{JSON.stringify(a.arguments, null, 2)}</pre>
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}
