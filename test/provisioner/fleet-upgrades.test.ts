/**
 * The fleet upgrade driver against a real PostgreSQL: waves start one after the other as the
 * servers of the one before settle, the first failed wave ends the upgrade, a stop lets the
 * wave in flight finish, and repeated, concurrent or crashed runs upgrade every server exactly
 * once. Upgrades are created over HTTP; the driver's run and the reconciler (onto the dry-run
 * target) are called here as the worker would call them.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { PassThrough } from 'node:stream';
import { after, before, test } from 'node:test';
import type { JobHelpers } from 'graphile-worker';
import { makeMasterKey, makeSecretBox } from '../../core/crypto.ts';
import { makeLogger } from '../../core/log.ts';
import { DRY_RUN_CLUSTER } from '../../core/seed.ts';
import { advanceFleetUpgrade } from '../../provisioner/fleet-upgrades.ts';
import { FLEET_UPGRADE_TASK } from '../../provisioner/index.ts';
import { markInstanceFailed, reconcileInstance } from '../../provisioner/reconciler.ts';
import { provisionerTasks } from '../../provisioner/tasks.ts';
import { call, startTestApp, type TestApp } from '../support/app.ts';
import { makeTestDatabase, type TestDatabase } from '../support/db.ts';
import { createOrganization, createUserWithToken } from '../support/factories.ts';

let database: TestDatabase;
let app: TestApp;
let staff: { userId: string; token: string };
let organizationId: string;
const box = makeSecretBox([makeMasterKey('test')]);
const log = makeLogger({ log: { level: 'error', format: 'json' } }, new PassThrough());
const drive = (id: string) => advanceFleetUpgrade({ db: database.db, log, watchMs: 10 }, id);
const reconcile = (id: string) => reconcileInstance({ db: database.db, box, log }, id);

before(async () => {
  database = await makeTestDatabase();
  app = await startTestApp(database);
  staff = await createUserWithToken(database.db, { staffRole: 'ops' });
  const owner = await createUserWithToken(database.db);
  organizationId = await createOrganization(database.db, owner.userId);
});

after(async () => {
  await app.release();
  await database.release();
});

let serial = 0;
/**
 * `count` servers running `version` on the dry-run cluster, as reconciled once; created a
 * second apart, so the upgrade's order (oldest first) is the order of the returned ids.
 */
async function runningServers(count: number, version: string): Promise<string[]> {
  const { db } = database;
  const plan = await db.plan.findUniqueOrThrow({ where: { code: 'community' } });
  const cluster = await db.cluster.findUniqueOrThrow({ where: { name: DRY_RUN_CLUSTER } });
  const base = Date.now() - 86_400_000;
  const ids: string[] = [];
  for (let index = 0; index < count; index += 1) {
    serial += 1;
    const instance = await db.instance.create({
      data: {
        organizationId,
        planId: plan.id,
        clusterId: cluster.id,
        domain: `fleet-${serial}-${randomUUID().slice(0, 6)}.woolly.test`,
        mastodonVersion: version,
        status: 'running',
        spec: {},
        generation: 1,
        observedGeneration: 1,
        createdAt: new Date(base + serial * 1000),
      },
    });
    ids.push(instance.id);
  }
  return ids;
}

/** Starts a fleet upgrade of the servers on `fromVersion` (the filter keeps earlier tests' servers out). */
async function startUpgrade(
  fromVersion: string,
  mastodonVersion: string,
  waveSize: number,
  token = staff.token,
) {
  const response = await call(`${app.url}/v1/fleet-upgrades`, {
    token,
    body: { mastodonVersion, waveSize, fromVersion },
  });
  assert.equal(response.status, 201, JSON.stringify(response.body));
  return response.body as { id: string; members: { instanceId: string; wave: number }[] };
}

const instancesOf = (ids: string[]) =>
  Promise.all(ids.map((id) => database.db.instance.findUniqueOrThrow({ where: { id } })));
