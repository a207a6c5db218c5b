/**
 * Reporting the usage ledger to Stripe Billing Meters through the real `stripe` client against
 * stripe-mock (Stripe's API mock, which checks every request against Stripe's API description),
 * with a real PostgreSQL. stripe-mock remembers nothing, so what Stripe would deduplicate is
 * checked on what was sent: a recorder in front of the client notes each request, and a
 * fault-injecting wrapper (named so) answers 429, 500 or 400 where a test needs Stripe to fail.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { PassThrough } from 'node:stream';
import { after, before, beforeEach, describe, it } from 'node:test';
import { parseCrontab } from 'graphile-worker';
import pg from 'pg';
import type Stripe from 'stripe';
import { billingTasks, REPORT_USAGE_TASK } from '../../billing/index.ts';
import {
  type BalanceTransactionSink,
  FLAG_AFTER_ATTEMPTS,
  type MeterEvent,
  type MeterEventAdjustmentSink,
  type MeterEventSink,
  reportUsage,
} from '../../billing/meter-reports.ts';
import { recordUsage, type UsageSample, usageKeyOf } from '../../billing/metering.ts';
import { makeSecretBox } from '../../core/crypto.ts';
import { makeLogger } from '../../core/log.ts';
import { makeTestDatabase, type TestDatabase } from '../support/db.ts';
import { createOrganization, createUserWithToken } from '../support/factories.ts';
import {
  STRIPE_MOCK_API_KEY,
  type StripeMock,
  startStripeMock,
  stripeMockClient,
  stripeMockSkipReason,
} from '../support/stripe-mock.ts';

const skip = stripeMockSkipReason();
const noWait = async () => {};
const log = makeLogger({ log: { level: 'error', format: 'json' } }, new PassThrough().resume());

describe('usage reported to Stripe Billing Meters (stripe-mock)', { skip }, () => {
  let database: TestDatabase;
  let pool: pg.Pool;
  let mock: StripeMock;
  let stripe: Stripe;
  /** Instances of two paying organizations (Stripe customers) and one on the `none` provider. */
  const instance: Record<'ada' | 'bob' | 'free', string> = { ada: '', bob: '', free: '' };
  let sent: MeterEvent[];
  /** The real client against stripe-mock, each request noted. */
  let toStripe: MeterEventSink;
  /** Cancels and balance transactions: plain samples are never corrected here, so these must stay unused. */
  let corrections: string[];
  let toAdjust: MeterEventAdjustmentSink;
  let toCredit: BalanceTransactionSink;

  before(async () => {
    [database, mock] = await Promise.all([makeTestDatabase(), startStripeMock()]);
    pool = new pg.Pool({ connectionString: database.url, max: 4 });
    stripe = stripeMockClient(mock);
    const plan = await database.db.plan.findUniqueOrThrow({ where: { code: 'community' } });
    for (const name of ['ada', 'bob', 'free'] as const) {
      const { userId } = await createUserWithToken(database.db);
      const organizationId = await createOrganization(database.db, userId);
      if (name !== 'free') {
        await database.db.organization.update({
          where: { id: organizationId },
          data: { stripeCustomerId: `cus_${name}` },
        });
      }
      const made = await database.db.instance.create({
        data: {
          organizationId,
          planId: plan.id,
          domain: `${name}.meters.woolly.test`,
          mastodonVersion: 'v4.5.11',
          status: 'running',
          spec: {},
        },
      });
      instance[name] = made.id;
    }
  });
  after(async () => {
    await pool?.end();
    await Promise.all([database?.release(), mock?.release()]);
  });
  beforeEach(async () => {
    await pool.query(`delete from "UsageEvent" where meter <> 'subscription_start'`);
    sent = [];
    toStripe = async (event) => {
      sent.push(event);
      return stripe.billing.meterEvents.create(event);
    };
    corrections = [];
    toAdjust = async (adjustment, options) => {
      corrections.push(`cancel ${adjustment.cancel.identifier}`);
      return stripe.billing.meterEventAdjustments.create(adjustment, options);
    };
    toCredit = async (customer, transaction, options) => {
      corrections.push(`credit ${customer}`);
      return stripe.customers.createBalanceTransaction(customer, transaction, options);
    };
  });

  const hourAgo = (hours: number) => {
    const at = new Date(Date.now() - hours * 3_600_000);
    at.setUTCMinutes(0, 0, 0);
    return at;
  };
  const storage = (who: keyof typeof instance, hours: number, quantity = 7): UsageSample => ({
    instanceId: instance[who],
    meter: 'storage_gb_hours',
    quantity,
    bucket: hourAgo(hours),
  });
  const unreported = async () =>
    Number(
      (
        await pool.query(
          `select count(*) from "UsageEvent" where "reportedAt" is null and meter <> 'subscription_start'`,
        )
      ).rows[0].count,
    );

  it('sends each entry once, keyed by its ledger key, and a second run sends nothing; the none provider is not reported', async () => {
    const samples = [storage('ada', 3), storage('ada', 2), storage('bob', 2, 11), storage('free', 2)];
    await recordUsage(pool, samples);
    assert.deepEqual(
      await reportUsage({ pool, adjust: toAdjust, credit: toCredit, sink: toStripe, sleep: noWait }),
      {
        reported: 3,
        failed: 0,
        flagged: 0,
      },
    );
    assert.deepEqual(
      sent.map((event) => event.identifier).sort(),
      samples.slice(0, 3).map(usageKeyOf).sort(),
    );
    const bob = sent.find((event) => event.payload.stripe_customer_id === 'cus_bob');
    assert.deepEqual(bob, {
      event_name: 'storage_gb_hours',
      identifier: usageKeyOf(samples[2] as UsageSample),
      timestamp: Math.floor(hourAgo(2).getTime() / 1000),
      payload: { stripe_customer_id: 'cus_bob', value: '11' },
    });
    assert.equal(await unreported(), 1, 'only the organization without a Stripe customer is left');
    sent = [];
    assert.deepEqual(
      await reportUsage({ pool, adjust: toAdjust, credit: toCredit, sink: toStripe, sleep: noWait }),
      {
        reported: 0,
        failed: 0,
        flagged: 0,
      },
    );
    assert.deepEqual(sent, []);
    assert.deepEqual(corrections, [], 'samples with no revision are never cancelled or credited');
  });

  it('a crash between the ledger write and the report, or an answer lost, re-reports with the same identifier', async () => {
    await recordUsage(pool, [storage('ada', 1)]);
    // Stripe got the event, but the answer never came back (the connection dropped).
    const lostAnswer: MeterEventSink = async (event) => {
      await toStripe(event);
      throw new Error('socket hang up');
    };
    const first = await reportUsage({
      pool,
      adjust: toAdjust,
      credit: toCredit,
      sink: lostAnswer,
      sleep: noWait,
    });
    assert.equal(first.reported, 0);
    await reportUsage({ pool, adjust: toAdjust, credit: toCredit, sink: toStripe, sleep: noWait });
    const identifiers = new Set(sent.map((event) => event.identifier));
    assert.ok(sent.length > 1, 'sent again');
    assert.deepEqual(
      [...identifiers],
      [usageKeyOf(storage('ada', 1))],
      'every send carries the one identifier Stripe deduplicates on',
    );
    assert.equal(await unreported(), 0);
  });

  it('retries 429 and 500 with backoff, not a refusal; a bucket that keeps failing is flagged once and kept', async () => {
    await recordUsage(pool, [storage('ada', 1), storage('bob', 1)]);
    const waits: number[] = [];
    let calls = 0;
    // Fault-injecting wrapper in front of stripe-mock: throttled, then a server error, then through.
    const flaky: MeterEventSink = async (event) => {
      if (event.payload.stripe_customer_id === 'cus_bob')
        throw Object.assign(new Error('Invalid customer'), { statusCode: 400 });
      calls++;
      if (calls === 1) throw Object.assign(new Error('Too many requests'), { statusCode: 429 });
      if (calls === 2) throw Object.assign(new Error('Internal error'), { statusCode: 500 });
      return toStripe(event);
    };
    const run = () =>
      reportUsage({
        pool,
        adjust: toAdjust,
        credit: toCredit,
        sink: flaky,
        sleep: async (ms) => void waits.push(ms),
      });
    const first = await run();
    assert.deepEqual([first.reported, first.failed], [1, 1]);
    assert.equal(waits.length, 2, 'two backoffs for ada, none for the refused bob');
    assert.ok(waits.every((ms) => ms >= 0 && ms <= 500 * 2 ** 3));
    for (let run_ = 2; run_ <= FLAG_AFTER_ATTEMPTS + 1; run_++) await run();
    const { rows } = await pool.query(
      `select "reportAttempts" as attempts, "reportError" as error, "reportedAt" from "UsageEvent" where "instanceId" = $1 and meter = 'storage_gb_hours'`,
      [instance.bob],
    );
    assert.deepEqual(rows, [
      { attempts: FLAG_AFTER_ATTEMPTS + 1, error: 'Invalid customer', reportedAt: null },
    ]);
    const flags = await database.db.event.findMany({
      where: { instanceId: instance.bob, type: 'billing.usage_report_failing' },
    });
    assert.equal(flags.length, 1, 'flagged once');
    assert.match(flags[0]?.message ?? '', /could not be reported to Stripe after 5 runs: Invalid customer/);
  });

  it('one call at a time per customer and meter; different customers side by side', async () => {
    await recordUsage(
      pool,
      [1, 2, 3, 4].flatMap((hours) => [storage('ada', hours), storage('bob', hours)]),
    );
    const inFlight = new Map<string, number>();
    let most = 0;
    let overlapAcrossCustomers = false;
    const watched: MeterEventSink = async (event) => {
      const pair = `${event.payload.stripe_customer_id}/${event.event_name}`;
      const now = (inFlight.get(pair) ?? 0) + 1;
      inFlight.set(pair, now);
      most = Math.max(most, now);
      if ([...inFlight.values()].filter((count) => count > 0).length > 1) overlapAcrossCustomers = true;
      try {
        return await toStripe(event);
      } finally {
        inFlight.set(pair, now - 1);
      }
    };
    assert.equal(
      (await reportUsage({ pool, adjust: toAdjust, credit: toCredit, sink: watched, sleep: noWait }))
        .reported,
      8,
    );
    assert.equal(most, 1);
    assert.ok(overlapAcrossCustomers, 'ada and bob were reported side by side');
  });

  it("the worker's report job sends the ledger through the Stripe client, every 10 minutes, one run at a time", async () => {
    await recordUsage(pool, [storage('ada', 1), storage('bob', 1)]);
    const box = makeSecretBox([{ id: 'test', key: randomBytes(32) }]);
    const config = (stripe: { secretKey: string; apiUrl: string; webhookSecret: string } | null) => ({
      stripe,
      dunning: { graceDays: 7, retentionDays: 30 },
      deletionGraceHours: 24,
    });
    const settings = { secretKey: STRIPE_MOCK_API_KEY, apiUrl: mock.url, webhookSecret: 'whsec_test' };
    const billing = billingTasks({ db: database.db, pool, log, box, config: config(settings) });
    const entry = parseCrontab(billing.crontab).find((candidate) => candidate.task === REPORT_USAGE_TASK);
    assert.equal(entry?.options.jobKey, REPORT_USAGE_TASK);
    const at = (min: number) => ({ min, hour: 10, date: 28, month: 11, dow: 6 });
    assert.deepEqual([entry?.match(at(20)), entry?.match(at(25))], [true, false]);
    await billing.tasks[REPORT_USAGE_TASK]?.({}, {} as never);
    assert.equal(await unreported(), 0);
    const ledgerOnly = billingTasks({ db: database.db, pool, log, box, config: config(null) });
    assert.equal(ledgerOnly.tasks[REPORT_USAGE_TASK], undefined, 'without Stripe nothing is reported');
    assert.ok(!ledgerOnly.crontab.includes(REPORT_USAGE_TASK));
  });

  it('stripe-mock refuses a malformed meter event, which is not retried', async () => {
    await recordUsage(pool, [storage('ada', 1)]);
    let calls = 0;
    const malformed: MeterEventSink = async (event) => {
      calls++;
      return stripe.billing.meterEvents.create({ ...event, payload: undefined } as never);
    };
    const result = await reportUsage({
      pool,
      adjust: toAdjust,
      credit: toCredit,
      sink: malformed,
      sleep: noWait,
    });
    assert.deepEqual([result.reported, result.failed, calls], [0, 1, 1]);
  });
});
