/** `/`: the user's conversations, newest activity first, a page at a time; and a new one. */
import { useState } from 'preact/hooks';
import { Link, useLocation, useSearch } from 'wouter-preact';
import { createSession, listSessions, sessionIdOf } from '../api/sessions-api.ts';
import { LoadStatus } from '../components/load-status.tsx';
import { useAsync } from '../use-async.ts';

const PAGE_SIZE = 20;

function formatTime(iso: string | undefined): string {
  if (!iso) return '';
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
}

export function ConversationsPage() {
  const [, navigate] = useLocation();
  // the page is in the URL (?offset=N), so that Back returns to it
  const offset = Math.max(0, Number(new URLSearchParams(useSearch()).get('offset')) || 0);
  const { data, error, loading } = useAsync(() => listSessions(offset, PAGE_SIZE), [offset]);
  const [creating, setCreating] = useState(false);
  const [createError, setCreateError] = useState<string | undefined>(undefined);

  const newConversation = async () => {
    setCreating(true);
    setCreateError(undefined);
    try {
      const session = await createSession();
      navigate(`/c/${encodeURIComponent(sessionIdOf(session))}`);
    } catch (err) {
      setCreateError((err as Error).message);
      setCreating(false);
    }
  };

  const sessions = data?.sessions ?? [];
  const total = data?.total;
  const hasNext = total !== undefined ? offset + sessions.length < total : sessions.length === PAGE_SIZE;
  const goTo = (next: number) => navigate(next > 0 ? `/?offset=${next}` : '/');

  return (
    <section aria-labelledby="conversations-title">
      <div class="page-head">
        <h1 id="conversations-title">Conversations</h1>
        <button type="button" data-testid="new-conversation" onClick={newConversation} disabled={creating}>
          {creating ? 'Creating…' : 'New conversation'}
        </button>
      </div>
      {createError && (
        <p class="error" role="alert">
          Could not create a conversation: {createError}
        </p>
      )}
      <LoadStatus loading={loading} error={error} what="the conversations" />
      {data && sessions.length === 0 && <p>No conversations yet: start one with “New conversation”.</p>}
      {sessions.length > 0 && (
        <ul class="session-list">
          {sessions.map((s) => {
            const id = sessionIdOf(s);
            return (
              <li key={id}>
                <Link href={`/c/${encodeURIComponent(id)}`} data-testid="session-link" class="session-link">
                  <span class="session-title">{s.title || id}</span>
                  <span class="muted">
                    {s.message_count ?? 0} messages · {s.current_agent ?? 'no agent yet'} · last activity {formatTime(s.last_activity)}
                    {s.is_active === false ? ' · idle' : ''}
                  </span>
                </Link>
              </li>
            );
          })}
        </ul>
      )}
      <nav class="pager" aria-label="Pages of conversations">
        <button type="button" class="secondary" disabled={offset === 0 || loading} onClick={() => goTo(Math.max(0, offset - PAGE_SIZE))}>
          Previous
        </button>
        <span class="muted">
          {sessions.length > 0 ? `${offset + 1}–${offset + sessions.length}` : '0'}
          {total !== undefined ? ` of ${total}` : ''}
        </span>
        <button type="button" class="secondary" disabled={!hasNext || loading} onClick={() => goTo(offset + PAGE_SIZE)}>
          Next
        </button>
      </nav>
    </section>
  );
}
