import { METERS, type Meter } from '../../billing/metering.ts';
import type { ReportRange } from '../../billing/reports.ts';
import { includedUnits, type PlanLimits } from '../../core/domain/catalog.ts';
import { AppError } from '../../core/errors.ts';
import { DAY_MS, dayRange, isoDay, presentRange } from '../billing/day-range.ts';
import type { ApiDeps, RequestContext } from '../context.ts';
import { assertInstanceRole, assertStaff, MEMBER_ROLES } from '../policy.ts';
import { type DailyTotal, listDailyUsage } from './usage.repository.ts';

/** What one unit of each meter is, for people reading the numbers. */
const UNITS: Record<Meter, string> = {
  storage_gb_hours: 'GB-hours',
  search_hours: 'hours',
  active_users: 'users',
};

type UsageQuery = { from?: string | undefined; to?: string | undefined };

/** The range asked for; by default the 30 days ending today (UTC). */
function usageRange(query: UsageQuery, now: Date): ReportRange {
  const tomorrow = new Date(Date.parse(isoDay(now)) + DAY_MS);
  return dayRange(query, { start: (end) => new Date(end.getTime() - 30 * DAY_MS), end: tomorrow });
}

/** Every meter with every day of the range, 0 where the ledger has nothing; `plan` null fleet-wide. */
function presentUsage(range: ReportRange, totals: DailyTotal[], plan: { limits: PlanLimits } | null) {
  const quantities = new Map(totals.map((total) => [`${total.meter} ${total.date}`, total.quantity]));
  const days: string[] = [];
  for (let at = range.start.getTime(); at < range.end.getTime(); at += DAY_MS)
    days.push(isoDay(new Date(at)));
  const included = plan ? includedUnits(plan.limits) : null;
  return {
    ...presentRange(range),
    limits: plan?.limits ?? null,
    meters: (Object.keys(METERS) as Meter[]).map((meter) => ({
      meter,
      unit: UNITS[meter],
      included: included?.[meter] ?? null,
      days: days.map((date) => ({ date, quantity: quantities.get(`${meter} ${date}`) ?? 0 })),
    })),
  };
}

/** A server's usage a day per meter, with what its plan includes; members and staff. */
export async function getInstanceUsage(
  deps: Pick<ApiDeps, 'db' | 'pool'>,
  ctx: RequestContext,
  instanceId: string,
  query: UsageQuery,
) {
  const instance = await deps.db.instance.findUnique({
    where: { id: instanceId },
    select: { id: true, organizationId: true, plan: { select: { limits: true } } },
  });
  if (!instance) throw new AppError('not_found', `No instance ${instanceId}.`);
  await assertInstanceRole(deps.db, ctx.actor, instance, MEMBER_ROLES);
  const range = usageRange(query, new Date());
  const totals = await listDailyUsage(deps.pool, range, instanceId);
  return presentUsage(range, totals, { limits: instance.plan.limits as unknown as PlanLimits });
}

/** The whole fleet's usage a day per meter (staff). */
export async function getBillingUsage(deps: Pick<ApiDeps, 'pool'>, ctx: RequestContext, query: UsageQuery) {
  assertStaff(ctx.actor);
  const range = usageRange(query, new Date());
  return presentUsage(range, await listDailyUsage(deps.pool, range, null), null);
}
