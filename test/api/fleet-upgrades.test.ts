/**
 * Fleet upgrades over HTTP against a real PostgreSQL: who may start, read and stop them, which
 * servers a new one takes and in which waves, one at a time, and refusals that change nothing.
 * How the waves then run is in test/provisioner/fleet-upgrades.test.ts.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, beforeEach, describe, test } from 'node:test';
import type { InstanceStatus } from '../../core/domain/instance-status.ts';
import { DRY_RUN_CLUSTER } from '../../core/seed.ts';
import { call, startTestApp, type TestApp } from '../support/app.ts';
import { makeTestDatabase, type TestDatabase } from '../support/db.ts';
import { createOrganization, createUserWithToken } from '../support/factories.ts';

let database: TestDatabase;
let app: TestApp;
let staff: { userId: string; token: string };
let owner: string;
let organizationId: string;
let dryRunClusterId: string;

before(async () => {
  database = await makeTestDatabase();
  app = await startTestApp(database);
  staff = await createUserWithToken(database.db, { staffRole: 'ops' });
  const customer = await createUserWithToken(database.db);
  owner = customer.token;
  organizationId = await createOrganization(database.db, customer.userId);
  dryRunClusterId = (await database.db.cluster.findUniqueOrThrow({ where: { name: DRY_RUN_CLUSTER } })).id;
});

after(async () => {
  await app.release();
  await database.release();
});

// Each test starts from a fleet of its own: earlier servers retired, earlier upgrades over.
beforeEach(async () => {
  await database.db.instance.updateMany({
    where: { status: { not: 'deleted' } },
    data: { status: 'deleted' },
  });
  await database.db.fleetUpgrade.updateMany({ where: { status: 'running' }, data: { status: 'stopped' } });
});

let serial = 0;
/** A server created `ageDays` ago in `status` on `version`. */
async function server(
  version: string,
  options: { status?: InstanceStatus; ageDays?: number; clusterId?: string } = {},
): Promise<string> {
  serial += 1;
  const plan = await database.db.plan.findUniqueOrThrow({ where: { code: 'starter' } });
  const instance = await database.db.instance.create({
    data: {
      organizationId,
      planId: plan.id,
      clusterId: options.clusterId ?? dryRunClusterId,
      domain: `fleet-api-${serial}-${randomUUID().slice(0, 6)}.woolly.test`,
      mastodonVersion: version,
      status: options.status ?? 'running',
      spec: {},
      createdAt: new Date(Date.now() - (options.ageDays ?? 1) * 86_400_000),
    },
  });
  return instance.id;
}

const create = (body: unknown, token = staff.token) => call(`${app.url}/v1/fleet-upgrades`, { token, body });

/** The rows a fleet upgrade writes, in one string. */
async function snapshot(): Promise<string> {
  const { db } = database;
  const [jobs] = await db.$queryRaw<{ n: number }[]>`select count(*)::int as n from graphile_worker.jobs`;
  return JSON.stringify([
    await db.fleetUpgrade.findMany({ orderBy: { id: 'asc' } }),
    await db.fleetUpgradeMember.count(),
    await db.auditLog.count(),
    await db.instance.findMany({
      select: { id: true, generation: true, status: true },
      orderBy: { id: 'asc' },
    }),
    jobs?.n,
  ]);
}

test('staff start a fleet upgrade of the running servers older than the target, oldest first, in waves', async () => {
  const oldest = await server('v4.0.0', { ageDays: 30 });
  const middle = await server('v4.4.9', { ageDays: 20 });
  const newest = await server('v4.0.0', { ageDays: 10 });
  // Not taken: newer (v4.10.0 sorts before v4.5.0 as text, not as a version), equal, not running.
  await server('v4.10.0');
  await server('v4.5.0');
  await server('v4.0.0', { status: 'suspended' });
  await server('v4.0.0', { status: 'failed' });
  await server('v4.0.0', { status: 'updating' });

  const created = await create({ mastodonVersion: 'v4.5.0', waveSize: 2 });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const { id } = created.body;
  assert.equal(created.headers.get('location'), `/v1/fleet-upgrades/${id}`);
  assert.equal(created.body.status, 'running');
  assert.equal(created.body.mastodonVersion, 'v4.5.0');
  assert.equal(created.body.currentWave, 0);
  assert.equal(created.body.waveCount, 2);
  assert.equal(created.body.createdById, staff.userId);
  assert.deepEqual(created.body.servers, { pending: 3, upgrading: 0, succeeded: 0, failed: 0, skipped: 0 });
  assert.deepEqual(
    created.body.members.map((member: { instanceId: string; wave: number; fromVersion: string }) => [
      member.instanceId,
      member.wave,
      member.fromVersion,
    ]),
    [
      [oldest, 1, 'v4.0.0'],
      [middle, 1, 'v4.4.9'],
      [newest, 2, 'v4.0.0'],
    ],
  );
  assert.deepEqual(
    created.body.waves.map((wave: { wave: number; pending: number }) => [wave.wave, wave.pending]),
    [
      [1, 2],
      [2, 1],
    ],
  );

  // Creating it changes no server: the worker's driver does, and it is queued.
  const servers = await database.db.instance.findMany({ where: { id: { in: [oldest, middle, newest] } } });
  assert.ok(servers.every((instance) => instance.generation === 1 && instance.status === 'running'));
  const jobs = await database.db.$queryRaw<{ task_identifier: string }[]>`
    select task_identifier from graphile_worker.jobs where key = ${`fleet-upgrade:${id}`}`;
  assert.deepEqual(
    jobs.map((job) => job.task_identifier),
    ['fleet:upgrade'],
  );
  const audit = await database.db.auditLog.findFirstOrThrow({
    where: { action: 'fleet_upgrade.create', targetId: id },
  });
  assert.equal(audit.actorUserId, staff.userId);
  assert.equal(audit.targetType, 'fleet_upgrade');
  assert.deepEqual(audit.data, {
    mastodonVersion: 'v4.5.0',
    waveSize: 2,
    clusterId: null,
    fromVersion: null,
    servers: 3,
    waves: 2,
  });

  const read = await call(`${app.url}/v1/fleet-upgrades/${id}`, { token: staff.token });
  assert.equal(read.status, 200);
  assert.deepEqual(read.body, created.body);
  const list = await call(`${app.url}/v1/fleet-upgrades`, { token: staff.token });
  assert.equal(list.body.data[0].id, id);
  assert.equal(list.body.data[0].servers.pending, 3);
});

