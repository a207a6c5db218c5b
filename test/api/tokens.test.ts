import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { call, startTestApp, type TestApp } from '../support/app.ts';
import { makeTestDatabase, type TestDatabase } from '../support/db.ts';
import { createUserWithToken } from '../support/factories.ts';

let database: TestDatabase;
let app: TestApp;

before(async () => {
  database = await makeTestDatabase();
  app = await startTestApp(database);
});
after(async () => {
  await app.release();
  await database.release();
});

test('a new token is shown once, stored hashed, works, and lists without its secret', async () => {
  const user = await createUserWithToken(database.db);
  const created = await call(`${app.url}/v1/tokens`, {
    token: user.token,
    body: { name: 'deploy bot', scopes: ['instances:read'], expiresInDays: 30 },
  });
  assert.equal(created.status, 201);
  assert.match(created.body.token, /^wly_/);
  assert.equal(created.body.prefix, created.body.token.slice(0, 12));
  const expires = Date.parse(created.body.expiresAt) - Date.now();
  assert.ok(expires > 29 * 86_400_000 && expires <= 30 * 86_400_000);

  const row = await database.db.apiToken.findUniqueOrThrow({ where: { id: created.body.id } });
  assert.notEqual(row.tokenHash, created.body.token);
  assert.ok(!JSON.stringify(row).includes(created.body.token));

  const withNew = await call(`${app.url}/v1/instances`, { token: created.body.token });
  assert.equal(withNew.status, 200);
  const writeWithNew = await call(`${app.url}/v1/organizations`, {
    token: created.body.token,
    body: { name: 'x', slug: 'x-read-only' },
  });
  assert.equal(writeWithNew.status, 403, 'the new token has only the scope it was given');

  const list = await call(`${app.url}/v1/tokens`, { token: user.token });
  assert.deepEqual(
    list.body.data.map((token: { name: string }) => token.name),
    ['deploy bot', 'test'],
  );
  assert.ok(!JSON.stringify(list.body).includes(created.body.token));
  assert.equal(
    await database.db.auditLog.count({ where: { action: 'token.create', targetId: created.body.id } }),
    1,
  );
});

test('a token cannot mint scopes its creator lacks, and only staff mint admin', async () => {
  const reader = await createUserWithToken(database.db, { scopes: ['instances:read'] });
  const escalate = await call(`${app.url}/v1/tokens`, {
    token: reader.token,
    body: { name: 'sneaky', scopes: ['instances:write'] },
  });
  assert.equal(escalate.status, 403);
  const customer = await createUserWithToken(database.db);
  const admin = await call(`${app.url}/v1/tokens`, {
    token: customer.token,
    body: { name: 'root', scopes: ['admin'] },
  });
  assert.equal(admin.status, 403);
  const staff = await createUserWithToken(database.db, { staffRole: 'admin' });
  const staffAdmin = await call(`${app.url}/v1/tokens`, {
    token: staff.token,
    body: { name: 'ops', scopes: ['admin'] },
  });
  assert.equal(staffAdmin.status, 201);
  assert.equal(await database.db.apiToken.count({ where: { name: { in: ['sneaky', 'root'] } } }), 0);
});

test('revoking a token stops it at once; another user cannot revoke it (404)', async () => {
  const user = await createUserWithToken(database.db);
  const created = await call(`${app.url}/v1/tokens`, {
    token: user.token,
    body: { name: 'short-lived', scopes: ['instances:read'] },
  });
  const stranger = await createUserWithToken(database.db);
  const foreign = await call(`${app.url}/v1/tokens/${created.body.id}`, {
    method: 'DELETE',
    token: stranger.token,
  });
  assert.equal(foreign.status, 404);
  assert.equal((await call(`${app.url}/v1/instances`, { token: created.body.token })).status, 200);

  const revoked = await call(`${app.url}/v1/tokens/${created.body.id}`, {
    method: 'DELETE',
    token: user.token,
  });
  assert.equal(revoked.status, 204);
  assert.equal((await call(`${app.url}/v1/instances`, { token: created.body.token })).status, 401);
  const again = await call(`${app.url}/v1/tokens/${created.body.id}`, {
    method: 'DELETE',
    token: user.token,
  });
  assert.equal(again.status, 204, 'revoking twice is harmless');
  assert.equal(
    await database.db.auditLog.count({ where: { action: 'token.revoke', targetId: created.body.id } }),
    1,
  );
});

test('bad token requests are refused and create nothing', async () => {
  const user = await createUserWithToken(database.db);
  const before = await database.db.apiToken.count();
  for (const body of [
    { name: '', scopes: ['instances:read'] },
    { name: '   ', scopes: ['instances:read'] },
    { name: 'x', scopes: [] },
    { name: 'x', scopes: ['root'] },
    { name: 'x', scopes: ['instances:read', 'instances:read'] },
    { name: 'x', scopes: ['instances:read'], expiresInDays: 0 },
    { name: 'x', scopes: ['instances:read'], expiresInDays: 366 },
    { name: 'x', scopes: ['instances:read'], extra: true },
  ]) {
    const response = await call(`${app.url}/v1/tokens`, { token: user.token, body });
    assert.equal(response.status, 400, JSON.stringify(body));
  }
  assert.equal(await database.db.apiToken.count(), before);
});
