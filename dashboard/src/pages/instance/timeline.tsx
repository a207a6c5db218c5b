/**
 * The live timeline of a server: its operations with each step's outcome, duration and
 * error, and its events as they happen. The events arrive by Server-Sent Events; each one
 * also refreshes the operations, so a running step turns into a finished one on screen.
 */
import { useEffect, useRef, useState } from 'react';
import type { Schemas } from '../../api.ts';
import { formatDateTime, formatDuration, humanize } from '../../ui/format.ts';
import { StatusBadge } from '../../ui/status.tsx';

type Event = Schemas['Event'];
type Operation = Schemas['Operation'];

export type StreamState = 'connecting' | 'live' | 'reconnecting';

/**
 * Reads an event stream with fetch: the stream names each message by its type
 * (`event: instance.running`), which EventSource only delivers to listeners of known names.
 * Resolves when the stream ends; `onMessage` gets each message's id and data.
 */
async function readStream(
  url: string,
  signal: AbortSignal,
  onOpen: () => void,
  onMessage: (id: string | undefined, data: string) => void,
): Promise<void> {
  const response = await fetch(url, {
    credentials: 'same-origin',
    signal,
    headers: { accept: 'text/event-stream' },
  });
  if (!response.ok || !response.body) throw new Error(`the event stream answered ${response.status}`);
  onOpen();
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return;
    buffer += value;
    const messages = buffer.split('\n\n');
    buffer = messages.pop() ?? '';
    for (const message of messages) {
      let id: string | undefined;
      const data: string[] = [];
      for (const line of message.split('\n')) {
        if (line.startsWith('id: ')) id = line.slice(4);
        else if (line.startsWith('data: ')) data.push(line.slice(6));
      }
      if (data.length > 0) onMessage(id, data.join('\n'));
    }
  }
}

/**
 * Follows the server's event stream from after the last event already shown (`after`;
 * undefined until the page has loaded them). `onEvent` runs for each new one. A dropped
 * stream is resumed from the last id seen, after a pause that grows to 10 s.
 */
export function useEventStream(
  instanceId: string,
  after: string | undefined,
  onEvent: (event: Event) => void,
) {
  const [state, setState] = useState<StreamState>('connecting');
  const handler = useRef(onEvent);
  handler.current = onEvent;
  const started = after !== undefined;
  // biome-ignore lint/correctness/useExhaustiveDependencies: the stream starts once, after the first load
  useEffect(() => {
    if (!started) return;
    const abort = new AbortController();
    let last = after;
    let pause = 500;
    const follow = async () => {
      while (!abort.signal.aborted) {
        const query = last ? `?after=${encodeURIComponent(last)}` : '';
        try {
          await readStream(
            `/v1/instances/${encodeURIComponent(instanceId)}/events${query}`,
            abort.signal,
            () => {
              setState('live');
              pause = 500;
            },
            (id, data) => {
              if (id) last = id;
              handler.current(JSON.parse(data) as Event);
            },
          );
        } catch {
          // Dropped or refused: try again below, unless the page is gone.
        }
        if (abort.signal.aborted) return;
        setState('reconnecting');
        await new Promise((resume) => window.setTimeout(resume, pause));
        pause = Math.min(pause * 2, 10_000);
      }
    };
    follow();
    return () => abort.abort();
  }, [instanceId, started]);
  return state;
}

const OUTCOME_MARK: Record<string, string> = { succeeded: '✓', failed: '✗', running: '…', skipped: '–' };

function Steps({ steps }: { steps: Operation['steps'] }) {
  return (
    <ol className="timeline">
      {steps.map((step) => (
        <li key={`${step.name}-${step.attempt}-${step.startedAt}`}>
          <span aria-hidden="true" className={`mark mark-${step.outcome}`}>
            {OUTCOME_MARK[step.outcome] ?? '·'}
          </span>
          <span>
            {humanize(step.name)}
            {step.attempt > 1 ? <span className="muted"> (attempt {step.attempt})</span> : null}
            <span className="visually-hidden">: {step.outcome}</span>
            {step.detail ? <span className="muted"> — {step.detail}</span> : null}
          </span>
          <span className="muted">
            {step.outcome === 'running' ? 'running' : formatDuration(step.durationMs)}
          </span>
          {step.error ? <span className="error">{step.error}</span> : null}
        </li>
      ))}
    </ol>
  );
}

export function Operations({ operations }: { operations: Operation[] }) {
  if (operations.length === 0) return <p className="muted">No operation yet.</p>;
  return (
    <div className="operations">
      {[...operations].reverse().map((operation) => (
        <article key={operation.id} className="operation" aria-label={`${operation.kind} operation`}>
          <header>
            <strong>{humanize(operation.kind)}</strong> <StatusBadge status={operation.status} />
            <span className="muted">
              {' '}
              started {formatDateTime(operation.startedAt)}
              {operation.durationMs !== null ? `, took ${formatDuration(operation.durationMs)}` : ''}
            </span>
          </header>
          {operation.status === 'running' ? <progress aria-label={`${operation.kind} in progress`} /> : null}
          <Steps steps={operation.steps} />
          {operation.error ? (
            <p className="field-error" role="alert">
              {operation.error}
            </p>
          ) : null}
        </article>
      ))}
    </div>
  );
}

export function Events({ events }: { events: Event[] }) {
  if (events.length === 0) return <p className="muted">No event yet.</p>;
  return (
    <ol className="events" aria-live="polite" aria-relevant="additions">
      {[...events]
        .reverse()
        .slice(0, 50)
        .map((event) => (
          <li key={event.id}>
            <time dateTime={event.createdAt} className="muted">
              {formatDateTime(event.createdAt)}
            </time>{' '}
            <code>{event.type}</code> {event.message}
          </li>
        ))}
    </ol>
  );
}
