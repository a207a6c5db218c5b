import { billingReport, type ReportRange } from '../../billing/reports.ts';
import { AppError } from '../../core/errors.ts';
import type { ApiDeps, RequestContext } from '../context.ts';
import { assertStaff } from '../policy.ts';

const DAY_MS = 86_400_000;
/** A longer range is a query over years of invoices for a dashboard tile: refused. */
const MAX_RANGE_DAYS = 366;

const isoDay = (date: Date) => date.toISOString().slice(0, 10);

/**
 * The report's range from `from` and `to` (whole UTC days, both included; the schema checked
 * they are dates): by default the current calendar month.
 */
export function reportRange(
  query: { from?: string | undefined; to?: string | undefined },
  now: Date,
): ReportRange {
  const monthStart = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1));
  const nextMonth = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1));
  const start = query.from ? new Date(`${query.from}T00:00:00Z`) : monthStart;
  const end = query.to ? new Date(new Date(`${query.to}T00:00:00Z`).getTime() + DAY_MS) : nextMonth;
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

/** The ops billing report (staff). */
export async function getBillingReport(
  deps: Pick<ApiDeps, 'db'>,
  ctx: RequestContext,
  query: { from?: string | undefined; to?: string | undefined },
) {
  assertStaff(ctx.actor);
  const range = reportRange(query, new Date());
  const report = await billingReport(deps.db, range);
  return { from: isoDay(range.start), to: isoDay(new Date(range.end.getTime() - DAY_MS)), ...report };
}