test('the filters narrow the servers taken to one cluster and one current version', async () => {
  const other = await database.db.cluster.create({
    data: { name: `other-${randomUUID().slice(0, 6)}`, target: 'dry_run', region: 'local', capacity: 10 },
  });
  const taken = await server('v4.1.0', { clusterId: other.id });
  await server('v4.2.0', { clusterId: other.id });
  await server('v4.1.0');
  const created = await create({
    mastodonVersion: 'v4.5.0',
    waveSize: 10,
    clusterId: other.id,
    fromVersion: 'v4.1.0',
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  assert.deepEqual(
    created.body.members.map((member: { instanceId: string }) => member.instanceId),
    [taken],
  );
  assert.equal(created.body.clusterId, other.id);
  assert.equal(created.body.fromVersion, 'v4.1.0');
});

describe('refusals change nothing', () => {
  test('bad input: 400 or 422 problem+json, no row written', async () => {
    await server('v4.0.0');
    const before = await snapshot();
    const cases: [unknown, number, string][] = [
      [{ mastodonVersion: 'v4.5.0', waveSize: 0 }, 400, 'waveSize'],
      [{ mastodonVersion: 'v4.5.0', waveSize: 501 }, 400, 'waveSize'],
      [{ mastodonVersion: 'v4.5.0', waveSize: 1.5 }, 400, 'waveSize'],
      [{ mastodonVersion: 'latest', waveSize: 2 }, 400, 'mastodonVersion'],
      [{ mastodonVersion: '4.5.0', waveSize: 2 }, 400, 'mastodonVersion'],
      [{ waveSize: 2 }, 400, 'mastodonVersion'],
      [{ mastodonVersion: 'v4.5.0', waveSize: 2, force: true }, 400, 'force'],
      [{ mastodonVersion: 'v4.5.0', waveSize: 2, clusterId: 'dry-run' }, 400, 'clusterId'],
      // Older than (or as old as) every running server: nothing to upgrade.
      [{ mastodonVersion: 'v3.9.9', waveSize: 2 }, 422, 'mastodonVersion'],
      [{ mastodonVersion: 'v4.0.0', waveSize: 2 }, 422, 'mastodonVersion'],
      [{ mastodonVersion: 'v4.5.0', waveSize: 2, clusterId: randomUUID() }, 422, 'clusterId'],
      [{ mastodonVersion: 'v4.5.0', waveSize: 2, fromVersion: 'v4.0.1' }, 422, 'mastodonVersion'],
    ];
    for (const [body, status, field] of cases) {
      const response = await create(body);
      assert.equal(response.status, status, `${JSON.stringify(body)}: ${JSON.stringify(response.body)}`);
      assert.match(response.headers.get('content-type') ?? '', /^application\/problem\+json/);
      assert.ok(
        response.body.errors.some((error: { field: string }) => error.field === field),
        `${JSON.stringify(body)} names ${field}: ${JSON.stringify(response.body.errors)}`,
      );
    }
    assert.equal(await snapshot(), before);
  });

  test('customers are refused (403; their tokens lack the admin scope), strangers 401', async () => {
    await server('v4.0.0');
    const before = await snapshot();
    assert.equal((await create({ mastodonVersion: 'v4.5.0', waveSize: 2 }, owner)).status, 403);
    assert.equal((await call(`${app.url}/v1/fleet-upgrades`, { token: owner })).status, 403);
    const anonymous = await call(`${app.url}/v1/fleet-upgrades`, {
      body: { mastodonVersion: 'v4.5.0', waveSize: 2 },
    });
    assert.equal(anonymous.status, 401);
    assert.equal(await snapshot(), before);
  });

  test('a token that outlived its staff role is refused', async () => {
    await server('v4.0.0');
    const former = await createUserWithToken(database.db, { staffRole: 'ops' });
    await database.db.user.update({ where: { id: former.userId }, data: { staffRole: null } });
    const before = await snapshot();
    const response = await create({ mastodonVersion: 'v4.5.0', waveSize: 2 }, former.token);
    assert.equal(response.status, 403);
    assert.equal(response.body.code, 'forbidden');
    assert.equal(await snapshot(), before);
  });

  test('one runs at a time: a second answers 409, and of three sent at once exactly one is created', async () => {
    await server('v4.0.0');
    const first = await create({ mastodonVersion: 'v4.5.0', waveSize: 2 });
    assert.equal(first.status, 201);
    const before = await snapshot();
    const second = await create({ mastodonVersion: 'v4.6.0', waveSize: 2 });
    assert.equal(second.status, 409);
    assert.match(second.body.detail, new RegExp(first.body.id));
    assert.equal(await snapshot(), before);

    await call(`${app.url}/v1/fleet-upgrades/${first.body.id}/stop`, { method: 'POST', token: staff.token });
    const raced = await Promise.all([
      create({ mastodonVersion: 'v4.5.0', waveSize: 1 }),
      create({ mastodonVersion: 'v4.5.0', waveSize: 1 }),
      create({ mastodonVersion: 'v4.5.0', waveSize: 1 }),
    ]);
    assert.deepEqual(raced.map((response) => response.status).sort(), [201, 409, 409]);
    assert.equal(await database.db.fleetUpgrade.count({ where: { status: 'running' } }), 1);
    assert.equal(
      await database.db.auditLog.count({ where: { action: 'fleet_upgrade.create' } }),
      await database.db.fleetUpgrade.count(),
    );
  });
});

test('stopping: 200 with the upgrade stopped and audited, then 409; an unknown one is 404', async () => {
  await server('v4.0.0');
  const { body } = await create({ mastodonVersion: 'v4.5.0', waveSize: 2 });
  const stopped = await call(`${app.url}/v1/fleet-upgrades/${body.id}/stop`, {
    method: 'POST',
    token: staff.token,
  });
  assert.equal(stopped.status, 200);
  assert.equal(stopped.body.status, 'stopped');
  assert.ok(stopped.body.finishedAt);
  assert.equal(stopped.body.servers.pending, 1);
  const audit = await database.db.auditLog.findFirstOrThrow({
    where: { action: 'fleet_upgrade.stop', targetId: body.id },
  });
  assert.equal(audit.actorUserId, staff.userId);

  const before = await snapshot();
  const again = await call(`${app.url}/v1/fleet-upgrades/${body.id}/stop`, {
    method: 'POST',
    token: staff.token,
  });
  assert.equal(again.status, 409);
  const unknown = await call(`${app.url}/v1/fleet-upgrades/${randomUUID()}/stop`, {
    method: 'POST',
    token: staff.token,
  });
  assert.equal(unknown.status, 404);
  assert.equal(
    (await call(`${app.url}/v1/fleet-upgrades/${randomUUID()}`, { token: staff.token })).status,
    404,
  );
  assert.equal(await snapshot(), before);
});

test('the list pages newest first with a cursor and filters by status', async () => {
  await server('v4.0.0');
  const ids: string[] = [];
  for (const version of ['v4.1.0', 'v4.2.0', 'v4.3.0']) {
    const { body } = await create({ mastodonVersion: version, waveSize: 1 });
    ids.push(body.id);
    await call(`${app.url}/v1/fleet-upgrades/${body.id}/stop`, { method: 'POST', token: staff.token });
  }
  const { body: running } = await create({ mastodonVersion: 'v4.4.0', waveSize: 1 });
  const seen: string[] = [];
  let cursor: string | null = null;
  do {
    const query: string = cursor ? `?limit=2&cursor=${cursor}` : '?limit=2';
    const page = await call(`${app.url}/v1/fleet-upgrades${query}`, { token: staff.token });
    assert.equal(page.status, 200);
    seen.push(...page.body.data.map((upgrade: { id: string }) => upgrade.id));
    cursor = page.body.nextCursor;
  } while (cursor);
  const all = await database.db.fleetUpgrade.findMany({ orderBy: [{ createdAt: 'desc' }, { id: 'desc' }] });
  assert.deepEqual(
    seen,
    all.map((upgrade) => upgrade.id),
  );
  assert.equal(seen[0], running.id);
  assert.deepEqual(seen.slice(1, 4), [...ids].reverse());

  const onlyRunning = await call(`${app.url}/v1/fleet-upgrades?status=running`, { token: staff.token });
  assert.deepEqual(
    onlyRunning.body.data.map((upgrade: { id: string }) => upgrade.id),
    [running.id],
  );
  const badCursor = await call(`${app.url}/v1/fleet-upgrades?cursor=${randomUUID()}`, { token: staff.token });
  assert.equal(badCursor.status, 400);
});
