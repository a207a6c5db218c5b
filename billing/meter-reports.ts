/**
 * Reports the usage ledger to Stripe Billing Meters (v1 `billing/meter_events`). Each entry
 * goes with its ledger key as the meter event's `identifier`, so a report repeated after a
 * crash, a lost answer or a retry is deduplicated by Stripe and bills once. Calls for one
 * customer and meter go one at a time (STRIPE.md: concurrent calls for the same customer and
 * meter are refused), other pairs side by side. Throttling and server errors are retried with
 * full-jitter backoff; an entry that keeps failing stays in the ledger, is tried on every run,
 * and is flagged once with an Event: never dropped.
 */
import type { Pool } from 'pg';
import { METERS } from './metering.ts';

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

export interface ReportDeps {
  pool: Pick<Pool, 'query'>;
  sink: MeterEventSink;
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
            o."stripeCustomerId" as customer, e."reportAttempts" as attempts
       from "UsageEvent" e join "Instance" i on i.id = e."instanceId" join "Organization" o on o.id = i."organizationId"
      where e."reportedAt" is null and e.meter = any($1::text[]) and o."stripeCustomerId" is not null
        and e."occurredAt" > $2::timestamptz - interval '35 days'
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
        const outcome = await reportOne(deps, row, sleep);
        result[outcome]++;
        if (outcome === 'failed' && row.attempts + 1 === FLAG_AFTER_ATTEMPTS) result.flagged++;
      }
    }
  };
  await Promise.all(Array.from({ length: PARALLEL_PAIRS }, reportPairs));
  return result;
}

async function reportOne(deps: ReportDeps, row: Row, sleep: (ms: number) => Promise<void>) {
  const event: MeterEvent = {
    event_name: row.meter,
    identifier: row.key,
    timestamp: Math.floor(row.occurredAt.getTime() / 1000),
    payload: { stripe_customer_id: row.customer, value: row.quantity },
  };
  let lastError: unknown;
  for (let attempt = 1; attempt <= TRIES; attempt++) {
    try {
      await deps.sink(event);
      await deps.pool.query(
        `update "UsageEvent" set "reportedAt" = now(), "reportError" = null where id = $1::bigint`,
        [row.id],
      );
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
