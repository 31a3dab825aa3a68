/** The conversation socket's state in a few words (a status region: changes are announced). */
import type { ConnectionState } from '../conversation/conversation-socket.ts';

const LABELS: Record<ConnectionState, string> = {
  connecting: 'connecting…',
  open: 'connected',
  reconnecting: 'reconnecting…',
  closed: 'disconnected',
  refused: 'refused',
};

export function ConnectionStatus({ state, detail }: { state: ConnectionState; detail: string | undefined }) {
  return (
    <span class={`status status-${state}`} role="status" data-testid="connection-status" data-state={state}>
      {LABELS[state]}
      {detail && state !== 'open' ? <span class="muted"> ({detail})</span> : null}
    </span>
  );
}
