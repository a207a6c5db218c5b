/**
 * Reports the usage ledger to Stripe Billing Meters (v1 `billing/meter_events`). Each entry
 * goes with its ledger key as the meter event's `identifier`, so a report repeated after a
 * crash, a lost answer or a retry is deduplicated by Stripe and bills once. Calls for one
 * customer and meter go one at a time (STRIPE.md: concurrent calls for the same customer and
 * meter are refused), other pairs side by side. Throttling and server errors are retried with
 * full-jitter backoff; an entry that keeps failing stays in the ledger, is tried on every run,
 * and is flagged once with an Event: never dropped.
 *
 * Only the latest revision of a bucket is reported (billing/usage-corrections.ts). A revision
 * replacing an entry whose meter event Stripe took less than a day ago cancels that event
 * first (a meter event adjustment) and is then sent under its own identifier; one replacing an
 * older or credited entry is settled by a customer balance transaction of the difference, as
 * Stripe can no longer cancel the event.
 */
import type { Pool } from 'pg';
import type Stripe from 'stripe';
import { latestRevision, METERS, type Meter } from './metering.ts';
import { settlementCurrencyOf, settlementMinorOf } from './usage-corrections.ts';

/** A Stripe meter event as `stripe.billing.meterEvents.create` takes it. */
export interface MeterEvent {
  event_name: string;
  identifier: string;
  /** Unix seconds. */
  timestamp: number;
  payload: { stripe_customer_id: string; value: string };
}

/** Where meter events go: Stripe's client in production. */
export type MeterEventSink = (event: MeterEvent) => Promise<unknown>;

/** A meter event cancellation as `stripe.billing.meterEventAdjustments.create` takes it. */
export interface MeterEventCancel {
  event_name: string;
  type: 'cancel';
  cancel: { identifier: string };
}

/** Where cancellations go; the idempotency key makes a retried cancel one cancel. */
export type MeterEventAdjustmentSink = (
  adjustment: MeterEventCancel,
  options: { idempotencyKey: string },
) => Promise<unknown>;

/** A customer balance transaction as `stripe.customers.createBalanceTransaction` takes it. */
export interface BalanceTransaction {
  /** Minor units; negative is a credit to the customer. */
  amount: number;
  currency: string;
  description: string;
  metadata: Record<string, string>;
}

/** Where balance transactions go; the idempotency key makes a retried one a single one. */
export type BalanceTransactionSink = (
  customer: string,
  transaction: BalanceTransaction,
  options: { idempotencyKey: string },
) => Promise<unknown>;

/** The three ways the reporter reaches Stripe, on the real client (no retries of its own: the reporter retries). */
export function makeStripeUsageSinks(stripe: Stripe): {
  sink: MeterEventSink;
  adjust: MeterEventAdjustmentSink;
  credit: BalanceTransactionSink;
} {
  return {
    sink: (event) => stripe.billing.meterEvents.create(event),
    adjust: (adjustment, options) => stripe.billing.meterEventAdjustments.create(adjustment, options),
    credit: (customer, transaction, options) =>
      stripe.customers.createBalanceTransaction(customer, transaction, options),
  };
}

export interface ReportDeps {
  pool: Pick<Pool, 'query'>;
  sink: MeterEventSink;
  adjust: MeterEventAdjustmentSink;
  credit: BalanceTransactionSink;
  /** Waits between tries; tests pass one that does not wait. */
  sleep?: (ms: number) => Promise<void>;
  now?: () => Date;
}

/** Tries per entry per run, and runs after which a failing entry is flagged. */
const TRIES = 4;
export const FLAG_AFTER_ATTEMPTS = 5;
/** Customer-and-meter pairs reported side by side. */
const PARALLEL_PAIRS = 4;
const BACKOFF_MS = 500;
/**
 * Stripe cancels a meter event only within 24 h of receiving it; an hour is kept in hand for
 * the time between its answer and our `reportedAt`, queueing and clock skew, since a cancel
 * refused as too late would leave the entry failing until flagged.
 */
