/**
 * The usage ledger: samples of what each server uses, appended to `UsageEvent` under a key
 * derived from (meter, instance, time bucket), so a sample taken or retried any number of times
 * counts once, and the same key is the Stripe meter event's `identifier` (STRIPE.md), so a
 * report retried any number of times bills once. Aggregates per billing period come from the
 * ledger alone.
 */
import type { Pool } from 'pg';
import { execute, type SqlClient } from '../core/db.ts';

/**
 * What Woolly meters, as Stripe meters must be fed: whole numbers, one event per bucket.
 * - `storage_gb_hours`: object storage in whole GB, one sample an hour (summed: GB-hours);
 * - `search_hours`: 1 for each hour the search add-on ran (summed);
 * - `active_users`: Mastodon's monthly active users, one sample a day (the last one counts).
 */
export const METERS = {
  storage_gb_hours: { bucket: 'hour', aggregate: 'sum' },
  search_hours: { bucket: 'hour', aggregate: 'sum' },
  active_users: { bucket: 'day', aggregate: 'last' },
} as const;
export type Meter = keyof typeof METERS;

export interface UsageSample {
  instanceId: string;
  meter: Meter;
  /** A whole number, zero or more. */
  quantity: number;
  /** The start of the sample's bucket (a whole UTC hour or day, as its meter says). */
  bucket: Date;
}

/** Stripe accepts meter events from the past 35 days up to 5 minutes ahead. */
const MAX_AGE_MS = 35 * 86_400_000;
const MAX_AHEAD_MS = 5 * 60_000;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** A sample the ledger refuses, with why; nothing of its batch is written. */
export class InvalidSample extends Error {
  override name = 'InvalidSample';
  readonly retryable = false;
}

/** The ledger key of a sample, and its Stripe meter event identifier: `<meter>:<instance>:<bucket ISO>`. */
export const usageKeyOf = (sample: UsageSample) =>
  `${sample.meter}:${sample.instanceId}:${sample.bucket.toISOString()}`;

/** The bucket `at` falls in for `meter`. */
export function bucketOf(meter: Meter, at: Date): Date {
  const bucket = new Date(at);
  bucket.setUTCMinutes(0, 0, 0);
  if (METERS[meter].bucket === 'day') bucket.setUTCHours(0);
  return bucket;
}

/** The SQL condition "this entry (alias `alias`) is its bucket's latest revision" (corrections). */
export const latestRevision = (alias: string) =>
  `not exists (select 1 from "UsageEvent" later where later.supersedes = ${alias}."idempotencyKey")`;

/**
 * What a sample and a correction of one must both be: a known meter, a whole quantity, zero or
 * more, and a bucket starting a whole UTC hour or day as its meter says. `where` names it.
 */
export function checkSampleShape(
  sample: Omit<UsageSample, 'meter'> & { meter: string },
  where: string,
): void {
  if (!(sample.meter in METERS)) throw new InvalidSample(`unknown meter ${JSON.stringify(sample.meter)}`);
  const meter = sample.meter as Meter;
  if (!Number.isSafeInteger(sample.quantity) || sample.quantity < 0) {
    throw new InvalidSample(
      `${where}: the quantity must be a whole number, zero or more (got ${sample.quantity})`,
    );
  }
  const at = sample.bucket.getTime();
  if (Number.isNaN(at) || bucketOf(meter, sample.bucket).getTime() !== at) {
    throw new InvalidSample(`${where}: the bucket must start a whole UTC ${METERS[meter].bucket}`);
  }
}

function check(sample: UsageSample, now: number): void {
  const where = `sample ${sample.meter} of ${sample.instanceId}`;
  checkSampleShape(sample, where);
  if (!UUID.test(sample.instanceId)) throw new InvalidSample(`${where}: the instance id is not a UUID`);
  const at = sample.bucket.getTime();
  if (at > now + MAX_AHEAD_MS || at < now - MAX_AGE_MS) {
    throw new InvalidSample(
      `${where}: ${sample.bucket.toISOString()} is outside Stripe's window (the past 35 days to 5 minutes ahead)`,
    );
  }
}

/** Rows per INSERT: one statement of five arrays, well under PostgreSQL's limits. */
const BATCH = 5_000;
/** Statements in flight at once: the ledger's indexes are maintained by several backends. */
const PARALLEL = 3;

const INSERT = `
  insert into "UsageEvent" ("instanceId", meter, quantity, "occurredAt", "idempotencyKey")
  select * from unnest($1::uuid[], $2::text[], $3::bigint[], $4::timestamptz[], $5::text[])
  on conflict ("idempotencyKey") do nothing`;

/**
 * Appends `samples` to the ledger, in batches of one statement each, a few at once; a sample
 * already there (a retry, a second sampler) is skipped, so batches may land in any order. Every
 * sample is checked first, so a bad one writes nothing. Returns how many were new.
 */
export async function recordUsage(
  pool: Pick<Pool, 'query'>,
  samples: readonly UsageSample[],
  now = Date.now(),
): Promise<{ recorded: number }> {
  for (const sample of samples) check(sample, now);
  let next = 0;
  let recorded = 0;
  const insertBatches = async () => {
    for (let start = next; start < samples.length; start = next) {
      next += BATCH;
      const batch = samples.slice(start, start + BATCH);
      const result = await pool.query({
        name: 'usage-record',
        text: INSERT,
        values: [
          batch.map((sample) => sample.instanceId),
          batch.map((sample) => sample.meter),
          batch.map((sample) => sample.quantity),
          batch.map((sample) => sample.bucket),
          batch.map(usageKeyOf),
        ],
      });
      recorded += result.rowCount ?? 0;
    }
  };
  await Promise.all(Array.from({ length: PARALLEL }, insertBatches));
  return { recorded };
}

/**
 * The period's totals per instance and meter, from the ledger, written to `UsageAggregate`
 * (replaced when run again, so a late sample is counted by the next run): summed meters add
 * up their samples, `last` meters keep the latest sample's value. Only the latest revision of
 * each bucket counts (billing/usage-corrections.ts).
 */
export async function aggregateUsage(
  client: SqlClient,
  period: { start: Date; end: Date },
  only: { instanceId?: string } = {},
): Promise<{ aggregates: number }> {
  const summed = Object.entries(METERS)
    .filter(([, meter]) => meter.aggregate === 'sum')
    .map(([name]) => name);
  const aggregates = await execute(client, {
    name: 'usage-aggregate',
    text: `
      insert into "UsageAggregate" (id, "instanceId", meter, "periodStart", "periodEnd", quantity, "updatedAt")
      select gen_random_uuid(), "instanceId", meter, $1::timestamptz, $2::timestamptz,
             case when meter = any($3::text[]) then sum(quantity)
                  else (array_agg(quantity order by "occurredAt" desc))[1] end,
             now()
        from "UsageEvent" e
       where "occurredAt" >= $1 and "occurredAt" < $2 and meter = any($4::text[])
         and ${latestRevision('e')}
         and ($5::uuid is null or "instanceId" = $5::uuid)
       group by "instanceId", meter
      on conflict ("instanceId", meter, "periodStart")
        do update set quantity = excluded.quantity, "periodEnd" = excluded."periodEnd", "updatedAt" = now()`,
    values: [period.start, period.end, summed, Object.keys(METERS), only.instanceId ?? null],
  });
  return { aggregates };
}
