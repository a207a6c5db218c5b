/**
 * Listing orders through the HTTP API: members see their organizations’ orders, staff all,
 * newest first, filtered by status and organization, a page at a time; bad input is refused
 * with problem+json.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import { call, startTestApp, type TestApp } from '../support/app.ts';
import { makeTestDatabase, type TestDatabase } from '../support/db.ts';
import { createOrganization, createUserWithToken } from '../support/factories.ts';

let database: TestDatabase;
let app: TestApp;
const tokens = { viewer: '', outsider: '', staff: '' };
let org = '';
let otherOrg = '';
let foreignOrg = '';
/** The viewer's orders, newest first. */
let mine: string[] = [];
let foreignOrder = '';

async function order(organizationId: string, status: 'pending_payment' | 'paid' | 'cancelled', at: Date) {
  const { id: planId } = await database.db.plan.findUniqueOrThrow({ where: { code: 'starter' } });
  const created = await database.db.order.create({
    data: {
      organizationId,
      planId,
      domain: `o-${randomUUID().slice(0, 8)}.woolly.test`,
      addonCodes: [],
      status,
      totalMinor: 1900,
      currency: 'eur',
      createdAt: at,
    },
  });
  return created.id;
}

before(async () => {
  database = await makeTestDatabase();
  app = await startTestApp(database);
  const { db } = database;
  const viewer = await createUserWithToken(db);
  const outsider = await createUserWithToken(db);
  tokens.viewer = viewer.token;
  tokens.outsider = outsider.token;
  tokens.staff = (await createUserWithToken(db, { staffRole: 'admin' })).token;
  org = await createOrganization(db, viewer.userId, 'viewer');
  otherOrg = await createOrganization(db, viewer.userId, 'billing');
  foreignOrg = await createOrganization(db, outsider.userId);
  const at = (minute: number) => new Date(Date.UTC(2026, 10, 1, 12, minute));
  // Two orders made in the same millisecond: the id decides their order, and paging must not skip one.
  const tied = [await order(org, 'paid', at(3)), await order(otherOrg, 'pending_payment', at(3))]
    .sort()
    .reverse();
  mine = [
    await order(otherOrg, 'cancelled', at(4)),
    ...tied,
    await order(org, 'pending_payment', at(2)),
    await order(org, 'paid', at(1)),
  ];
  foreignOrder = await order(foreignOrg, 'paid', at(5));
});

after(async () => {
  await app.release();
  await database.release();
});

const ids = (body: { data: { id: string }[] }) => body.data.map((order) => order.id);

test("a member lists their organizations' orders, newest first; staff list everyone's", async () => {
  const response = await call(`${app.url}/v1/orders`, { token: tokens.viewer });
  assert.equal(response.status, 200);
  assert.deepEqual(ids(response.body), mine);
  assert.equal(response.body.nextCursor, null);
  assert.equal(response.body.data[0].total.amountMinor, 1900);

  const outsider = await call(`${app.url}/v1/orders`, { token: tokens.outsider });
  assert.deepEqual(ids(outsider.body), [foreignOrder]);
  const staff = await call(`${app.url}/v1/orders`, { token: tokens.staff });
  assert.deepEqual(ids(staff.body), [foreignOrder, ...mine]);
});

test('orders filter by status and by organization; a foreign organization lists nothing', async () => {
  const paid = await call(`${app.url}/v1/orders?status=paid`, { token: tokens.viewer });
  assert.ok(paid.body.data.length > 0);
  assert.ok(paid.body.data.every((o: { status: string }) => o.status === 'paid'));
  assert.ok(!ids(paid.body).includes(foreignOrder));

  const inOrg = await call(`${app.url}/v1/orders?organizationId=${otherOrg}`, { token: tokens.viewer });
  assert.ok(inOrg.body.data.every((o: { organizationId: string }) => o.organizationId === otherOrg));
  assert.equal(inOrg.body.data.length, 2);

  const both = await call(`${app.url}/v1/orders?organizationId=${org}&status=pending_payment`, {
    token: tokens.viewer,
  });
  assert.equal(both.body.data.length, 1);

  const foreign = await call(`${app.url}/v1/orders?organizationId=${foreignOrg}`, { token: tokens.viewer });
  assert.deepEqual(foreign.body, { data: [], nextCursor: null });
  const staff = await call(`${app.url}/v1/orders?organizationId=${foreignOrg}`, { token: tokens.staff });
  assert.deepEqual(ids(staff.body), [foreignOrder]);
});

test('pages follow nextCursor to the end, each order once, ties in time included', async () => {
  const seen: string[] = [];
  let cursor: string | null = null;
  do {
    const query: string = cursor ? `&cursor=${cursor}` : '';
    const page = await call(`${app.url}/v1/orders?limit=2${query}`, { token: tokens.viewer });
    assert.equal(page.status, 200);
    assert.ok(page.body.data.length <= 2);
    seen.push(...ids(page.body));
    cursor = page.body.nextCursor;
  } while (cursor);
  assert.deepEqual(seen, mine);
});

test('bad filters, limits and cursors are refused with problem+json', async () => {
  for (const query of [
    'status=shipped',
    'organizationId=not-a-uuid',
    'limit=0',
    'limit=201',
    'cursor=bm90IGEgY3Vyc29y',
  ]) {
    const response = await call(`${app.url}/v1/orders?${query}`, { token: tokens.viewer });
    assert.equal(response.status, 400, query);
    assert.equal(response.body.code, 'validation_failed', query);
    assert.match(response.headers.get('content-type') ?? '', /^application\/problem\+json/);
  }
  assert.equal((await call(`${app.url}/v1/orders`)).status, 401);
});
