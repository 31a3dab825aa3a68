/** The message box: Enter sends, Shift+Enter makes a new line; Cancel stops the running turn. */
import { useId, useState } from 'preact/hooks';

interface MessageComposerProps {
  /** Sends the message; false when it could not be sent (the text is kept). */
  onSend: (text: string) => boolean;
  onCancel: () => void;
  running: boolean;
  connected: boolean;
}

export function MessageComposer({ onSend, onCancel, running, connected }: MessageComposerProps) {
  const [text, setText] = useState('');
  const inputId = useId();
  const hintId = useId();

  const send = () => {
    const content = text.trim();
    if (!content || !connected) return;
    if (onSend(content)) setText('');
  };

  const onKeyDown = (event: KeyboardEvent) => {
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      send();
    }
  };

  return (
    <form
      class="composer"
      onSubmit={(e) => {
        e.preventDefault();
        send();
      }}
    >
      <label for={inputId}>Message</label>
      <textarea
        id={inputId}
        rows={3}
        data-testid="message-input"
        aria-describedby={hintId}
        value={text}
        onInput={(e) => setText(e.currentTarget.value)}
        onKeyDown={onKeyDown}
      />
      <p id={hintId} class="muted hint">
        Enter sends, Shift+Enter starts a new line.
      </p>
      <div class="button-row">
        <button type="submit" data-testid="send" disabled={!connected || !text.trim()}>
          Send
        </button>
        {running && (
          <button type="button" class="danger" data-testid="cancel" onClick={onCancel} disabled={!connected}>
            Cancel
          </button>
        )}
      </div>
    </form>
  );
}
