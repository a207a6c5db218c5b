/**
 * The drift check: does each Stripe customer's meter hold what the ledger says was sent to it?
 * Per organization with a Stripe customer and per meter, the local figure over the closed
 * hours of the current calendar month is compared with Stripe's meter event summary for the
 * same range; a difference writes a `billing.usage_drift` Event with both figures, nothing is
 * written when they agree, and the same difference is not written twice.
 *
 * The local figure is what Stripe's meter should hold: the entries reported as meter events
 * and not cancelled. A late correction settled by a balance transaction never reaches the
 * meter, so the meter keeps the entry it replaced, and so does this figure. A `last` meter is
 * compared the way Stripe aggregates it: per customer, the value of the latest event.
 */
import type { Task } from 'graphile-worker';
import type { Pool } from 'pg';
import type Stripe from 'stripe';
import type { Logger } from '../core/log.ts';
import { METERS, type Meter } from './metering.ts';

export const USAGE_DRIFT_TASK = 'billing:usage-drift';

const HOUR_MS = 3_600_000;

/** Stripe's view of its meters, as far as the drift check reads it. */
export interface MeterSummaries {
  /** The active meters' ids by event name. */
  meterIds(): Promise<Map<string, string>>;
  /** The meter's aggregated value for `customer` over events timestamped in [start, end). */
  total(meterId: string, query: { customer: string; start: Date; end: Date }): Promise<number>;
}

/** Stripe's meters through the real client (`billing.meters.list`, `listEventSummaries`), every page. */
export function makeStripeMeterSummaries(stripe: Stripe): MeterSummaries {
  const seconds = (at: Date) => Math.floor(at.getTime() / 1000);
  return {
    async meterIds() {
      const ids = new Map<string, string>();
      for await (const meter of stripe.billing.meters.list({ status: 'active', limit: 100 })) {
        ids.set(meter.event_name, meter.id);
      }
      return ids;
    },
    async total(meterId, query) {
      let total = 0;
      const summaries = stripe.billing.meters.listEventSummaries(meterId, {
        customer: query.customer,
        start_time: seconds(query.start),
        end_time: seconds(query.end),
      });
      for await (const summary of summaries) total += summary.aggregated_value;
      return total;
    },
  };
}

export interface DriftDeps {
  pool: Pick<Pool, 'query'>;
  summaries: MeterSummaries;
  log: Logger;
  now?: () => Date;
}

/**
 * The range compared: from the start of the current UTC month to the start of the previous
 * hour, so every hour in it was sampled (a few minutes past the hour) and reported (every
 * 10 minutes) well before, and Stripe, which processes meter events asynchronously, has them.
 */
export function driftRangeOf(now: Date): { start: Date; end: Date } {
  const start = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1));
  const end = new Date(Math.floor(now.getTime() / HOUR_MS) * HOUR_MS - HOUR_MS);
  return { start, end };
}

interface LocalRow {
  customer: string;
  organizationId: string;
  meter: Meter;
  instanceId: string;
  total: string;
  last: string;
  lastAt: Date;
}

/** Per customer and meter: the figure Stripe should hold, and each instance's share of it. */
interface Expected {
  customer: string;
  organizationId: string;
  meter: Meter;
  quantity: number;
  instances: Map<string, number>;
}

async function expectedFigures(pool: Pick<Pool, 'query'>, range: { start: Date; end: Date }) {
  const { rows: customers } = await pool.query<{ customer: string; organizationId: string }>(
    `select "stripeCustomerId" as customer, id as "organizationId" from "Organization"
      where "stripeCustomerId" is not null order by id`,
  );
  const { rows } = await pool.query<LocalRow>(
    `select o."stripeCustomerId" as customer, o.id as "organizationId", e.meter, e."instanceId",
            sum(e.quantity)::text as total,
            (array_agg(e.quantity order by e."occurredAt" desc, e.revision desc))[1]::text as last,
            max(e."occurredAt") as "lastAt"
       from "UsageEvent" e
       join "Instance" i on i.id = e."instanceId"
       join "Organization" o on o.id = i."organizationId"
      where o."stripeCustomerId" is not null and e.meter = any($1::text[])
        and e."occurredAt" >= $2::timestamptz and e."occurredAt" < $3::timestamptz
        and e."reportedAt" is not null and e."cancelledAt" is null and e."creditedAt" is null
      group by o."stripeCustomerId", o.id, e.meter, e."instanceId"`,
    [Object.keys(METERS), range.start, range.end],
  );
  const expected: Expected[] = customers.flatMap(({ customer, organizationId }) =>
    (Object.keys(METERS) as Meter[]).map((meter) => {
      const own = rows.filter((row) => row.customer === customer && row.meter === meter);
      const summed = METERS[meter].aggregate === 'sum';
      const shareOf = (row: LocalRow) => Number(summed ? row.total : row.last);
      const latest = own.reduce<LocalRow | null>(
        (best, row) => (best && best.lastAt >= row.lastAt ? best : row),
        null,
      );
      return {
        customer,
        organizationId,
        meter,
        quantity: summed ? own.reduce((sum, row) => sum + shareOf(row), 0) : latest ? shareOf(latest) : 0,
        instances: new Map(own.map((row) => [row.instanceId, shareOf(row)])),
      };
    }),
  );
  return expected;
}