const membersOf = async (fleetUpgradeId: string) =>
  Object.fromEntries(
    (await database.db.fleetUpgradeMember.findMany({ where: { fleetUpgradeId } })).map((member) => [
      member.instanceId,
      member,
    ]),
  );
const upgradeOf = (id: string) => database.db.fleetUpgrade.findUniqueOrThrow({ where: { id } });

test('five servers in waves of two: waves of 2, 2 and 1, each starting only once the one before runs the new version', async () => {
  const servers = await runningServers(5, 'v3.1.0');
  const upgrade = await startUpgrade('v3.1.0', 'v3.2.0', 2);
  assert.deepEqual(
    upgrade.members.map((member) => [member.instanceId, member.wave]),
    servers.map((id, index) => [id, [1, 1, 2, 2, 3][index]]),
  );
  const [wave1, wave2, wave3] = [servers.slice(0, 2), servers.slice(2, 4), servers.slice(4)];

  const first = await drive(upgrade.id);
  assert.deepEqual(first, { status: 'running', currentWave: 1, started: 2, watching: true });
  for (const instance of await instancesOf(wave1)) {
    assert.equal(instance.status, 'updating');
    assert.equal(instance.mastodonVersion, 'v3.2.0');
    assert.equal(instance.generation, 2);
  }
  for (const instance of await instancesOf([...wave2, ...wave3])) {
    assert.equal(instance.status, 'running');
    assert.equal(instance.mastodonVersion, 'v3.1.0');
    assert.equal(instance.generation, 1);
  }

  // Wave 1 half done: wave 2 waits.
  assert.equal((await drive(upgrade.id))?.started, 0);
  await reconcile(wave1[0] as string);
  assert.deepEqual(await drive(upgrade.id), {
    status: 'running',
    currentWave: 1,
    started: 0,
    watching: true,
  });
  for (const instance of await instancesOf(wave2)) assert.equal(instance.generation, 1, 'wave 2 not started');
  assert.equal((await membersOf(upgrade.id))[wave1[0] as string]?.status, 'succeeded');

  await reconcile(wave1[1] as string);
  assert.deepEqual(await drive(upgrade.id), {
    status: 'running',
    currentWave: 2,
    started: 2,
    watching: true,
  });
  for (const instance of await instancesOf(wave3)) assert.equal(instance.generation, 1, 'wave 3 not started');
  for (const id of wave2) await reconcile(id);
  assert.deepEqual(await drive(upgrade.id), {
    status: 'running',
    currentWave: 3,
    started: 1,
    watching: true,
  });
  for (const id of wave3) await reconcile(id);
  assert.deepEqual(await drive(upgrade.id), {
    status: 'succeeded',
    currentWave: 3,
    started: 0,
    watching: false,
  });

  for (const instance of await instancesOf(servers)) {
    assert.equal(instance.status, 'running');
    assert.equal(instance.mastodonVersion, 'v3.2.0');
    assert.equal(instance.generation, 2, 'upgraded once');
    assert.equal(instance.observedGeneration, 2);
  }
  const detail = await call(`${app.url}/v1/fleet-upgrades/${upgrade.id}`, { token: staff.token });
  assert.equal(detail.body.status, 'succeeded');
  assert.ok(detail.body.finishedAt);
  assert.deepEqual(
    detail.body.waves.map((wave: { wave: number; succeeded: number }) => [wave.wave, wave.succeeded]),
    [
      [1, 2],
      [2, 2],
      [3, 1],
    ],
  );
  // Each server's change went through the shared path: its event, operation and audit row.
  const events = await database.db.event.findMany({
    where: { instanceId: { in: servers }, type: 'instance.updating' },
  });
  assert.equal(events.length, 5);
  assert.ok(events.every((event) => event.message.includes(`fleet upgrade ${upgrade.id}`)));
  const audits = await database.db.auditLog.findMany({
    where: { action: 'instance.update', targetId: { in: servers } },
  });
  assert.equal(audits.length, 5);
  assert.ok(audits.every((row) => row.actorUserId === staff.userId));
  assert.equal(
    await database.db.operation.count({ where: { instanceId: { in: servers }, kind: 'upgrade' } }),
    5,
  );
});

