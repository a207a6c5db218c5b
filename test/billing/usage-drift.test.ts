/**
 * The drift check against a real PostgreSQL and, for Stripe, the real `stripe` client against
 * stripe-mock. stripe-mock is stateless: it lists one fixture meter (`test-meter-event-name`)
 * and answers every event summary with the fixture value 25. So the tests use it as it is: a
 * customer whose ledger does not say 25 is flagged, one whose ledger says 25 is not; to reach
 * the fixture meter under our event name, `fixtureMeterAs` (a renaming wrapper, named so)
 * renames it. The `last` aggregation is checked against `meterSummariesStandIn`, a stand-in
 * whose figures the test chooses.
 */
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { after, before, beforeEach, describe, it } from 'node:test';
import { parseCrontab } from 'graphile-worker';
import pg from 'pg';
import type Stripe from 'stripe';
import {
  checkUsageDrift,
  driftRangeOf,
  type MeterSummaries,
  makeStripeMeterSummaries,
  USAGE_DRIFT_TASK,
  usageDriftTasks,
} from '../../billing/usage-drift.ts';
import { makeLogger } from '../../core/log.ts';
import { makeTestDatabase, type TestDatabase } from '../support/db.ts';
import { createOrganization, createUserWithToken } from '../support/factories.ts';
import {
  type StripeMock,
  startStripeMock,
  stripeMockClient,
  stripeMockSkipReason,
} from '../support/stripe-mock.ts';

const NOW = new Date('2026-11-20T12:30:00Z');
const hour = (h: number) => new Date(Date.parse('2026-11-20T00:00:00Z') + h * 3_600_000);
const day = (d: number) => new Date(Date.UTC(2026, 10, d));

describe('driftRangeOf', () => {
  it('is the current month up to the start of the previous hour', () => {
    assert.deepEqual(driftRangeOf(NOW), { start: new Date('2026-11-01T00:00:00Z'), end: hour(11) });
    const first = driftRangeOf(new Date('2026-12-01T00:10:00Z'));
    assert.ok(first.end <= first.start, 'nothing closed yet on the first hour of a month');
  });
});

