import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { call, startTestApp, type TestApp } from '../support/app.ts';
import { makeTestDatabase, type TestDatabase } from '../support/db.ts';
import { createOrganization, createUserWithToken } from '../support/factories.ts';

let database: TestDatabase;
let app: TestApp;
let owner: { userId: string; token: string };
let org: string;

before(async () => {
  database = await makeTestDatabase();
  app = await startTestApp(database);
  owner = await createUserWithToken(database.db);
  org = await createOrganization(database.db, owner.userId);
});
after(async () => {
  await app.release();
  await database.release();
});

test('an order leaves an audit entry with its actor and request id, seen by owners and staff only', async () => {
  const placed = await call(`${app.url}/v1/orders`, {
    token: owner.token,
    body: { organizationId: org, plan: 'starter', domain: 'audited.woolly.test' },
    headers: { 'x-request-id': 'audit-trail-1' },
  });
  assert.equal(placed.status, 201);
  const log = await call(`${app.url}/v1/organizations/${org}/audit-log?action=order.create`, {
    token: owner.token,
  });
  assert.equal(log.status, 200);
  const [entry] = log.body.data;
  assert.equal(entry.targetId, placed.body.id);
  assert.equal(entry.requestId, 'audit-trail-1');
  assert.equal(entry.actorUserId, owner.userId);
  assert.match(entry.actor, /^token:/);
  assert.equal(entry.data.domain, 'audited.woolly.test');

  const viewer = await createUserWithToken(database.db);
  await database.db.membership.create({
    data: { organizationId: org, userId: viewer.userId, role: 'viewer' },
  });
  const outsider = await createUserWithToken(database.db);
  for (const token of [viewer.token, outsider.token]) {
    assert.equal((await call(`${app.url}/v1/organizations/${org}/audit-log`, { token })).status, 404);
  }
  assert.equal((await call(`${app.url}/v1/audit-log`, { token: owner.token })).status, 403);
  const staff = await createUserWithToken(database.db, { staffRole: 'ops' });
  const fleet = await call(`${app.url}/v1/audit-log?organizationId=${org}`, { token: staff.token });
  assert.ok(fleet.body.data.some((e: { targetId: string }) => e.targetId === placed.body.id));
});

test('the log pages newest first with a cursor and filters by target type', async () => {
  for (let i = 0; i < 3; i++) {
    await call(`${app.url}/v1/tokens`, {
      token: owner.token,
      body: { name: `t${i}`, scopes: ['instances:read'] },
    });
  }
  const staff = await createUserWithToken(database.db, { staffRole: 'admin' });
  const ids: string[] = [];
  let cursor: string | null = null;
  do {
    const query: string = `targetType=api_token&limit=2${cursor ? `&cursor=${cursor}` : ''}`;
    const page = await call(`${app.url}/v1/audit-log?${query}`, { token: staff.token });
    assert.ok(page.body.data.every((e: { targetType: string }) => e.targetType === 'api_token'));
    ids.push(...page.body.data.map((e: { id: string }) => e.id));
    cursor = page.body.nextCursor;
  } while (cursor);
  assert.equal(ids.length, 3);
  assert.deepEqual(
    ids,
    [...ids].sort((a, b) => Number(BigInt(b) - BigInt(a))),
  );
});

test('no audit entry holds a token secret', async () => {
  const created = await call(`${app.url}/v1/tokens`, {
    token: owner.token,
    body: { name: 'secret-check', scopes: ['instances:read'] },
  });
  const rows = JSON.stringify(await database.db.auditLog.findMany(), (_k, v) =>
    typeof v === 'bigint' ? v.toString() : v,
  );
  assert.ok(!rows.includes(created.body.token));
});

test('a bad filter or cursor is a 400', async () => {
  const staff = await createUserWithToken(database.db, { staffRole: 'admin' });
  for (const query of ['cursor=abc', 'action=DROP%20TABLE', 'limit=0', 'organizationId=nope']) {
    const response = await call(`${app.url}/v1/audit-log?${query}`, { token: staff.token });
    assert.equal(response.status, 400, query);
  }
});
