/**
 * The conversation as a list: messages, agent switches, tool call cards and errors. A polite live
 * region, busy while a turn streams, so that a screen reader reads the answer once it is complete
 * rather than token by token.
 */
import { useEffect, useRef } from 'preact/hooks';
import type { ClientFrame } from '../conversation/frames.ts';
import type { TranscriptItem } from '../conversation/transcript.ts';
import { ToolCard } from './tool-card.tsx';

interface TranscriptViewProps {
  items: TranscriptItem[];
  running: boolean;
  connected: boolean;
  onToolAnswer: (frame: ClientFrame, outcome: string) => boolean;
}

export function TranscriptView({ items, running, connected, onToolAnswer }: TranscriptViewProps) {
  const end = useRef<HTMLLIElement>(null);
  const last = items.at(-1);
  const lastLength = last?.kind === 'assistant' ? last.text.length : 0;
  // follow the conversation as it grows
  useEffect(() => end.current?.scrollIntoView({ block: 'nearest' }), [items.length, lastLength]);

  return (
    <ol class="transcript" data-testid="transcript" aria-live="polite" aria-busy={running} aria-label="Conversation">
      {items.length === 0 && <li class="muted">No messages yet. Say something below.</li>}
      {items.map((item) => (
        <li key={item.key} class={`entry entry-${item.kind}`}>
          <Entry item={item} connected={connected} onToolAnswer={onToolAnswer} />
        </li>
      ))}
      <li ref={end} class="end" aria-hidden="true" />
    </ol>
  );
}

function Entry({ item, connected, onToolAnswer }: { item: TranscriptItem } & Omit<TranscriptViewProps, 'items' | 'running'>) {
  switch (item.kind) {
    case 'user':
      return (
        <div class="message user-message">
          <span class="who">You</span>
          <p class="text">{item.text}</p>
        </div>
      );
    case 'assistant':
      return (
        <div class="message assistant">
          <span class="who">
            Assistant
            {item.streaming && <span class="muted"> (writing…)</span>}
            {item.cancelled && <span class="muted"> (cancelled)</span>}
            {item.replayed && <span class="muted"> (earlier turn)</span>}
          </span>
          <p class="text" data-testid="assistant-message" data-streaming={item.streaming ? 'true' : 'false'}>
            {item.text}
          </p>
        </div>
      );
    case 'agent_switch':
      return (
        <p class="agent-switch">
          Agent switched{item.from ? ` from ${item.from}` : ''} to <strong>{item.to}</strong>
          {item.reason ? `: ${item.reason}` : ''}
        </p>
      );
    case 'tool':
      return <ToolCard item={item} connected={connected} onAnswer={onToolAnswer} />;
    case 'notice':
      return <p class={item.tone === 'error' ? 'error' : 'muted'}>{item.text}</p>;
  }
}