test('a server failing in wave 2 fails the upgrade: wave 3 never starts and keeps the old version', async () => {
  const servers = await runningServers(5, 'v3.3.0');
  const upgrade = await startUpgrade('v3.3.0', 'v3.4.0', 2);
  const [wave1, wave2, wave3] = [servers.slice(0, 2), servers.slice(2, 4), servers.slice(4)];
  await drive(upgrade.id);
  for (const id of wave1) await reconcile(id);
  assert.equal((await drive(upgrade.id))?.currentWave, 2);

  const [broken, healthy] = wave2 as [string, string];
  await markInstanceFailed({ db: database.db, log }, broken, 'db:migrate exited with 1');
  const failed = await drive(upgrade.id);
  assert.deepEqual(failed, { status: 'failed', currentWave: 2, started: 0, watching: true });
  const row = await upgradeOf(upgrade.id);
  const brokenDomain = (await database.db.instance.findUniqueOrThrow({ where: { id: broken } })).domain;
  assert.equal(row.reason, `${brokenDomain} failed in wave 2: db:migrate exited with 1`);
  assert.ok(row.finishedAt);

  // The wave in flight is still followed to its end; nothing further starts.
  await reconcile(healthy);
  assert.deepEqual(await drive(upgrade.id), {
    status: 'failed',
    currentWave: 2,
    started: 0,
    watching: false,
  });
  const members = await membersOf(upgrade.id);
  assert.equal(members[broken]?.status, 'failed');
  assert.equal(members[broken]?.note, 'db:migrate exited with 1');
  assert.equal(members[healthy]?.status, 'succeeded');
  assert.equal(members[wave3[0] as string]?.status, 'pending');
  const [untouched] = await instancesOf(wave3);
  assert.equal(untouched?.status, 'running');
  assert.equal(untouched?.mastodonVersion, 'v3.3.0');
  assert.equal(untouched?.generation, 1);
});

test('a stop lets the wave in flight finish and starts no further wave', async () => {
  const servers = await runningServers(3, 'v3.5.0');
  const upgrade = await startUpgrade('v3.5.0', 'v3.6.0', 1);
  await drive(upgrade.id);
  const stopped = await call(`${app.url}/v1/fleet-upgrades/${upgrade.id}/stop`, {
    method: 'POST',
    token: staff.token,
  });
  assert.equal(stopped.status, 200, JSON.stringify(stopped.body));
  assert.equal(stopped.body.status, 'stopped');
  assert.match(stopped.body.reason, /^Stopped by /);

  assert.deepEqual(await drive(upgrade.id), {
    status: 'stopped',
    currentWave: 1,
    started: 0,
    watching: true,
  });
  await reconcile(servers[0] as string);
  assert.deepEqual(await drive(upgrade.id), {
    status: 'stopped',
    currentWave: 1,
    started: 0,
    watching: false,
  });
  const [first, ...rest] = await instancesOf(servers);
  assert.equal(first?.mastodonVersion, 'v3.6.0');
  assert.equal(first?.status, 'running');
  for (const instance of rest) {
    assert.equal(instance.mastodonVersion, 'v3.5.0');
    assert.equal(instance.generation, 1);
  }
  const members = await membersOf(upgrade.id);
  assert.deepEqual(
    servers.map((id) => members[id]?.status),
    ['succeeded', 'pending', 'pending'],
  );
  const again = await call(`${app.url}/v1/fleet-upgrades/${upgrade.id}/stop`, {
    method: 'POST',
    token: staff.token,
  });
  assert.equal(again.status, 409);
});

