import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { call, startTestApp, type TestApp } from '../support/app.ts';
import { makeTestDatabase, type TestDatabase } from '../support/db.ts';
import { createUserWithToken } from '../support/factories.ts';

let database: TestDatabase;
let app: TestApp;

before(async () => {
  database = await makeTestDatabase();
  app = await startTestApp(database, {
    WOOLLY_RATE_LIMIT_PER_MINUTE: '5',
    WOOLLY_RATE_LIMIT_ANONYMOUS_PER_MINUTE: '3',
  });
});
after(async () => {
  await app.release();
  await database.release();
});

test('a token over its limit gets 429 with Retry-After; another token is unaffected', async () => {
  const busy = await createUserWithToken(database.db);
  const calm = await createUserWithToken(database.db);
  const statuses: number[] = [];
  let limited: Awaited<ReturnType<typeof call>> | undefined;
  for (let i = 0; i < 7; i++) {
    const response = await call(`${app.url}/v1/instances`, { token: busy.token });
    statuses.push(response.status);
    if (response.status === 429) limited = response;
    else assert.equal(response.headers.get('ratelimit-limit'), '5');
  }
  assert.deepEqual(statuses, [200, 200, 200, 200, 200, 429, 429]);
  assert.ok(limited);
  assert.equal(limited.body.code, 'too_many_requests');
  const retryAfter = Number(limited.headers.get('retry-after'));
  assert.ok(retryAfter >= 1 && retryAfter <= 12, String(retryAfter));
  assert.equal((await call(`${app.url}/v1/instances`, { token: calm.token })).status, 200);
});

test('anonymous callers are limited per address', async () => {
  const statuses: number[] = [];
  for (let i = 0; i < 5; i++) statuses.push((await call(`${app.url}/v1/plans`)).status);
  assert.deepEqual(statuses, [200, 200, 200, 429, 429]);
});

test('a refused request writes nothing', async () => {
  const user = await createUserWithToken(database.db);
  for (let i = 0; i < 5; i++) await call(`${app.url}/v1/instances`, { token: user.token });
  const before = await database.db.organization.count();
  const refused = await call(`${app.url}/v1/organizations`, {
    token: user.token,
    body: { name: 'Late', slug: 'late' },
  });
  assert.equal(refused.status, 429);
  assert.equal(await database.db.organization.count(), before);
});