/**
 * The instances a customer-level difference is written on: the one instance with usage of the
 * meter when there is one (attributed); otherwise each instance with usage of it, or, with
 * none, each of the organization's servers not deleted (not attributable: Stripe sums a
 * customer's servers into one figure).
 */
async function instancesToFlag(pool: Pick<Pool, 'query'>, figure: Expected): Promise<string[]> {
  if (figure.instances.size > 0) return [...figure.instances.keys()];
  const { rows } = await pool.query<{ id: string }>(
    `select id from "Instance" where "organizationId" = $1::uuid and status <> 'deleted' order by id`,
    [figure.organizationId],
  );
  return rows.map((row) => row.id);
}

async function writeDrift(
  pool: Pick<Pool, 'query'>,
  figure: Expected,
  stripeQuantity: number,
  range: { start: Date; end: Date },
): Promise<number> {
  const instanceIds = await instancesToFlag(pool, figure);
  const attributed = instanceIds.length === 1;
  let written = 0;
  for (const instanceId of instanceIds) {
    const data = {
      customer: figure.customer,
      meter: figure.meter,
      periodStart: range.start.toISOString(),
      periodEnd: range.end.toISOString(),
      local: figure.quantity,
      stripe: stripeQuantity,
      instanceLocal: figure.instances.get(instanceId) ?? 0,
      attributed,
    };
    const message =
      `Usage of ${figure.meter} from ${data.periodStart} to ${data.periodEnd}: Stripe holds ${stripeQuantity}, ` +
      `the ledger ${figure.quantity}${attributed ? '' : ` for the whole customer (this server: ${data.instanceLocal})`}`;
    // The same difference (same figures, same range) is written once, however often the check runs.
    const result = await pool.query(
      `insert into "Event" ("instanceId", type, message, data)
       select $1::uuid, 'billing.usage_drift', $2, $3::jsonb
        where not exists (select 1 from "Event" where "instanceId" = $1::uuid and type = 'billing.usage_drift' and data = $3::jsonb)`,
      [instanceId, message, JSON.stringify(data)],
    );
    written += result.rowCount ?? 0;
  }
  return written;
}

/**
 * Compares every customer's meters with the ledger and writes an Event per difference. A
 * meter Stripe does not have, or a summary it does not answer, is logged and counted as
 * failed; the others are still compared.
 */
export async function checkUsageDrift(
  deps: DriftDeps,
): Promise<{ compared: number; drifted: number; events: number; failed: number }> {
  const range = driftRangeOf(deps.now?.() ?? new Date());
  const result = { compared: 0, drifted: 0, events: 0, failed: 0 };
  if (range.end <= range.start) return result;
  const figures = await expectedFigures(deps.pool, range);
  if (figures.length === 0) return result;
  const meterIds = await deps.summaries.meterIds();
  for (const figure of figures) {
    const log = deps.log.child({ customer: figure.customer, meter: figure.meter });
    const meterId = meterIds.get(figure.meter);
    if (!meterId) {
      log.warn('usage drift not checked: Stripe has no active meter for this event name');
      result.failed++;
      continue;
    }
    let stripeQuantity: number;
    try {
      stripeQuantity = await deps.summaries.total(meterId, { customer: figure.customer, ...range });
    } catch (error) {
      log.warn('usage drift not checked', { error: (error as Error).message });
      result.failed++;
      continue;
    }
    result.compared++;
    if (stripeQuantity === figure.quantity) continue;
    result.drifted++;
    result.events += await writeDrift(deps.pool, figure, stripeQuantity, range);
  }
  return result;
}

/** The drift check as a worker job, daily at 02:40 UTC, one run at a time (a job key). */
export function usageDriftTasks(deps: {
  pool: Pick<Pool, 'query'>;
  log: Logger;
  summaries: MeterSummaries;
}): { tasks: Record<string, Task>; crontab: string } {
  return {
    tasks: {
      [USAGE_DRIFT_TASK]: async () => {
        const result = await checkUsageDrift(deps);
        deps.log.info('usage drift checked', result);
      },
    },
    crontab: `40 2 * * * ${USAGE_DRIFT_TASK} ?jobKey=${USAGE_DRIFT_TASK}`,
  };
}
