/**
 * A tool call of the assistant. One that needs approval offers Approve, Edit arguments (JSON,
 * checked before sending) and Reject with feedback; one without (an IDE would run the tool) offers
 * a form to answer by hand with a result or an error.
 */
import { useId, useState } from 'preact/hooks';
import type { ClientFrame } from '../conversation/frames.ts';
import type { TranscriptItem } from '../conversation/transcript.ts';

type ToolItem = Extract<TranscriptItem, { kind: 'tool' }>;

interface ToolCardProps {
  item: ToolItem;
  /** Sends the answer; false when it could not be sent (not connected). */
  onAnswer: (frame: ClientFrame, outcome: string) => boolean;
  connected: boolean;
}

const STATE_LABELS = {
  awaiting_decision: 'waiting for your approval',
  awaiting_result: 'waiting for a result',
  answered: 'answered',
  done: 'done',
} as const;

export function ToolCard({ item, onAnswer, connected }: ToolCardProps) {
  const headingId = useId();
  return (
    <article class={`tool-card tool-${item.state}`} data-testid="tool-card" data-call-id={item.callId} aria-labelledby={headingId}>
      <header>
        <h2 id={headingId}>
          Tool call <code>{item.toolName}</code>
        </h2>
        <span class="badge">{STATE_LABELS[item.state]}</span>
      </header>
      <pre class="json">{JSON.stringify(item.args, null, 2)}</pre>
      {item.outcome !== undefined && <p class="outcome">{item.outcome}</p>}
      {item.state === 'awaiting_decision' && <ApprovalForm item={item} onAnswer={onAnswer} connected={connected} />}
      {item.state === 'awaiting_result' && <ResultForm item={item} onAnswer={onAnswer} connected={connected} />}
    </article>
  );
}

function ApprovalForm({ item, onAnswer, connected }: ToolCardProps) {
  const [mode, setMode] = useState<'choose' | 'edit' | 'reject'>('choose');
  const [argsText, setArgsText] = useState(() => JSON.stringify(item.args, null, 2));
  const [feedback, setFeedback] = useState('');
  const [problem, setProblem] = useState<string | undefined>(undefined);
  const argsId = useId();
  const feedbackId = useId();
  const problemId = useId();

  const send = (frame: ClientFrame, outcome: string) => {
    if (!onAnswer(frame, outcome)) setProblem('Not connected: try again once the connection is back.');
  };

  const submit = (event: Event) => {
    event.preventDefault();
    setProblem(undefined);
    if (mode === 'edit') {
      let parsed: unknown;
      try {
        parsed = JSON.parse(argsText);
      } catch (err) {
        setProblem(`The arguments are not valid JSON: ${(err as Error).message}`);
        return;
      }
      if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) {
        setProblem('The arguments must be a JSON object ({ … }).');
        return;
      }
      const modified = parsed as Record<string, unknown>;
      send(
        { type: 'hitl_decision', call_id: item.callId, decision: 'edit', modified_arguments: modified },
        'Approved with edited arguments.',
      );
    } else if (mode === 'reject') {
      const text = feedback.trim();
      send(
        { type: 'hitl_decision', call_id: item.callId, decision: 'reject', ...(text && { feedback: text }) },
        text ? `Rejected: ${text}` : 'Rejected.',
      );
    }
  };

  return (
    <form class="tool-actions" onSubmit={submit}>
      <div class="button-row">
        <button
          type="button"
          data-testid="approve"
          disabled={!connected}
          onClick={() => send({ type: 'hitl_decision', call_id: item.callId, decision: 'approve' }, 'Approved.')}
        >
          Approve
        </button>
        <button type="button" class="secondary" data-testid="edit" aria-expanded={mode === 'edit'} onClick={() => setMode('edit')}>
          Edit arguments
        </button>
        <button type="button" class="danger" data-testid="reject" aria-expanded={mode === 'reject'} onClick={() => setMode('reject')}>
          Reject
        </button>
      </div>
      {mode === 'edit' && (
        <div class="field">
          <label for={argsId}>Arguments (a JSON object)</label>
          <textarea
            id={argsId}
            rows={6}
            spellcheck={false}
            data-testid="edit-arguments"
            value={argsText}
            aria-invalid={problem ? true : undefined}
            aria-describedby={problem ? problemId : undefined}
            onInput={(e) => setArgsText(e.currentTarget.value)}
          />
        </div>
      )}
      {mode === 'reject' && (
        <div class="field">
          <label for={feedbackId}>Feedback for the assistant (why, what to do instead)</label>
          <textarea
            id={feedbackId}
            rows={3}
            data-testid="reject-feedback"
            value={feedback}
            onInput={(e) => setFeedback(e.currentTarget.value)}
          />
        </div>
      )}
      {mode !== 'choose' && (
        <div class="button-row">
          <button type="submit" data-testid="decision-submit" disabled={!connected}>
            {mode === 'edit' ? 'Approve with these arguments' : 'Send rejection'}
          </button>
          <button
            type="button"
            class="secondary"
            onClick={() => {
              setMode('choose');
              setProblem(undefined);
            }}
          >
            Back
          </button>
        </div>
      )}
      {problem && (
        <p class="error" role="alert" id={problemId}>
          {problem}
        </p>
      )}
    </form>
  );
}

function ResultForm({ item, onAnswer, connected }: ToolCardProps) {
  const [text, setText] = useState('');
  const [isError, setIsError] = useState(false);
  const [problem, setProblem] = useState<string | undefined>(undefined);
  const resultId = useId();
  const errorId = useId();

  const submit = (event: Event) => {
    event.preventDefault();
    const frame: ClientFrame = isError
      ? { type: 'tool_result', call_id: item.callId, error: text || 'failed' }
      : { type: 'tool_result', call_id: item.callId, result: text };
    const sent = onAnswer(frame, isError ? `Answered with an error: ${text || 'failed'}` : `Answered: ${text}`);
    setProblem(sent ? undefined : 'Not connected: try again once the connection is back.');
  };

  return (
    <form class="tool-actions" onSubmit={submit}>
      <p class="muted">An IDE would run this tool. Answer it by hand:</p>
      <div class="field">
        <label for={resultId}>Tool output</label>
        <textarea id={resultId} rows={3} data-testid="tool-result-input" value={text} onInput={(e) => setText(e.currentTarget.value)} />
      </div>
      <div class="check">
        <input id={errorId} type="checkbox" checked={isError} onChange={(e) => setIsError(e.currentTarget.checked)} />
        <label for={errorId}>Send it as an error (the tool failed)</label>
      </div>
      <button type="submit" data-testid="tool-result-submit" disabled={!connected}>
        Send {isError ? 'error' : 'result'}
      </button>
      {problem && (
        <p class="error" role="alert">
          {problem}
        </p>
      )}
    </form>
  );
}
