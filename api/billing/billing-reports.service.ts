import { billingReport, type ReportRange } from '../../billing/reports.ts';
import type { ApiDeps, RequestContext } from '../context.ts';
import { assertStaff } from '../policy.ts';
import { dayRange, presentRange } from './day-range.ts';

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
  return dayRange(query, { start: () => monthStart, end: nextMonth });
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
  return { ...presentRange(range), ...report };
}
