import type { ReportRange } from '../../billing/reports.ts';
import { AppError } from '../../core/errors.ts';

export const DAY_MS = 86_400_000;
/** A longer range is a query over years of rows for a dashboard tile: refused. */
const MAX_RANGE_DAYS = 366;

/** The UTC date of `date`, as `YYYY-MM-DD`. */
export const isoDay = (date: Date) => date.toISOString().slice(0, 10);

/** `YYYY-MM-DD` (the schema checked it is a date) as the start of that UTC day. */
const startOfDay = (day: string) => new Date(`${day}T00:00:00Z`);

/**
 * A range of whole UTC days from the query's `from` and `to` (both included), as `start`
 * (included) and `end` (excluded). Without `to` the range ends at `defaults.end`; without
 * `from` it starts at `defaults.start(end)`. One that ends before it starts, or is longer than
 * 366 days, is `unprocessable`.
 */
export function dayRange(
  query: { from?: string | undefined; to?: string | undefined },
  defaults: { start: (end: Date) => Date; end: Date },
): ReportRange {
  const end = query.to ? new Date(startOfDay(query.to).getTime() + DAY_MS) : defaults.end;
  const start = query.from ? startOfDay(query.from) : defaults.start(end);
  if (end <= start) {
    throw new AppError(
      'unprocessable',
      `The range ends (${isoDay(new Date(end.getTime() - DAY_MS))}) before it starts (${isoDay(start)}).`,
      {
        errors: [{ field: 'to', message: 'Must be the same day as from or later.' }],
      },
    );
  }
  if (end.getTime() - start.getTime() > MAX_RANGE_DAYS * DAY_MS) {
    throw new AppError('unprocessable', `Ask for at most ${MAX_RANGE_DAYS} days at a time.`, {
      errors: [{ field: 'to', message: `At most ${MAX_RANGE_DAYS} days after from.` }],
    });
  }
  return { start, end };
}

/** The range as the API answers it: its first and last day. */
export const presentRange = (range: ReportRange) => ({
  from: isoDay(range.start),
  to: isoDay(new Date(range.end.getTime() - DAY_MS)),
});
