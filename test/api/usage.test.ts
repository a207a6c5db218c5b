/**
 * Metered usage through the HTTP API: one server's a day per meter, for members with
 * billing:read and staff, with what its plan includes; the fleet's for staff. Only the latest
 * revision of a corrected bucket counts; bad ranges are refused with problem+json.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import type { Pool } from 'pg';
import { recordUsage, type UsageSample } from '../../billing/metering.ts';
import { correctUsage } from '../../billing/usage-corrections.ts';
import { makePool } from '../../core/db.ts';
import { PLAN_CATALOG } from '../../core/domain/catalog.ts';
import { call, startTestApp, type TestApp } from '../support/app.ts';
import { makeTestDatabase, type TestDatabase } from '../support/db.ts';
import { createOrganization, createUserWithToken } from '../support/factories.ts';

let database: TestDatabase;
let pool: Pool;
let app: TestApp;
const tokens = { viewer: '', reader: '', outsider: '', staff: '' };
let own = '';
let foreign = '';

const at = (iso: string) => new Date(`${iso}Z`);
const RANGE = 'from=2026-03-01&to=2026-03-03';

async function server(organizationId: string) {
  const { id: planId } = await database.db.plan.findUniqueOrThrow({ where: { code: 'community' } });
  const instance = await database.db.instance.create({
    data: {
      organizationId,
      planId,
      domain: `u-${randomUUID().slice(0, 8)}.woolly.test`,
      mastodonVersion: 'v4.5.11',
      status: 'running',
      spec: {},
    },
  });
  return instance.id;
}

before(async () => {
  database = await makeTestDatabase();
  pool = makePool(database.url);
  app = await startTestApp(database);
  const { db } = database;
  const viewer = await createUserWithToken(db, { scopes: ['billing:read'] });
  const reader = await createUserWithToken(db, { scopes: ['instances:read'] });
  const outsider = await createUserWithToken(db, { scopes: ['billing:read'] });
  tokens.viewer = viewer.token;
  tokens.reader = reader.token;
  tokens.outsider = outsider.token;
  tokens.staff = (await createUserWithToken(db, { staffRole: 'ops' })).token;
  const org = await createOrganization(db, viewer.userId, 'viewer');
  await db.membership.create({ data: { organizationId: org, userId: reader.userId, role: 'owner' } });
  own = await server(org);
  foreign = await server(await createOrganization(db, outsider.userId));

  const sample = (instanceId: string, meter: UsageSample['meter'], bucket: string, quantity: number) => ({
    instanceId,
    meter,
    bucket: at(bucket),
    quantity,
  });
  await recordUsage(
    pool,
    [
      sample(own, 'storage_gb_hours', '2026-03-01T00:00:00', 10),
      sample(own, 'storage_gb_hours', '2026-03-01T23:00:00', 12),
      sample(own, 'search_hours', '2026-03-02T05:00:00', 1),
      sample(own, 'active_users', '2026-03-02T00:00:00', 40),
      // The day after the range: not counted.
      sample(own, 'storage_gb_hours', '2026-03-04T00:00:00', 99),
      sample(foreign, 'storage_gb_hours', '2026-03-01T05:00:00', 100),
      sample(foreign, 'active_users', '2026-03-02T00:00:00', 7),
    ],
    at('2026-03-04T12:00:00').getTime(),
  );
  await correctUsage(pool, {
    instanceId: own,
    meter: 'active_users',
    bucket: at('2026-03-02T00:00:00'),
    quantity: 42,
    reason: 'the sampler counted bots',
  });
});

after(async () => {
  await app.release();
  await pool.end();
  await database.release();
});

const days = (quantities: number[]) =>
  quantities.map((quantity, i) => ({ date: `2026-03-0${i + 1}`, quantity }));

test('a member with billing:read reads the server’s usage a day per meter, corrections counted once, with what the plan includes', async () => {
  const response = await call(`${app.url}/v1/instances/${own}/usage?${RANGE}`, { token: tokens.viewer });
  assert.equal(response.status, 200, JSON.stringify(response.body));
  const community = PLAN_CATALOG.find((plan) => plan.code === 'community');
  assert.deepEqual(response.body, {
    from: '2026-03-01',
    to: '2026-03-03',
    limits: community?.limits,
    meters: [
      { meter: 'storage_gb_hours', unit: 'GB-hours', included: 100 * 730, days: days([22, 0, 0]) },
      { meter: 'search_hours', unit: 'hours', included: 0, days: days([0, 1, 0]) },
      { meter: 'active_users', unit: 'users', included: 1000, days: days([0, 42, 0]) },
    ],
  });
});

test('staff read any server’s usage; outsiders are told it is not there; billing:read is needed', async () => {
  const staff = await call(`${app.url}/v1/instances/${foreign}/usage?${RANGE}`, { token: tokens.staff });
  assert.equal(staff.status, 200);
  assert.deepEqual(staff.body.meters[0].days, days([100, 0, 0]));

  const outsider = await call(`${app.url}/v1/instances/${own}/usage?${RANGE}`, { token: tokens.outsider });
  assert.equal(outsider.status, 404);
  const missing = await call(`${app.url}/v1/instances/${randomUUID()}/usage`, { token: tokens.viewer });
  assert.equal(missing.status, 404);
  const reader = await call(`${app.url}/v1/instances/${own}/usage`, { token: tokens.reader });
  assert.equal(reader.status, 403, 'an owner’s token without billing:read');
});

test('by default the usage covers the 30 days ending today', async () => {
  const response = await call(`${app.url}/v1/instances/${own}/usage`, { token: tokens.viewer });
  const today = new Date().toISOString().slice(0, 10);
  assert.equal(response.body.to, today);
  for (const meter of response.body.meters) {
    assert.equal(meter.days.length, 30);
    assert.equal(meter.days.at(-1).date, today);
    assert.equal(meter.days[0].date, response.body.from);
  }
  const fromOnly = await call(`${app.url}/v1/instances/${own}/usage?to=2026-03-03`, { token: tokens.viewer });
  assert.equal(fromOnly.body.from, '2026-02-02', 'without from, 30 days ending at to');
});

test('staff read the fleet’s usage summed over servers, without plan figures; customers may not', async () => {
  const response = await call(`${app.url}/v1/billing/usage?${RANGE}`, { token: tokens.staff });
  assert.equal(response.status, 200);
  assert.equal(response.body.limits, null);
  assert.deepEqual(
    response.body.meters.map((m: { meter: string; included: null; days: unknown }) => [
      m.meter,
      m.included,
      m.days,
    ]),
    [
      ['storage_gb_hours', null, days([122, 0, 0])],
      ['search_hours', null, days([0, 1, 0])],
      ['active_users', null, days([0, 49, 0])],
    ],
  );
  for (const token of [tokens.viewer, tokens.reader]) {
    const refused = await call(`${app.url}/v1/billing/usage?${RANGE}`, { token });
    assert.equal(refused.status, 403);
    assert.equal(refused.body.code, 'forbidden');
  }
});

test('ranges that end before they start, run past 366 days, or are not dates are refused with problem+json', async () => {
  const cases: [string, number][] = [
    ['from=2026-03-03&to=2026-03-01', 422],
    ['from=2025-01-01&to=2026-03-01', 422],
    ['from=2026-02-30', 400],
    ['to=yesterday', 400],
  ];
  for (const [query, status] of cases) {
    for (const path of [`/v1/instances/${own}/usage`, '/v1/billing/usage']) {
      const response = await call(`${app.url}${path}?${query}`, { token: tokens.staff });
      assert.equal(response.status, status, `${path}?${query}`);
      assert.match(response.headers.get('content-type') ?? '', /^application\/problem\+json/);
      assert.ok(response.body.errors.length > 0);
    }
  }
  const sameDay = await call(`${app.url}/v1/billing/usage?from=2026-03-02&to=2026-03-02`, {
    token: tokens.staff,
  });
  assert.deepEqual(sameDay.body.meters[2].days, [{ date: '2026-03-02', quantity: 49 }]);
});
