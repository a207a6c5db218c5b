/**
 * The fleet summary and the cluster list through the HTTP API, on a database of their own:
 * counts over what the caller may see, grouped by status, plan and cluster; clusters with
 * their room, for staff only, and never a secret.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import type { InstanceStatus } from '../../core/generated/prisma/enums.ts';
import { call, startTestApp, type TestApp } from '../support/app.ts';
import { makeTestDatabase, type TestDatabase } from '../support/db.ts';
import { createOrganization, createUserWithToken } from '../support/factories.ts';

let database: TestDatabase;
let app: TestApp;
const tokens = { viewer: '', outsider: '', staff: '', stranger: '' };
const clusters = { full: '', roomy: '' };

const NO_STATUS: Record<InstanceStatus, number> = {
  pending_payment: 0,
  provisioning: 0,
  running: 0,
  updating: 0,
  suspended: 0,
  deleting: 0,
  deleted: 0,
  failed: 0,
};

async function server(
  organizationId: string,
  status: InstanceStatus,
  plan: 'starter' | 'community',
  clusterId: string | null,
) {
  const { id: planId } = await database.db.plan.findUniqueOrThrow({ where: { code: plan } });
  await database.db.instance.create({
    data: {
      organizationId,
      planId,
      clusterId,
      domain: `s-${randomUUID().slice(0, 8)}.woolly.test`,
      mastodonVersion: 'v4.5.11',
      status,
      spec: {},
    },
  });
}

before(async () => {
  database = await makeTestDatabase();
  app = await startTestApp(database);
  const { db } = database;
  const viewer = await createUserWithToken(db);
  const outsider = await createUserWithToken(db);
  tokens.viewer = viewer.token;
  tokens.outsider = outsider.token;
  tokens.staff = (await createUserWithToken(db, { staffRole: 'ops' })).token;
  tokens.stranger = (await createUserWithToken(db)).token;
  const org = await createOrganization(db, viewer.userId, 'viewer');
  const foreignOrg = await createOrganization(db, outsider.userId);
  // Named so that `full` sorts between the seeded `dry-run` cluster and `roomy`.
  clusters.full = (
    await db.cluster.create({
      data: {
        name: 'eu-full',
        target: 'kubernetes',
        region: 'eu',
        capacity: 1,
        kubeconfigSecretId: randomUUID(),
        databaseAdminSecretId: randomUUID(),
        settings: { smtp: { password: 'hunter2' } },
      },
    })
  ).id;
  clusters.roomy = (
    await db.cluster.create({ data: { name: 'us-roomy', target: 'kubernetes', region: 'us', capacity: 10 } })
  ).id;
  await server(org, 'running', 'community', clusters.full);
  await server(org, 'running', 'community', clusters.full);
  await server(org, 'deleted', 'starter', clusters.full);
  await server(org, 'pending_payment', 'starter', null);
  await server(foreignOrg, 'failed', 'starter', clusters.roomy);
});

after(async () => {
  await app.release();
  await database.release();
});

test('a member counts only their organizations’ servers, every status present', async () => {
  const response = await call(`${app.url}/v1/fleet/summary`, { token: tokens.viewer });
  assert.equal(response.status, 200);
  assert.deepEqual(response.body, {
    total: 4,
    byStatus: { ...NO_STATUS, running: 2, deleted: 1, pending_payment: 1 },
    byPlan: [
      { code: 'community', name: 'Community', count: 2 },
      { code: 'starter', name: 'Starter', count: 2 },
    ],
    byCluster: [
      { name: 'eu-full', count: 3, capacity: 1 },
      { name: null, count: 1, capacity: null },
    ],
  });
});

test('staff count every server; someone with no organization counts none', async () => {
  const staff = await call(`${app.url}/v1/fleet/summary`, { token: tokens.staff });
  assert.equal(staff.body.total, 5);
  assert.deepEqual(staff.body.byStatus, {
    ...NO_STATUS,
    running: 2,
    deleted: 1,
    pending_payment: 1,
    failed: 1,
  });
  assert.deepEqual(staff.body.byPlan, [
    { code: 'community', name: 'Community', count: 2 },
    { code: 'starter', name: 'Starter', count: 3 },
  ]);
  assert.deepEqual(staff.body.byCluster, [
    { name: 'eu-full', count: 3, capacity: 1 },
    { name: 'us-roomy', count: 1, capacity: 10 },
    { name: null, count: 1, capacity: null },
  ]);

  const stranger = await call(`${app.url}/v1/fleet/summary`, { token: tokens.stranger });
  assert.deepEqual(stranger.body, { total: 0, byStatus: NO_STATUS, byPlan: [], byCluster: [] });
});

test('the summary agrees with what listInstances lists for the caller', async () => {
  for (const token of [tokens.viewer, tokens.outsider, tokens.staff]) {
    const summary = await call(`${app.url}/v1/fleet/summary`, { token });
    const listed = await call(`${app.url}/v1/instances?limit=200`, { token });
    assert.equal(summary.body.total, listed.body.data.length);
    const running = listed.body.data.filter((i: { status: string }) => i.status === 'running').length;
    assert.equal(summary.body.byStatus.running, running);
  }
});

test('staff list clusters by name with the servers each holds (purged ones not), free room never below 0, and no secrets', async () => {
  const response = await call(`${app.url}/v1/clusters`, { token: tokens.staff });
  assert.equal(response.status, 200);
  const [dryRun, full, roomy] = response.body.data;
  assert.deepEqual(
    response.body.data.map((c: { name: string }) => c.name),
    ['dry-run', 'eu-full', 'us-roomy'],
  );
  assert.equal(dryRun.target, 'dry_run');
  assert.deepEqual(
    { ...full, createdAt: undefined },
    {
      id: clusters.full,
      name: 'eu-full',
      target: 'kubernetes',
      region: 'eu',
      capacity: 1,
      instances: 2,
      free: 0,
      createdAt: undefined,
    },
  );
  assert.deepEqual(
    { instances: roomy.instances, free: roomy.free, capacity: roomy.capacity },
    { instances: 1, free: 9, capacity: 10 },
  );
  assert.doesNotMatch(JSON.stringify(response.body), /hunter2|Secret|settings/);
});

test('customers may not list clusters, whatever their role', async () => {
  for (const token of [tokens.viewer, tokens.outsider]) {
    const response = await call(`${app.url}/v1/clusters`, { token });
    assert.equal(response.status, 403);
    assert.equal(response.body.code, 'forbidden');
  }
  assert.equal((await call(`${app.url}/v1/clusters`)).status, 401);
});
