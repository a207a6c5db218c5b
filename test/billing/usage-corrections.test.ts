/**
 * Corrections of the append-only usage ledger, against a real PostgreSQL, and how the reporter
 * brings Stripe to a corrected bucket, through the real `stripe` client against stripe-mock:
 * within 24 h a meter event adjustment cancels the replaced event and the revision goes under
 * its own identifier; later a customer balance transaction settles the difference. stripe-mock
 * is stateless, so what Stripe would do is checked on what was sent (a recorder in front of
 * the client) and on the ledger.
 */
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import pg from 'pg';
import type Stripe from 'stripe';
import {
  type BalanceTransaction,
  type MeterEventSink,
  type ReportDeps,
  reportUsage,
} from '../../billing/meter-reports.ts';
import { aggregateUsage, InvalidSample, recordUsage, usageKeyOf } from '../../billing/metering.ts';
import { correctUsage, settlementMinorOf } from '../../billing/usage-corrections.ts';
import { makeTestDatabase, type TestDatabase } from '../support/db.ts';
import { createOrganization, createUserWithToken } from '../support/factories.ts';
import {
  type StripeMock,
  startStripeMock,
  stripeMockClient,
  stripeMockSkipReason,
} from '../support/stripe-mock.ts';

const skip = stripeMockSkipReason();
const noWait = async () => {};

describe('settlementMinorOf', () => {
  it('prices a difference exactly, to the nearest minor unit, halves away from zero, symmetric for a reversal', () => {
    // storage: 0.0137 minor units a GB-hour; search: 2 a hour.
    assert.equal(settlementMinorOf('storage_gb_hours', -300), -4); // -4.11
    assert.equal(settlementMinorOf('storage_gb_hours', 300), 4);
    assert.equal(settlementMinorOf('storage_gb_hours', 36), 0); // 0.4932
    assert.equal(settlementMinorOf('storage_gb_hours', 37), 1); // 0.5069
    assert.equal(settlementMinorOf('storage_gb_hours', -37), -1);
    assert.equal(settlementMinorOf('search_hours', -3), -6);
    assert.equal(settlementMinorOf('active_users', 120), 120);
  });
});

