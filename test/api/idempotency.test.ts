import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import { deleteExpiredIdempotencyKeys } from '../../api/idempotency.ts';
import { call, startTestApp, type TestApp } from '../support/app.ts';
import { makeTestDatabase, type TestDatabase } from '../support/db.ts';
import { createOrganization, createUserWithToken } from '../support/factories.ts';

let database: TestDatabase;
let app: TestApp;
let user: { userId: string; token: string };
let org: string;

before(async () => {
  database = await makeTestDatabase();
  app = await startTestApp(database);
  user = await createUserWithToken(database.db);
  org = await createOrganization(database.db, user.userId);
});
after(async () => {
  await app.release();
  await database.release();
});

const order = () => ({
  organizationId: org,
  plan: 'starter',
  domain: `k${randomUUID().slice(0, 8)}.woolly.test`,
});
const post = (body: unknown, key: string, token = user.token) =>
  call(`${app.url}/v1/orders`, { token, body, headers: { 'idempotency-key': key } });
const orders = () => database.db.order.count();

test('the same key and body replay the stored response and create nothing more', async () => {
  const key = randomUUID();
  const body = order();
  const first = await post(body, key);
  assert.equal(first.status, 201);
  assert.equal(first.headers.get('idempotent-replayed'), null);
  const count = await orders();
  const second = await post({ ...body }, key);
  assert.equal(second.status, 201);
  assert.equal(second.headers.get('idempotent-replayed'), 'true');
  assert.deepEqual(second.body, first.body);
  assert.equal(second.headers.get('location'), first.headers.get('location'));
  assert.equal(await orders(), count);
});

test('key order in the body does not matter', async () => {
  const key = randomUUID();
  const { organizationId, plan, domain } = order();
  const first = await post({ organizationId, plan, domain }, key);
  const second = await post({ domain, plan, organizationId }, key);
  assert.equal(second.headers.get('idempotent-replayed'), 'true');
  assert.equal(second.body.id, first.body.id);
});

test('the same key with another body is refused with 422 and changes nothing', async () => {
  const key = randomUUID();
  await post(order(), key);
  const count = await orders();
  const second = await post(order(), key);
  assert.equal(second.status, 422);
  assert.equal(second.body.code, 'unprocessable');
  assert.equal(await orders(), count);
});

test('an error response is stored and replayed too; a validation failure is not', async () => {
  const taken = order();
  assert.equal((await post(taken, randomUUID())).status, 201);
  const key = randomUUID();
  const conflict = await post(taken, key);
  assert.equal(conflict.status, 409);
  const replay = await post(taken, key);
  assert.equal(replay.status, 409);
  assert.equal(replay.headers.get('idempotent-replayed'), 'true');
  assert.equal(replay.body.requestId, conflict.body.requestId, 'the very same problem document');

  const validationKey = randomUUID();
  const invalid = await post({ ...order(), plan: 7 }, validationKey);
  assert.equal(invalid.status, 400);
  const valid = await post(order(), validationKey);
  assert.equal(valid.status, 201, 'the key was not spent on a request that never ran');
});

test('keys are per caller: another user may use the same key', async () => {
  const other = await createUserWithToken(database.db);
  const otherOrg = await createOrganization(database.db, other.userId);
  const key = randomUUID();
  const mine = await post(order(), key);
  const theirs = await post({ ...order(), organizationId: otherOrg }, key, other.token);
  assert.equal(theirs.status, 201);
  assert.notEqual(theirs.body.id, mine.body.id);
  assert.equal(theirs.headers.get('idempotent-replayed'), null);
});

test('concurrent requests with one key create exactly one order', async () => {
  const key = randomUUID();
  const body = order();
  const count = await orders();
  const responses = await Promise.all(Array.from({ length: 6 }, () => post(body, key)));
  assert.equal(await orders(), count + 1);
  const statuses = new Set(responses.map((r) => r.status));
  assert.ok(
    [...statuses].every((s) => s === 201 || s === 409),
    [...statuses].join(),
  );
  const created = responses.filter((r) => r.status === 201);
  assert.ok(created.every((r) => r.body.id === created[0]?.body.id));
});

test('after 24 hours a key is forgotten and runs again', async () => {
  const key = randomUUID();
  await post(order(), key);
  await database.db.idempotencyRecord.updateMany({
    where: { key },
    data: { createdAt: new Date(Date.now() - 25 * 3600 * 1000) },
  });
  const again = await post(order(), key);
  assert.equal(again.status, 201);
  assert.equal(again.headers.get('idempotent-replayed'), null);
});

test('a malformed key is a 400', async () => {
  for (const key of ['x'.repeat(256), 'clé-unicode']) {
    const response = await post(order(), key);
    assert.equal(response.status, 400, key);
    assert.equal(response.body.errors[0].field, 'Idempotency-Key');
  }
});

test('the hourly cleanup deletes only keys older than 24 hours', async () => {
  const fresh = randomUUID();
  const stale = randomUUID();
  await post(order(), fresh);
  await post(order(), stale);
  await database.db.idempotencyRecord.updateMany({
    where: { key: stale },
    data: { createdAt: new Date(Date.now() - 25 * 3600 * 1000) },
  });
  assert.ok((await deleteExpiredIdempotencyKeys(database.db)) >= 1);
  assert.equal(await database.db.idempotencyRecord.count({ where: { key: stale } }), 0);
  assert.equal(await database.db.idempotencyRecord.count({ where: { key: fresh } }), 1);
});
