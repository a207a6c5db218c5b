import { humanize } from './format.ts';

const TONE: Record<string, string> = {
  running: 'good',
  succeeded: 'good',
  paid: 'good',
  active: 'good',
  completed: 'good',
  provisioning: 'busy',
  updating: 'busy',
  pending: 'busy',
  pending_payment: 'wait',
  suspended: 'warn',
  past_due: 'warn',
  deleting: 'warn',
  failed: 'bad',
  deleted: 'mute',
  cancelled: 'mute',
  canceled: 'mute',
};

/** A status as a coloured word; the word carries the meaning, colour only helps. */
export function StatusBadge({ status }: { status: string }) {
  return <span className={`badge tone-${TONE[status] ?? 'mute'}`}>{humanize(status)}</span>;
}
