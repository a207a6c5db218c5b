import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { call, startTestApp, type TestApp } from '../support/app.ts';
import { makeTestDatabase, type TestDatabase } from '../support/db.ts';
import { createOrganization, createUserWithToken } from '../support/factories.ts';

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

async function instance(organizationId: string, status: 'running' | 'provisioning', addons: string[] = []) {
  const { db } = database;
  const plan = await db.plan.findUniqueOrThrow({ where: { code: 'community' } });
  const addonTypes = await db.addonType.findMany({ where: { code: { in: addons } } });
  return db.instance.create({
    data: {
      organizationId,
      planId: plan.id,
      domain: `i${Math.random().toString(36).slice(2, 10)}.woolly.test`,
      mastodonVersion: 'v4.5.11',
      status,
      spec: { addons },
      addons: { create: addonTypes.map((addon) => ({ addonTypeId: addon.id })) },
    },
  });
}

test('members list only their organizations’ instances, newest first; staff list all', async () => {
  const alice = await createUserWithToken(database.db);
  const bob = await createUserWithToken(database.db);
  const staff = await createUserWithToken(database.db, { staffRole: 'ops' });
  const aliceOrg = await createOrganization(database.db, alice.userId, 'viewer');
  const bobOrg = await createOrganization(database.db, bob.userId);
  const first = await instance(aliceOrg, 'running', ['object_storage', 'elasticsearch']);
  const second = await instance(aliceOrg, 'provisioning');
  const foreign = await instance(bobOrg, 'running');

  const mine = await call(`${app.url}/v1/instances`, { token: alice.token });
  assert.deepEqual(
    mine.body.data.map((i: { id: string }) => i.id),
    [second.id, first.id],
  );
  const withAddons = mine.body.data.find((i: { id: string }) => i.id === first.id);
  assert.deepEqual(withAddons.addons, ['elasticsearch', 'object_storage']);
  assert.deepEqual(withAddons.plan, { code: 'community', name: 'Community' });
  assert.equal(withAddons.dryRun, false, 'not placed yet, so not on the dry-run target');

  const all = await call(`${app.url}/v1/instances?limit=200`, { token: staff.token });
  const ids = all.body.data.map((i: { id: string }) => i.id);
  for (const id of [first.id, second.id, foreign.id]) assert.ok(ids.includes(id));
});

test('the list filters by status and honours the limit', async () => {
  const user = await createUserWithToken(database.db);
  const org = await createOrganization(database.db, user.userId);
  await instance(org, 'running');
  await instance(org, 'running');
  const provisioning = await instance(org, 'provisioning');
  const filtered = await call(`${app.url}/v1/instances?status=provisioning`, { token: user.token });
  assert.deepEqual(
    filtered.body.data.map((i: { id: string }) => i.id),
    [provisioning.id],
  );
  const limited = await call(`${app.url}/v1/instances?limit=2`, { token: user.token });
  assert.equal(limited.body.data.length, 2);
});

test('a bad filter is a 400 naming the parameter', async () => {
  const user = await createUserWithToken(database.db);
  for (const query of ['status=sleeping', 'limit=0', 'limit=201', 'colour=blue']) {
    const response = await call(`${app.url}/v1/instances?${query}`, { token: user.token });
    assert.equal(response.status, 400, query);
    assert.equal(response.body.code, 'validation_failed');
  }
  const badId = await call(`${app.url}/v1/instances/not-a-uuid`, { token: user.token });
  assert.equal(badId.status, 400);
  assert.equal(badId.body.errors[0].field, 'id');
});

test('an expired token no longer authenticates; a live one records its last use', async () => {
  const user = await createUserWithToken(database.db);
  const ok = await call(`${app.url}/v1/instances`, { token: user.token });
  assert.equal(ok.status, 200);
  const token = await database.db.apiToken.findFirstOrThrow({ where: { userId: user.userId } });
  assert.ok(token.lastUsedAt);
  await database.db.apiToken.update({
    where: { id: token.id },
    data: { expiresAt: new Date(Date.now() - 1000) },
  });
  const expired = await call(`${app.url}/v1/instances`, { token: user.token });
  assert.equal(expired.status, 401);
  assert.equal(expired.body.code, 'unauthenticated');
});

test('an unknown route is a problem+json 404', async () => {
  const response = await call(`${app.url}/v1/nothing-here`);
  assert.equal(response.status, 404);
  assert.match(response.headers.get('content-type') ?? '', /application\/problem\+json/);
});

test('cursor pagination walks every instance exactly once, newest first, even as new ones arrive', async () => {
  const user = await createUserWithToken(database.db);
  const org = await createOrganization(database.db, user.userId);
  const created = [];
  for (let i = 0; i < 5; i++) created.push(await instance(org, 'running'));
  const seen: string[] = [];
  let cursor: string | null = null;
  let pages = 0;
  do {
    const query: string = cursor ? `limit=2&cursor=${encodeURIComponent(cursor)}` : 'limit=2';
    const page = await call(`${app.url}/v1/instances?${query}`, { token: user.token });
    assert.equal(page.status, 200);
    seen.push(...page.body.data.map((i: { id: string }) => i.id));
    cursor = page.body.nextCursor;
    pages++;
    if (pages === 1) await instance(org, 'running'); // arrives mid-walk, before the cursor
  } while (cursor);
  assert.equal(pages, 3);
  assert.deepEqual(seen, created.map((i) => i.id).reverse());
});

test('the list filters by plan, cluster and part of the domain (wildcards taken literally)', async () => {
  const user = await createUserWithToken(database.db);
  const org = await createOrganization(database.db, user.userId);
  const plain = await instance(org, 'running');
  const cluster = await database.db.cluster.findUniqueOrThrow({ where: { name: 'dry-run' } });
  await database.db.instance.update({ where: { id: plain.id }, data: { clusterId: cluster.id } });
  const starterPlan = await database.db.plan.findUniqueOrThrow({ where: { code: 'starter' } });
  const starter = await database.db.instance.create({
    data: {
      organizationId: org,
      planId: starterPlan.id,
      domain: 'abc-under-score.woolly.test',
      mastodonVersion: 'v4.5.11',
      status: 'running',
      spec: {},
    },
  });
  const ids = async (query: string) =>
    (await call(`${app.url}/v1/instances?${query}`, { token: user.token })).body.data.map(
      (i: { id: string }) => i.id,
    );
  assert.deepEqual(await ids('plan=starter'), [starter.id]);
  assert.deepEqual(await ids('cluster=dry-run'), [plain.id]);
  assert.deepEqual(await ids('q=UNDER-SCORE'), [starter.id]);
  assert.deepEqual(await ids('q=%25'), [], 'a % matches only a literal %');
  assert.deepEqual(await ids('q=abc_under'), [], 'an _ matches only a literal _');
  assert.deepEqual(await ids('plan=nonexistent'), []);
});

test('a cursor that was not handed out is a 400', async () => {
  const user = await createUserWithToken(database.db);
  for (const cursor of ['garbage', Buffer.from('2026-01-01T00:00:00.000Z|nope').toString('base64url')]) {
    const response = await call(`${app.url}/v1/instances?cursor=${cursor}`, { token: user.token });
    assert.equal(response.status, 400);
    assert.equal(response.body.errors[0].field, 'cursor');
  }
});
