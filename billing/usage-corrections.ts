/**
 * Corrections of the usage ledger, which is append-only: a bucket's entry is never changed, a
 * new revision of it is appended (key `<sample key>#r<n>`, naming the key it supersedes), and
 * only the latest revision of a bucket counts (aggregates, reports, drift checks). How a
 * revision reaches Stripe (cancel and re-send within 24 h, a balance transaction later) is the
 * reporter's part (billing/meter-reports.ts); the money a late revision settles is here.
 */
import type { Pool } from 'pg';
import { METERED_PRICES } from '../core/domain/catalog.ts';
import { checkSampleShape, InvalidSample, latestRevision, type Meter, usageKeyOf } from './metering.ts';

export interface UsageCorrection {
  instanceId: string;
  meter: Meter;
  /** The start of the bucket to correct, as its sample had it. */
  bucket: Date;
  /** The bucket's right quantity: a whole number, zero or more. */
  quantity: number;
  /** Why, for the ledger and whoever reads it later. */
  reason: string;
}

/** Two corrections of one bucket raced and this one kept losing: the caller may simply retry. */
export class CorrectionConflict extends Error {
  override name = 'CorrectionConflict';
  readonly retryable = true;
}

/** The key of revision `revision` of the bucket whose sample key is `sampleKey`. */
export const revisionKeyOf = (sampleKey: string, revision: number) =>
  revision === 0 ? sampleKey : `${sampleKey}#r${revision}`;

const RACE_TRIES = 3;

function checkCorrection(correction: UsageCorrection): void {
  checkSampleShape(correction, `correction of ${correction.meter} of ${correction.instanceId}`);
  if (correction.reason.trim() === '') {
    throw new InvalidSample(
      `correction of ${correction.meter} of ${correction.instanceId}: a reason is required`,
    );
  }
}

/**
 * Appends a new revision of a bucket's ledger entry with `quantity`, superseding the latest
 * one. Correcting a bucket to the quantity it already has appends nothing, so a retried
 * correction counts once. A bucket with no entry cannot be corrected (record it instead).
 */
export async function correctUsage(
  pool: Pick<Pool, 'query'>,
  correction: UsageCorrection,
): Promise<{ key: string; revision: number; supersedes: string | null; appended: boolean }> {
  checkCorrection(correction);
  const sampleKey = usageKeyOf(correction);
  for (let attempt = 1; attempt <= RACE_TRIES; attempt++) {
    const { rows } = await pool.query<{ key: string; revision: number; quantity: string }>(
      `select e."idempotencyKey" as key, e.revision, e.quantity::text from "UsageEvent" e
        where e."instanceId" = $1::uuid and e.meter = $2 and e."occurredAt" = $3::timestamptz
          and ${latestRevision('e')}`,
      [correction.instanceId, correction.meter, correction.bucket],
    );
    const latest = rows[0];
    if (!latest)
      throw new InvalidSample(`no usage is recorded under ${sampleKey}: there is nothing to correct`);
    if (Number(latest.quantity) === correction.quantity) {
      return { key: latest.key, revision: latest.revision, supersedes: null, appended: false };
    }
    const revision = latest.revision + 1;
    const key = revisionKeyOf(sampleKey, revision);
    // Both unique keys (the new key, the superseded key) stop a concurrent correction.
    const inserted = await pool.query(
      `insert into "UsageEvent" ("instanceId", meter, quantity, "occurredAt", "idempotencyKey", revision, supersedes, reason)
       values ($1::uuid, $2, $3::bigint, $4::timestamptz, $5, $6::int, $7, $8)
       on conflict do nothing`,
      [
        correction.instanceId,
        correction.meter,
        correction.quantity,
        correction.bucket,
        key,
        revision,
        latest.key,
        correction.reason,
      ],
    );
    if (inserted.rowCount === 1) return { key, revision, supersedes: latest.key, appended: true };
  }
  throw new CorrectionConflict(`${sampleKey} is being corrected concurrently; try again`);
}

/** `value` (a decimal string such as `0.0137`) as an integer over a power of ten. */
function parseDecimal(value: string): { units: bigint; scale: bigint } {
  const [whole = '0', fraction = ''] = value.split('.');
  return { units: BigInt(`${whole}${fraction}`), scale: 10n ** BigInt(fraction.length) };
}

/**
 * What a change of `difference` units of `meter` costs in minor units at its metered price
 * (negative: a credit), rounded to the nearest minor unit, halves away from zero, so a
 * correction and its reversal settle to exactly nothing. Exact: no floating point.
 */
export function settlementMinorOf(meter: Meter, difference: number): number {
  const { units, scale } = parseDecimal(METERED_PRICES[meter].unitMinorDecimal);
  const product = BigInt(difference) * units;
  const sign = product < 0n ? -1n : 1n;
  const magnitude = product * sign;
  const rounded = (magnitude * 2n + scale) / (scale * 2n);
  return Number(rounded * sign);
}

/** The currency a meter's price is in (the balance transaction's currency). */
export const settlementCurrencyOf = (meter: Meter) => METERED_PRICES[meter].currency;
