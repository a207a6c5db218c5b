/**
 * Input PostgreSQL or Node's HTTP parser cannot take, refused as problem+json like any
 * other bad request, and nothing written.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { call, startTestApp, type TestApp } from '../support/app.ts';
import { makeTestDatabase, type TestDatabase } from '../support/db.ts';
import { createUserWithToken } from '../support/factories.ts';

let database: TestDatabase;
let app: TestApp;
let token: string;

before(async () => {
  database = await makeTestDatabase();
  app = await startTestApp(database);
  token = (await createUserWithToken(database.db)).token;
});

after(async () => {
  await app.release();
  await database.release();
});

test('U+0000 in a body, a nested field or the query is a 400 naming the field, and writes nothing', async () => {
  const before = await database.db.organization.count();
  const body = await call(`${app.url}/v1/organizations`, {
    token,
    body: { name: 'Chess\u0000Club', slug: 'chess' },
  });
  assert.equal(body.status, 400);
  assert.deepEqual(body.body.errors, [{ field: 'name', message: 'must not contain U+0000' }]);
  const tokenScopes = await call(`${app.url}/v1/tokens`, {
    token,
    body: { name: 'ok', scopes: ['instances:read\u0000'] },
  });
  assert.equal(tokenScopes.status, 400);
  assert.ok(tokenScopes.body.errors.some((error: { field: string }) => error.field === 'scopes.0'));
  const query = await call(`${app.url}/v1/instances?q=chess%00`, { token });
  assert.equal(query.status, 400);
  assert.deepEqual(query.body.errors, [{ field: 'q', message: 'must not contain U+0000' }]);
  assert.equal(await database.db.organization.count(), before);
});

test('headers over 16 KiB are answered 431 as problem+json by the server itself', async () => {
  const response = await call(`${app.url}/v1/plans`, { headers: { 'x-padding': 'x'.repeat(20_000) } });
  assert.equal(response.status, 431);
  assert.equal(response.body.code, 'headers_too_large');
  assert.equal(response.body.type, 'https://woolly.dev/problems/headers-too-large');
});

test('API answers may not be kept by a cache, so a browser never reuses a stale server status', async () => {
  for (const path of ['/v1/tokens', '/v1/instances', '/v1/plans']) {
    const answer = await call(`${app.url}${path}`, { token });
    assert.equal(answer.status, 200, path);
    assert.equal(answer.headers.get('cache-control'), 'no-store', path);
  }
  const dashboard = await fetch(`${app.url}/dashboard/fleet`);
  assert.notEqual(
    dashboard.headers.get('cache-control'),
    'no-store',
    'the dashboard itself is not an API answer',
  );
});