describe('usage corrections (PostgreSQL, stripe-mock)', { skip }, () => {
  let database: TestDatabase;
  let pool: pg.Pool;
  let mock: StripeMock;
  let stripe: Stripe;
  let instanceId: string;
  /** Every call towards Stripe, in order, as `<kind> <identifier or key>`. */
  let calls: string[];
  let credits: { customer: string; transaction: BalanceTransaction; idempotencyKey: string }[];
  let deps: ReportDeps;

  before(async () => {
    [database, mock] = await Promise.all([makeTestDatabase(), startStripeMock()]);
    pool = new pg.Pool({ connectionString: database.url, max: 4 });
    stripe = stripeMockClient(mock);
    const plan = await database.db.plan.findUniqueOrThrow({ where: { code: 'community' } });
    const { userId } = await createUserWithToken(database.db);
    const organizationId = await createOrganization(database.db, userId);
    await database.db.organization.update({
      where: { id: organizationId },
      data: { stripeCustomerId: 'cus_ada' },
    });
    const instance = await database.db.instance.create({
      data: {
        organizationId,
        planId: plan.id,
        domain: 'ada.corrections.woolly.test',
        mastodonVersion: 'v4.5.11',
        status: 'running',
        spec: {},
      },
    });
    instanceId = instance.id;
  });
  after(async () => {
    await pool?.end();
    await Promise.all([database?.release(), mock?.release()]);
  });
  beforeEach(async () => {
    await pool.query(`delete from "UsageEvent" where meter <> 'subscription_start'`);
    calls = [];
    credits = [];
    deps = {
      pool,
      sleep: noWait,
      sink: async (event) => {
        calls.push(`event ${event.identifier} ${event.payload.value}`);
        return stripe.billing.meterEvents.create(event);
      },
      adjust: async (adjustment, options) => {
        calls.push(`cancel ${adjustment.cancel.identifier} (${options.idempotencyKey})`);
        return stripe.billing.meterEventAdjustments.create(adjustment, options);
      },
      credit: async (customer, transaction, options) => {
        calls.push(`credit ${transaction.amount}`);
        credits.push({ customer, transaction, idempotencyKey: options.idempotencyKey });
        return stripe.customers.createBalanceTransaction(customer, transaction, options);
      },
    };
  });

  const bucket = (hoursAgo: number) => {
    const at = new Date(Date.now() - hoursAgo * 3_600_000);
    at.setUTCMinutes(0, 0, 0);
    return at;
  };
  const sample = (quantity: number, hoursAgo = 2) => ({
    instanceId,
    meter: 'storage_gb_hours' as const,
    quantity,
    bucket: bucket(hoursAgo),
  });
  const entries = async () =>
    (
      await pool.query<{
        key: string;
        quantity: string;
        revision: number;
        supersedes: string | null;
        reported: boolean;
        cancelled: boolean;
        creditMinor: number | null;
      }>(
        `select "idempotencyKey" as key, quantity::text, revision, supersedes, "reportedAt" is not null as reported,
                "cancelledAt" is not null as cancelled, "creditMinor"
           from "UsageEvent" where meter = 'storage_gb_hours' order by revision`,
      )
    ).rows;

  it('appends a revision superseding the entry; only the latest counts; the same value again appends nothing', async () => {
    const original = sample(500);
    const key = usageKeyOf(original);
    await recordUsage(pool, [original, sample(10, 3)]);
    const first = await correctUsage(pool, { ...original, quantity: 200, reason: 'double-counted versions' });
    assert.deepEqual(first, { key: `${key}#r1`, revision: 1, supersedes: key, appended: true });
    const again = await correctUsage(pool, { ...original, quantity: 200, reason: 'retried' });
    assert.equal(again.appended, false);
    const second = await correctUsage(pool, { ...original, quantity: 250, reason: 'recount' });
    assert.deepEqual(second, { key: `${key}#r2`, revision: 2, supersedes: `${key}#r1`, appended: true });
    const rows = (await entries()).filter((row) => row.key.startsWith(key));
    assert.deepEqual(
      rows.map((row) => [row.key, row.quantity, row.supersedes]),
      [
        [key, '500', null],
        [`${key}#r1`, '200', key],
        [`${key}#r2`, '250', `${key}#r1`],
      ],
    );
    const period = { start: bucket(24 * 30), end: new Date(Date.now() + 86_400_000) };
    await aggregateUsage(pool, period);
    const { rows: totals } = await pool.query(
      `select quantity::text from "UsageAggregate" where "instanceId" = $1 and meter = 'storage_gb_hours' and "periodStart" = $2`,
      [instanceId, period.start],
    );
    assert.deepEqual(totals, [{ quantity: '260' }], '250 (latest revision) + 10, not 500 or 200');
  });

  it('two corrections of one bucket at once both land, in a line of revisions', async () => {
    const original = sample(500);
    await recordUsage(pool, [original]);
    const results = await Promise.all([
      correctUsage(pool, { ...original, quantity: 100, reason: 'a' }),
      correctUsage(pool, { ...original, quantity: 300, reason: 'b' }),
    ]);
    assert.deepEqual(results.map((result) => result.revision).sort(), [1, 2]);
    const rows = await entries();
    assert.deepEqual(
      rows.map((row) => row.supersedes),
      [null, rows[0]?.key, rows[1]?.key],
    );
  });

  it('refuses a correction of a bucket with no entry, or a bad quantity, with why', async () => {
    await assert.rejects(correctUsage(pool, { ...sample(5), reason: 'x' }), (error: Error) => {
      assert.ok(error instanceof InvalidSample);
      assert.match(error.message, /no usage is recorded under storage_gb_hours:.*nothing to correct/);
      return true;
    });
    await recordUsage(pool, [sample(5)]);
    await assert.rejects(correctUsage(pool, { ...sample(-1), reason: 'x' }), /whole number, zero or more/);
    await assert.rejects(correctUsage(pool, { ...sample(1), reason: ' ' }), /a reason is required/);
    assert.equal((await entries()).length, 1);
  });

  it('an entry reported less than 24 h ago is cancelled at Stripe, then the revision is reported under its own identifier', async () => {
    const original = sample(500);
    const key = usageKeyOf(original);
    await recordUsage(pool, [original]);
    await reportUsage(deps);
    await correctUsage(pool, { ...original, quantity: 200, reason: 'recount' });
    assert.deepEqual(await reportUsage(deps), { reported: 1, failed: 0, flagged: 0 });
    assert.deepEqual(calls, [
      `event ${key} 500`,
      `cancel ${key} (usage-cancel:${key})`,
      `event ${key}#r1 200`,
    ]);
    assert.deepEqual(
      (await entries()).map((row) => [row.key, row.reported, row.cancelled]),
      [
        [key, true, true],
        [`${key}#r1`, true, false],
      ],
    );
    calls = [];
    await reportUsage(deps);
    assert.deepEqual(calls, [], 'nothing more to send');
  });

  it('a crash after the cancel and before the new event resumes with the event alone', async () => {
    const original = sample(500);
    const key = usageKeyOf(original);
    await recordUsage(pool, [original]);
    await reportUsage(deps);
    await correctUsage(pool, { ...original, quantity: 200, reason: 'recount' });
    const working = deps.sink;
    const down: MeterEventSink = async () => {
      throw Object.assign(new Error('Internal error'), { statusCode: 500 });
    };
    assert.deepEqual(await reportUsage({ ...deps, sink: down }), { reported: 0, failed: 1, flagged: 0 });
    calls = [];
    assert.equal((await reportUsage({ ...deps, sink: working })).reported, 1);
    assert.deepEqual(calls, [`event ${key}#r1 200`], 'the original stays cancelled; no second cancel');
  });

  it('an entry never reported is replaced by its revision alone: no cancel, one event', async () => {
    const original = sample(500);
    const key = usageKeyOf(original);
    await recordUsage(pool, [original]);
    await correctUsage(pool, { ...original, quantity: 200, reason: 'recount' });
    assert.equal((await reportUsage(deps)).reported, 1);
    assert.deepEqual(calls, [`event ${key}#r1 200`]);
    assert.deepEqual(
      (await entries()).map((row) => [row.key, row.reported]),
      [
        [key, false],
        [`${key}#r1`, true],
      ],
    );
  });

  it('an entry reported more than 24 h ago is settled by one balance transaction of the difference, retried under one key', async () => {
    const original = sample(500, 30);
    const key = usageKeyOf(original);
    await recordUsage(pool, [original]);
    await reportUsage(deps);
    await pool.query(
      `update "UsageEvent" set "reportedAt" = now() - interval '25 hours' where "idempotencyKey" = $1`,
      [key],
    );
    await correctUsage(pool, { ...original, quantity: 200, reason: 'recount' });
    calls = [];
    // Stripe took the first balance transaction but its answer was lost.
    const working = deps.credit;
    let lost = false;
    const lostOnce: ReportDeps['credit'] = async (customer, transaction, options) => {
      await working(customer, transaction, options);
      if (!lost) {
        lost = true;
        throw new Error('socket hang up');
      }
    };
    assert.deepEqual(await reportUsage({ ...deps, credit: lostOnce }), {
      reported: 1,
      failed: 0,
      flagged: 0,
    });
    assert.deepEqual(calls, ['credit -4', 'credit -4'], 'no meter event, no cancel');
    assert.deepEqual(
      credits.map((credit) => credit.idempotencyKey),
      [`usage-credit:${key}#r1`, `usage-credit:${key}#r1`],
      'the retry carries the same idempotency key, so Stripe credits once',
    );
    assert.deepEqual(credits[0]?.transaction, {
      amount: -4,
      currency: 'eur',
      description: `Usage correction ${key}#r1: 500 -> 200 storage_gb_hours`,
      metadata: { usage_key: `${key}#r1`, supersedes: key },
    });
    assert.equal(credits[0]?.customer, 'cus_ada');
    assert.deepEqual(
      (await entries()).map((row) => [row.key, row.reported, row.cancelled, row.creditMinor]),
      [
        [key, true, false, null],
        [`${key}#r1`, true, false, -4],
      ],
    );
    // A further correction settles against the credited revision, not the original.
    await correctUsage(pool, { ...original, quantity: 300, reason: 'recount again' });
    calls = [];
    await reportUsage(deps);
    assert.deepEqual(calls, ['credit 1'], '(300 - 200) x 0.0137 = 1.37, rounded to 1');
  });
});