test('three driver runs at once upgrade each server of a wave exactly once', async () => {
  const servers = await runningServers(6, 'v3.7.0');
  const upgrade = await startUpgrade('v3.7.0', 'v3.8.0', 3);
  const runs = await Promise.all([drive(upgrade.id), drive(upgrade.id), drive(upgrade.id)]);
  assert.equal(
    runs.reduce((sum, run) => sum + (run?.started ?? 0), 0),
    3,
  );
  for (const id of servers.slice(0, 3)) await reconcile(id);
  const next = await Promise.all([drive(upgrade.id), drive(upgrade.id), drive(upgrade.id)]);
  assert.equal(
    next.reduce((sum, run) => sum + (run?.started ?? 0), 0),
    3,
  );
  for (const id of servers.slice(3)) await reconcile(id);
  await Promise.all([drive(upgrade.id), drive(upgrade.id)]);
  assert.equal((await upgradeOf(upgrade.id)).status, 'succeeded');
  for (const instance of await instancesOf(servers)) {
    assert.equal(instance.generation, 2, 'one change per server');
    assert.equal(instance.mastodonVersion, 'v3.8.0');
  }
  assert.equal(
    await database.db.operation.count({ where: { instanceId: { in: servers }, kind: 'upgrade' } }),
    6,
  );
});

test('a run that crashes mid-wave resumes the wave on the next run without upgrading a server twice', async () => {
  const servers = await runningServers(3, 'v3.9.0');
  const [first, second, third] = servers as [string, string, string];
  const upgrade = await startUpgrade('v3.9.0', 'v3.10.0', 3);
  // The database refuses the second server's change: the run dies after the first committed.
  await database.db.$executeRawUnsafe(`
    create function crash_on_upgrade() returns trigger language plpgsql as $$
    begin raise exception 'simulated crash'; end $$`);
  await database.db.$executeRawUnsafe(`
    create trigger crash_on_upgrade before update on "Instance"
    for each row when (old.id = '${second}'::uuid) execute function crash_on_upgrade()`);
  await assert.rejects(drive(upgrade.id), /simulated crash/);
  let members = await membersOf(upgrade.id);
  assert.deepEqual(
    servers.map((id) => members[id]?.status),
    ['upgrading', 'pending', 'pending'],
  );
  await database.db.$executeRawUnsafe('drop trigger crash_on_upgrade on "Instance"');
  // The server started before the crash is done by the time the driver runs again.
  await reconcile(first);

  assert.deepEqual(await drive(upgrade.id), {
    status: 'running',
    currentWave: 1,
    started: 2,
    watching: true,
  });
  members = await membersOf(upgrade.id);
  assert.deepEqual(
    servers.map((id) => members[id]?.status),
    ['succeeded', 'upgrading', 'upgrading'],
  );
  for (const id of [second, third]) await reconcile(id);
  assert.equal((await drive(upgrade.id))?.status, 'succeeded');
  for (const instance of await instancesOf(servers)) assert.equal(instance.generation, 2);
});

test('servers deleted, suspended or changed by someone else are skipped with a note', async () => {
  const servers = await runningServers(5, 'v3.11.0');
  const [deleted, suspended, busy, overtaken, plain] = servers as [string, string, string, string, string];
  const upgrade = await startUpgrade('v3.11.0', 'v3.12.0', 5);
  const staffCall = (
    path: string,
    init: { method?: string; body?: unknown; headers?: Record<string, string> },
  ) => call(`${app.url}/v1/instances/${path}`, { token: staff.token, ...init });
  assert.equal((await staffCall(deleted, { method: 'DELETE' })).status, 202);
  assert.equal((await staffCall(`${suspended}/suspend`, { method: 'POST' })).status, 202);
  await reconcile(suspended);
  // A plan change in flight: the server is not running when its wave starts.
  const resized = await staffCall(busy, {
    method: 'PATCH',
    headers: { 'if-match': '"1"' },
    body: { plan: 'large' },
  });
  assert.equal(resized.status, 202, JSON.stringify(resized.body));

  assert.equal((await drive(upgrade.id))?.started, 2);
  let members = await membersOf(upgrade.id);
  assert.equal(members[deleted]?.status, 'skipped');
  assert.match(members[deleted]?.note ?? '', /deleting/);
  assert.equal(members[suspended]?.status, 'skipped');
  assert.match(members[suspended]?.note ?? '', /suspended/);
  assert.equal(members[busy]?.status, 'skipped');
  assert.match(members[busy]?.note ?? '', /updating/);

  // Upgraded further by hand while the fleet's change was in flight.
  const further = await staffCall(overtaken, {
    method: 'PATCH',
    headers: { 'if-match': '"2"' },
    body: { mastodonVersion: 'v3.13.0' },
  });
  assert.equal(further.status, 202, JSON.stringify(further.body));
  await reconcile(overtaken);
  await reconcile(plain);
  assert.deepEqual(await drive(upgrade.id), {
    status: 'succeeded',
    currentWave: 1,
    started: 0,
    watching: false,
  });
  members = await membersOf(upgrade.id);
  assert.equal(members[overtaken]?.status, 'skipped');
  assert.equal(members[overtaken]?.note, 'changed meanwhile: now on v3.13.0');
  assert.equal(members[plain]?.status, 'succeeded');
  const [, , busyNow] = await instancesOf(servers);
  assert.equal(busyNow?.mastodonVersion, 'v3.11.0', 'a skipped server keeps its version');
});