describe('usage drift (PostgreSQL, stripe-mock)', { skip: stripeMockSkipReason() }, () => {
  let database: TestDatabase;
  let pool: pg.Pool;
  let mock: StripeMock;
  let stripe: Stripe;
  let planId: string;
  let logged: string[];
  const log = () => {
    const sink = new PassThrough();
    sink.on('data', (chunk: Buffer) => logged.push(chunk.toString('utf8')));
    return makeLogger({ log: { level: 'info', format: 'json' } }, sink);
  };

  before(async () => {
    [database, mock] = await Promise.all([makeTestDatabase(), startStripeMock()]);
    pool = new pg.Pool({ connectionString: database.url, max: 4 });
    stripe = stripeMockClient(mock);
    planId = (await database.db.plan.findUniqueOrThrow({ where: { code: 'community' } })).id;
  });
  after(async () => {
    await pool?.end();
    await Promise.all([database?.release(), mock?.release()]);
  });
  beforeEach(async () => {
    await pool.query(`delete from "UsageEvent"`);
    await pool.query(`delete from "Instance"`);
    await pool.query(`delete from "Organization"`);
    logged = [];
  });

  /** An organization with a Stripe customer and `servers` instances. */
  const customer = async (name: string, servers: number) => {
    const { userId } = await createUserWithToken(database.db);
    const organizationId = await createOrganization(database.db, userId);
    await database.db.organization.update({
      where: { id: organizationId },
      data: { stripeCustomerId: `cus_${name}` },
    });
    const ids: string[] = [];
    for (let n = 0; n < servers; n++) {
      const instance = await database.db.instance.create({
        data: {
          organizationId,
          planId,
          domain: `${name}${n}.drift.woolly.test`,
          mastodonVersion: 'v4.5.11',
          status: 'running',
          spec: {},
        },
      });
      ids.push(instance.id);
    }
    return ids;
  };
  /** A ledger entry as the reporter leaves it. */
  const entry = (
    instanceId: string,
    meter: string,
    at: Date,
    quantity: number,
    state: { reported?: boolean; cancelled?: boolean; credited?: boolean; revision?: number } = {},
  ) =>
    pool.query(
      `insert into "UsageEvent" ("instanceId", meter, quantity, "occurredAt", "idempotencyKey", revision,
                                 "reportedAt", "cancelledAt", "creditedAt", "creditMinor")
       values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
      [
        instanceId,
        meter,
        quantity,
        at,
        `${meter}:${instanceId}:${at.toISOString()}${state.revision ? `#r${state.revision}` : ''}`,
        state.revision ?? 0,
        (state.reported ?? true) ? NOW : null,
        state.cancelled ? NOW : null,
        state.credited ? NOW : null,
        state.credited ? -1 : null,
      ],
    );
  const driftEvents = async () =>
    (
      await pool.query<{ instanceId: string; message: string; data: Record<string, unknown> }>(
        `select "instanceId", message, data from "Event" where type = 'billing.usage_drift' order by "instanceId"`,
      )
    ).rows;

  /** Stripe's meters through the real client, stripe-mock's fixture meter renamed to `eventName`. */
  const fixtureMeterAs = (eventName: string, asked: unknown[] = []): MeterSummaries => {
    const real = makeStripeMeterSummaries(stripe);
    return {
      async meterIds() {
        const ids = await real.meterIds();
        const fixture = ids.get('test-meter-event-name');
        return new Map(fixture ? [[eventName, fixture]] : []);
      },
      async total(meterId, query) {
        asked.push({ meterId, ...query });
        return real.total(meterId, query);
      },
    };
  };

  it('stripe-mock has none of our meters: nothing is compared, each is logged, no Event', async () => {
    const [ada = ''] = await customer('ada', 1);
    await entry(ada, 'storage_gb_hours', hour(2), 7);
    const result = await checkUsageDrift({
      pool,
      summaries: makeStripeMeterSummaries(stripe),
      log: log(),
      now: () => NOW,
    });
    assert.deepEqual(result, { compared: 0, drifted: 0, events: 0, failed: 3 });
    assert.deepEqual(await driftEvents(), []);
    assert.equal(
      logged.filter((line) => line.includes('Stripe has no active meter for this event name')).length,
      3,
    );
  });

  it('flags a customer whose meter differs from the fixture 25, attributed to its one server, once; agreeing customers are not', async () => {
    const [ada = ''] = await customer('ada', 1);
    const [bob1 = '', bob2 = ''] = await customer('bob', 2);
    const [cy1 = '', cy2 = ''] = await customer('cy', 2);
    // ada: 7 + 7 + 7 (an original whose late revision was credited: the meter keeps it) + 2
    // (the revision of a cancelled 50); an unreported 100 and an hour still open do not count.
    await entry(ada, 'storage_gb_hours', hour(1), 7);
    await entry(ada, 'storage_gb_hours', hour(2), 7);
    await entry(ada, 'storage_gb_hours', hour(3), 7);
    await entry(ada, 'storage_gb_hours', hour(3), 3, { revision: 1, credited: true });
    await entry(ada, 'storage_gb_hours', hour(4), 50, { cancelled: true });
    await entry(ada, 'storage_gb_hours', hour(4), 2, { revision: 1 });
    await entry(ada, 'storage_gb_hours', hour(5), 100, { reported: false });
    await entry(ada, 'storage_gb_hours', hour(11), 40);
    // bob: two servers, 10 + 15 = the fixture's 25.
    await entry(bob1, 'storage_gb_hours', hour(1), 10);
    await entry(bob2, 'storage_gb_hours', hour(1), 15);
    // cy: two servers, 10 + 5.
    await entry(cy1, 'storage_gb_hours', hour(1), 10);
    await entry(cy2, 'storage_gb_hours', hour(2), 5);
    const asked: unknown[] = [];
    const run = () =>
      checkUsageDrift({
        pool,
        summaries: fixtureMeterAs('storage_gb_hours', asked),
        log: log(),
        now: () => NOW,
      });
    assert.deepEqual(await run(), { compared: 3, drifted: 2, events: 3, failed: 6 });
    assert.deepEqual(
      asked.map((query) => JSON.stringify(query)).sort(),
      ['cus_ada', 'cus_bob', 'cus_cy'].map((name) =>
        JSON.stringify({
          meterId: 'meter_123',
          customer: name,
          start: '2026-11-01T00:00:00.000Z',
          end: hour(11),
        }),
      ),
      "each customer's summary of the fixture meter over the closed hours of the month",
    );
    const events = await driftEvents();
    const ofInstance = (id: string) => events.find((event) => event.instanceId === id);
    assert.deepEqual(ofInstance(ada)?.data, {
      customer: 'cus_ada',
      meter: 'storage_gb_hours',
      periodStart: '2026-11-01T00:00:00.000Z',
      periodEnd: '2026-11-20T11:00:00.000Z',
      local: 23,
      stripe: 25,
      instanceLocal: 23,
      attributed: true,
    });
    assert.match(ofInstance(ada)?.message ?? '', /Stripe holds 25, the ledger 23$/);
    assert.deepEqual(
      [cy1, cy2].map((id) => [ofInstance(id)?.data.instanceLocal, ofInstance(id)?.data.attributed]),
      [
        [10, false],
        [5, false],
      ],
    );
    assert.equal(ofInstance(bob1), undefined);
    assert.equal(ofInstance(bob2), undefined);
    assert.deepEqual((await run()).events, 0, 'the same difference is not written again');
    assert.equal((await driftEvents()).length, 3);
  });

  it('a `last` meter is compared as Stripe aggregates it: the latest event of the customer (meterSummariesStandIn)', async () => {
    const [one = '', two = ''] = await customer('dee', 2);
    await entry(one, 'active_users', day(18), 120);
    await entry(two, 'active_users', day(19), 80);
    await entry(one, 'active_users', day(20), 500, { reported: false });
    let stripeSays = 80;
    const meterSummariesStandIn: MeterSummaries = {
      meterIds: async () => new Map([['active_users', 'mtr_active']]),
      total: async () => stripeSays,
    };
    const run = () => checkUsageDrift({ pool, summaries: meterSummariesStandIn, log: log(), now: () => NOW });
    assert.deepEqual(await run(), { compared: 1, drifted: 0, events: 0, failed: 2 });
    stripeSays = 120;
    assert.deepEqual(await run(), { compared: 1, drifted: 1, events: 2, failed: 2 });
    assert.deepEqual(
      (await driftEvents()).map((event) => [event.data.local, event.data.stripe]),
      [
        [80, 120],
        [80, 120],
      ],
    );
  });

  it('the job runs daily under a job key and logs its result', async () => {
    const drift = usageDriftTasks({ pool, log: log(), summaries: makeStripeMeterSummaries(stripe) });
    const [entryLine] = parseCrontab(drift.crontab);
    assert.equal(entryLine?.task, USAGE_DRIFT_TASK);
    assert.equal(entryLine?.options.jobKey, USAGE_DRIFT_TASK);
    assert.deepEqual(
      [
        entryLine?.match({ min: 40, hour: 2, date: 20, month: 11, dow: 5 }),
        entryLine?.match({ min: 40, hour: 3, date: 20, month: 11, dow: 5 }),
      ],
      [true, false],
    );
    await customer('eve', 1);
    await drift.tasks[USAGE_DRIFT_TASK]?.({}, {} as never);
    assert.match(logged.join(''), /usage drift checked/);
  });
});