export const CANCEL_WINDOW_MS = 23 * 3_600_000;

const statusOf = (error: unknown) => (error as { statusCode?: number }).statusCode;

/** 429, 5xx and answers lost on the way are worth another try; a refusal (4xx) is not. */
function retryable(error: unknown): boolean {
  const status = statusOf(error);
  return status === undefined || status === 429 || status >= 500;
}

const defaultSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

interface Row {
  id: string;
  instanceId: string;
  meter: string;
  quantity: string;
  occurredAt: Date;
  key: string;
  customer: string;
  attempts: number;
  revision: number;
}

/**
 * Reports up to `limit` unreported entries of metered usage whose organization has a Stripe
 * customer, oldest first, and records each outcome. Run as a single job (one reporter at a
 * time); safe to run again at any point.
 */
export async function reportUsage(
  deps: ReportDeps,
  options: { limit?: number } = {},
): Promise<{ reported: number; failed: number; flagged: number }> {
  const sleep = deps.sleep ?? defaultSleep;
  const now = deps.now?.() ?? new Date();
  const { rows } = await deps.pool.query<Row>(
    `select e.id::text, e."instanceId", e.meter, e.quantity::text, e."occurredAt", e."idempotencyKey" as key,
            o."stripeCustomerId" as customer, e."reportAttempts" as attempts, e.revision
       from "UsageEvent" e join "Instance" i on i.id = e."instanceId" join "Organization" o on o.id = i."organizationId"
      where e."reportedAt" is null and e.meter = any($1::text[]) and o."stripeCustomerId" is not null
        and (e."occurredAt" > $2::timestamptz - interval '35 days' or e.revision > 0)
        and ${latestRevision('e')}
      order by e.id limit $3`,
    [Object.keys(METERS), now, options.limit ?? 10_000],
  );
  const pairs = new Map<string, Row[]>();
  for (const row of rows) {
    const pair = `${row.customer}\u0000${row.meter}`;
    pairs.set(pair, [...(pairs.get(pair) ?? []), row]);
  }
  const result = { reported: 0, failed: 0, flagged: 0 };
  const queue = [...pairs.values()];
  const reportPairs = async () => {
    for (let entries = queue.shift(); entries; entries = queue.shift()) {
      for (const row of entries) {
        const outcome = await reportOne(deps, row, now, sleep);
        result[outcome]++;
        if (outcome === 'failed' && row.attempts + 1 === FLAG_AFTER_ATTEMPTS) result.flagged++;
      }
    }
  };
  await Promise.all(Array.from({ length: PARALLEL_PAIRS }, reportPairs));
  return result;
}

/** The entry of the bucket Stripe currently bills for, which a revision replaces. */
interface Billed {
  key: string;
  quantity: string;
  reportedAt: Date;
  creditedAt: Date | null;
}

/**
 * The latest earlier revision of `row`'s bucket that Stripe bills (reported, by a meter event
 * or a balance transaction, and not cancelled); none when nothing of the bucket reached Stripe.
 */
async function findBilled(pool: Pick<Pool, 'query'>, row: Row): Promise<Billed | null> {
  const { rows } = await pool.query<Billed>(
    `select "idempotencyKey" as key, quantity::text, "reportedAt", "creditedAt" from "UsageEvent"
      where "instanceId" = $1::uuid and meter = $2 and "occurredAt" = $3::timestamptz and revision < $4::int
        and "reportedAt" is not null and "cancelledAt" is null
      order by revision desc limit 1`,
    [row.instanceId, row.meter, row.occurredAt, row.revision],
  );
  return rows[0] ?? null;
}