test('the upgrade stops when the account that started it is no longer staff', async () => {
  const servers = await runningServers(2, 'v3.14.0');
  const starter = await createUserWithToken(database.db, { staffRole: 'admin' });
  const upgrade = await startUpgrade('v3.14.0', 'v3.15.0', 1, starter.token);
  await database.db.user.update({ where: { id: starter.userId }, data: { staffRole: null } });
  assert.deepEqual(await drive(upgrade.id), {
    status: 'stopped',
    currentWave: 1,
    started: 0,
    watching: false,
  });
  assert.match((await upgradeOf(upgrade.id)).reason ?? '', /no longer staff/);
  for (const instance of await instancesOf(servers)) assert.equal(instance.generation, 1);
});

test('the queued job re-queues itself after the injected delay while there is something to watch, and the crontab run revives a lost one', async () => {
  const servers = await runningServers(2, 'v3.16.0');
  const upgrade = await startUpgrade('v3.16.0', 'v3.17.0', 1);
  const tasks = provisionerTasks({ db: database.db, box, log, fleetUpgradeWatchMs: 120_000 });
  const task = tasks[FLEET_UPGRADE_TASK];
  assert.ok(task);
  const helpers = { job: { id: '1', attempts: 1, max_attempts: 25 } } as unknown as JobHelpers;
  const jobs = () =>
    database.db.$queryRaw<{ key: string; run_at: Date }[]>`
      select key, run_at from graphile_worker.jobs where key = ${`fleet-upgrade:${upgrade.id}`}`;
  assert.equal((await jobs()).length, 1, 'creating it queued the driver');

  const before = Date.now();
  await task({ v: 1, fleetUpgradeId: upgrade.id }, helpers);
  const [queued] = await jobs();
  assert.ok(queued && queued.run_at.getTime() >= before + 110_000, 'the next look is two minutes off');
  assert.equal((await instancesOf(servers))[0]?.status, 'updating');

  // The driver's job is lost; the crontab's run queues it again.
  await database.db.$executeRaw`select graphile_worker.remove_job(${`fleet-upgrade:${upgrade.id}`})`;
  await task({ v: 1, sweep: true, _cron: { ts: new Date().toISOString(), backfilled: false } }, helpers);
  assert.equal((await jobs()).length, 1);

  // Over, with nothing in flight: no further run is queued.
  await call(`${app.url}/v1/fleet-upgrades/${upgrade.id}/stop`, { method: 'POST', token: staff.token });
  await reconcile(servers[0] as string);
  await database.db.$executeRaw`select graphile_worker.remove_job(${`fleet-upgrade:${upgrade.id}`})`;
  await task({ v: 1, fleetUpgradeId: upgrade.id }, helpers);
  assert.equal((await jobs()).length, 0);
  await task({ v: 1, sweep: true }, helpers);
  assert.equal((await jobs()).length, 0, 'the safety net leaves a finished upgrade alone');
});
