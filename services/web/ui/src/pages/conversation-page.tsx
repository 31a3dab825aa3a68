/**
 * `/c/:id`: the stored history, then the live conversation over the session's WebSocket (streamed
 * answers, agent switches, tool calls to approve or answer, cancel, connection status).
 */
import { useCallback, useEffect, useReducer, useRef, useState } from 'preact/hooks';
import { Link } from 'wouter-preact';
import { sessionHistory } from '../api/sessions-api.ts';
import { ConnectionStatus } from '../components/connection-status.tsx';
import { MessageComposer } from '../components/message-composer.tsx';
import { TranscriptView } from '../components/transcript-view.tsx';
import { type ConnectionState, ConversationSocket } from '../conversation/conversation-socket.ts';
import type { ClientFrame } from '../conversation/frames.ts';
import { emptyTranscript, transcriptReducer } from '../conversation/transcript.ts';

const NOT_CONNECTED = 'Not sent: the conversation is not connected. Try again once it is.';

export function ConversationPage({ id }: { id: string }) {
  const [transcript, dispatch] = useReducer(transcriptReducer, emptyTranscript);
  const [connection, setConnection] = useState<{ state: ConnectionState; detail?: string | undefined }>({ state: 'connecting' });
  const [loadError, setLoadError] = useState<string | undefined>(undefined);
  const [cancelling, setCancelling] = useState(false);
  const socket = useRef<ConversationSocket | undefined>(undefined);

  useEffect(() => {
    let left = false;
    const conversation = new ConversationSocket(id, {
      onFrame: (frame) => {
        if (frame.type === 'cancel_ack' || (frame.type === 'error' && frame.code === 'GW_ERR_NOTHING_TO_CANCEL')) setCancelling(false);
        dispatch({ type: 'frame', frame });
      },
      onState: (state, detail) => !left && setConnection({ state, detail }),
    });
    socket.current = conversation;
    setLoadError(undefined);
    // the history first, so that the live frames come after it
    sessionHistory(id).then(
      (history) => {
        if (left) return;
        dispatch({ type: 'history', history });
        conversation.start();
      },
      (err: unknown) => {
        if (left) return;
        setLoadError((err as Error).message);
        setConnection({ state: 'closed' });
      },
    );
    return () => {
      left = true;
      conversation.stop();
      socket.current = undefined;
    };
  }, [id]);

  useEffect(() => {
    if (!transcript.running) setCancelling(false);
  }, [transcript.running]);

  const connected = connection.state === 'open';
  const send = useCallback((frame: ClientFrame) => socket.current?.send(frame) ?? false, []);

  const onSend = useCallback(
    (text: string) => {
      if (!send({ type: 'user_message', content: text })) {
        dispatch({ type: 'send_failed', text: NOT_CONNECTED });
        return false;
      }
      dispatch({ type: 'user_sent', text });
      return true;
    },
    [send],
  );

  const onToolAnswer = useCallback(
    (frame: ClientFrame, outcome: string) => {
      if (frame.type !== 'tool_result' && frame.type !== 'hitl_decision') return false;
      if (!send(frame)) return false;
      dispatch({ type: 'tool_answered', callId: frame.call_id, outcome });
      return true;
    },
    [send],
  );

  const onCancel = useCallback(() => {
    if (send({ type: 'cancel' })) setCancelling(true);
  }, [send]);

  return (
    <section class="conversation" aria-labelledby="conversation-title">
      <header class="conversation-head">
        <h1 id="conversation-title">
          Conversation <code class="session-id">{id}</code>
        </h1>
        <p class="meta">
          <span>
            Agent: <strong data-testid="current-agent">{transcript.agent ?? 'not chosen yet'}</strong>
          </span>
          <ConnectionStatus state={connection.state} detail={connection.detail} />
          {transcript.running && <span class="muted">{cancelling ? 'cancelling…' : 'assistant is answering…'}</span>}
        </p>
      </header>
      {loadError ? (
        <div class="error" role="alert">
          <p>Could not open this conversation: {loadError}</p>
          <p>
            <Link href="/">Back to the conversations</Link>
          </p>
        </div>
      ) : (
        <>
          <TranscriptView items={transcript.items} running={transcript.running} connected={connected} onToolAnswer={onToolAnswer} />
          <MessageComposer onSend={onSend} onCancel={onCancel} running={transcript.running} connected={connected} />
        </>
      )}
    </section>
  );
}