async function sendMeterEvent(deps: ReportDeps, row: Row): Promise<void> {
  await deps.sink({
    event_name: row.meter,
    identifier: row.key,
    timestamp: Math.floor(row.occurredAt.getTime() / 1000),
    payload: { stripe_customer_id: row.customer, value: row.quantity },
  });
  await deps.pool.query(
    `update "UsageEvent" set "reportedAt" = now(), "reportError" = null where id = $1::bigint`,
    [row.id],
  );
}

/** Cancels `billed`'s meter event at Stripe and marks it cancelled; safe to repeat (idempotency key). */
async function cancelMeterEvent(deps: ReportDeps, row: Row, billed: Billed): Promise<void> {
  await deps.adjust(
    { event_name: row.meter, type: 'cancel', cancel: { identifier: billed.key } },
    { idempotencyKey: `usage-cancel:${billed.key}` },
  );
  await deps.pool.query(
    `update "UsageEvent" set "cancelledAt" = now() where "idempotencyKey" = $1 and "cancelledAt" is null`,
    [billed.key],
  );
}

/** Settles `row` against `billed` by a balance transaction of the difference, once (idempotency key). */
async function settleByBalance(deps: ReportDeps, row: Row, billed: Billed): Promise<void> {
  const meter = row.meter as Meter;
  const amount = settlementMinorOf(meter, Number(row.quantity) - Number(billed.quantity));
  // Stripe refuses a zero amount; a difference worth less than half a minor unit settles nothing.
  if (amount !== 0) {
    await deps.credit(
      row.customer,
      {
        amount,
        currency: settlementCurrencyOf(meter),
        description: `Usage correction ${row.key}: ${billed.quantity} -> ${row.quantity} ${meter}`,
        metadata: { usage_key: row.key, supersedes: billed.key },
      },
      { idempotencyKey: `usage-credit:${row.key}` },
    );
  }
  await deps.pool.query(
    `update "UsageEvent" set "reportedAt" = now(), "creditedAt" = now(), "creditMinor" = $2::int, "reportError" = null
      where id = $1::bigint`,
    [row.id, amount],
  );
}

/**
 * Brings Stripe to `row`'s quantity. Each step is recorded as it lands and decided again from
 * the ledger on every try, so a crash or retry between the cancel and the new event resumes.
 */
async function settle(deps: ReportDeps, row: Row, now: Date): Promise<void> {
  const billed = row.revision > 0 ? await findBilled(deps.pool, row) : null;
  if (!billed) return sendMeterEvent(deps, row);
  const cancellable =
    billed.creditedAt === null && now.getTime() - billed.reportedAt.getTime() < CANCEL_WINDOW_MS;
  if (!cancellable) return settleByBalance(deps, row, billed);
  await cancelMeterEvent(deps, row, billed);
  await sendMeterEvent(deps, row);
}

async function reportOne(deps: ReportDeps, row: Row, now: Date, sleep: (ms: number) => Promise<void>) {
  let lastError: unknown;
  for (let attempt = 1; attempt <= TRIES; attempt++) {
    try {
      await settle(deps, row, now);
      return 'reported' as const;
    } catch (error) {
      lastError = error;
      if (!retryable(error) || attempt === TRIES) break;
      await sleep(Math.random() * BACKOFF_MS * 2 ** attempt);
    }
  }
  const message = (lastError instanceof Error ? lastError.message : String(lastError)).slice(0, 500);
  const attempts = row.attempts + 1;
  await deps.pool.query(
    `update "UsageEvent" set "reportAttempts" = $2, "reportError" = $3 where id = $1::bigint`,
    [row.id, attempts, message],
  );
  if (attempts === FLAG_AFTER_ATTEMPTS) {
    await deps.pool.query(
      `insert into "Event" ("instanceId", type, message, data) values ($1::uuid, 'billing.usage_report_failing', $2, $3::jsonb)`,
      [
        row.instanceId,
        `Usage ${row.key} could not be reported to Stripe after ${attempts} runs: ${message}`,
        JSON.stringify({ identifier: row.key, attempts }),
      ],
    );
  }
  return 'failed' as const;
}
