/**
 * The usage ledger against a real PostgreSQL: samples keyed by (meter, instance, bucket) count
 * once however often they are taken or retried, bad samples write nothing, and a period's
 * aggregates sum hourly meters and keep the last value of `active_users`.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import {
  aggregateUsage,
  InvalidSample,
  recordUsage,
  type UsageSample,
  usageKeyOf,
} from '../../billing/metering.ts';
import { makeTestDatabase, type TestDatabase } from '../support/db.ts';
import { createOrganization, createUserWithToken } from '../support/factories.ts';

const NOW = Date.parse('2026-11-20T12:30:00Z');
const hour = (h: number) => new Date(Date.parse('2026-11-20T00:00:00Z') + h * 3_600_000);

describe('the usage ledger', () => {
  let database: TestDatabase;
  let pool: pg.Pool;
  const instances: string[] = [];

  before(async () => {
    database = await makeTestDatabase();
    pool = new pg.Pool({ connectionString: database.url, max: 4 });
    const { userId } = await createUserWithToken(database.db);
    const organizationId = await createOrganization(database.db, userId);
    const plan = await database.db.plan.findUniqueOrThrow({ where: { code: 'community' } });
    for (const name of ['a', 'b']) {
      const instance = await database.db.instance.create({
        data: {
          organizationId,
          planId: plan.id,
          domain: `${name}.metering.woolly.test`,
          mastodonVersion: 'v4.5.11',
          status: 'running',
          spec: {},
        },
      });
      instances.push(instance.id);
    }
  });
  after(async () => {
    await pool?.end();
    await database?.release();
  });

  const ledger = async () =>
    (
      await pool.query<{ meter: string; quantity: string; key: string }>(
        `select meter, quantity::text, "idempotencyKey" as key from "UsageEvent"
          where meter <> 'subscription_start' order by "idempotencyKey"`,
      )
    ).rows;

  it('a sample retried ten times, and by two samplers at once, counts once', async () => {
    const [instanceId] = instances;
    assert.ok(instanceId);
    const sample: UsageSample = { instanceId, meter: 'storage_gb_hours', quantity: 42, bucket: hour(9) };
    const results = await Promise.all(Array.from({ length: 10 }, () => recordUsage(pool, [sample], NOW)));
    assert.equal(
      results.reduce((sum, result) => sum + result.recorded, 0),
      1,
    );
    assert.deepEqual(await ledger(), [
      {
        meter: 'storage_gb_hours',
        quantity: '42',
        key: `storage_gb_hours:${instanceId}:2026-11-20T09:00:00.000Z`,
      },
    ]);
    assert.equal(usageKeyOf(sample), `storage_gb_hours:${instanceId}:2026-11-20T09:00:00.000Z`);
  });

  it('refuses a bad sample with why, and writes nothing of its batch', async () => {
    const [instanceId = ''] = instances;
    const good: UsageSample = { instanceId, meter: 'search_hours', quantity: 1, bucket: hour(10) };
    const before = await ledger();
    const bad: [Partial<UsageSample>, RegExp][] = [
      [{ quantity: 1.5 }, /whole number, zero or more \(got 1.5\)/],
      [{ quantity: -1 }, /whole number, zero or more/],
      [{ bucket: new Date(Date.parse('2026-11-20T10:15:00Z')) }, /must start a whole UTC hour/],
      [{ meter: 'active_users', bucket: hour(10) }, /must start a whole UTC day/],
      [{ bucket: hour(-24 * 40) }, /outside Stripe's window/],
      [{ bucket: hour(14) }, /outside Stripe's window/],
      [{ instanceId: 'not-a-uuid' }, /not a UUID/],
      [{ meter: 'bandwidth' as never }, /unknown meter "bandwidth"/],
    ];
    for (const [change, message] of bad) {
      await assert.rejects(recordUsage(pool, [good, { ...good, ...change }], NOW), (error: Error) => {
        assert.ok(error instanceof InvalidSample);
        assert.match(error.message, message);
        return true;
      });
    }
    assert.deepEqual(await ledger(), before);
  });

  it('aggregates a period: hourly meters summed, active users the last sample, late samples counted on the next run', async () => {
    const [a = '', b = ''] = instances;
    const day = (d: number) => new Date(Date.parse('2026-11-01T00:00:00Z') + d * 86_400_000);
    const samples: UsageSample[] = [
      ...Array.from({ length: 5 }, (_, h) => ({
        instanceId: a,
        meter: 'storage_gb_hours' as const,
        quantity: 10,
        bucket: hour(h),
      })),
      ...Array.from({ length: 3 }, (_, h) => ({
        instanceId: b,
        meter: 'search_hours' as const,
        quantity: 1,
        bucket: hour(h),
      })),
      { instanceId: b, meter: 'active_users', quantity: 120, bucket: day(17) },
      { instanceId: b, meter: 'active_users', quantity: 150, bucket: day(19) },
      { instanceId: b, meter: 'active_users', quantity: 90, bucket: day(18) },
    ];
    await recordUsage(pool, samples, NOW);
    const period = { start: new Date('2026-11-01T00:00:00Z'), end: new Date('2026-12-01T00:00:00Z') };
    const aggregates = async () =>
      (
        await pool.query<{ instance: string; meter: string; quantity: string }>(
          `select "instanceId" as instance, meter, quantity::text from "UsageAggregate"
            where "periodStart" = $1 order by "instanceId", meter`,
          [period.start],
        )
      ).rows
        .map((row) => [row.instance === a ? 'a' : 'b', row.meter, Number(row.quantity)])
        .sort((x, y) => `${x[0]}${x[1]}`.localeCompare(`${y[0]}${y[1]}`));
    await aggregateUsage(pool, period);
    // `a` also has the 42 GB sample of 09:00 from the first test.
    assert.deepEqual(await aggregates(), [
      ['a', 'storage_gb_hours', 92],
      ['b', 'active_users', 150],
      ['b', 'search_hours', 3],
    ]);
    await recordUsage(
      pool,
      [{ instanceId: a, meter: 'storage_gb_hours', quantity: 8, bucket: hour(11) }],
      NOW,
    );
    await aggregateUsage(pool, period);
    const rerun = await aggregates();
    assert.deepEqual(rerun[0], ['a', 'storage_gb_hours', 100]);
    assert.equal(rerun.length, 3, 'replaced, not added');
  });
});
