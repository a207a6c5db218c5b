import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { after, before, test } from 'node:test';
import { makeMasterKey, makeSecretBox } from '../../core/crypto.ts';
import { makeLogger } from '../../core/log.ts';
import { reconcileInstance } from '../../provisioner/reconciler.ts';
import { INSTANCE_SECRET_NAMES } from '../../provisioner/secrets.ts';
import { makeDryRunTarget, REDACTED_SECRET_VALUE } from '../../provisioner/targets/dry-run.target.ts';
import type { ClusterTarget } from '../../provisioner/targets/target.ts';
import { makeTestDatabase, type TestDatabase } from '../support/db.ts';
import { createOrganization, createUserWithToken } from '../support/factories.ts';

let database: TestDatabase;
const box = makeSecretBox([makeMasterKey('test')]);
const logLines: Buffer[] = [];
const logStream = new PassThrough().on('data', (chunk: Buffer) => logLines.push(chunk));
const log = makeLogger({ log: { level: 'debug', format: 'json' } }, logStream);

before(async () => {
  database = await makeTestDatabase();
});
after(async () => {
  await database.release();
});

async function provisioningInstance(planCode = 'community', spec: object = {}): Promise<string> {
  const { db } = database;
  const { userId } = await createUserWithToken(db);
  const organizationId = await createOrganization(db, userId);
  const plan = await db.plan.findUniqueOrThrow({ where: { code: planCode } });
  const instance = await db.instance.create({
    data: {
      organizationId,
      planId: plan.id,
      domain: `r${Math.random().toString(36).slice(2, 10)}.woolly.test`,
      mastodonVersion: 'v4.5.11',
      status: 'provisioning',
      spec,
    },
  });
  return instance.id;
}

const steps = (instanceId: string) =>
  database.db.operationStep.findMany({
    where: { operation: { instanceId } },
    orderBy: [{ startedAt: 'asc' }, { id: 'asc' }],
  });

test('a provisioning instance is rendered onto the dry-run target and marked running in dry-run', async () => {
  const { db } = database;
  const instanceId = await provisioningInstance();
  await reconcileInstance({ db, box, log }, instanceId);

  const instance = await db.instance.findUniqueOrThrow({
    where: { id: instanceId },
    include: { cluster: true },
  });
  assert.equal(instance.status, 'running');
  assert.equal(instance.observedGeneration, instance.generation);
  assert.equal(instance.cluster?.target, 'dry_run');
  assert.match(instance.statusReason ?? '', /dry-run/);

  const recorded = await steps(instanceId);
  assert.deepEqual(
    recorded.map((step) => [step.name, step.outcome]),
    [
      ['placement', 'succeeded'],
      ['secrets', 'succeeded'],
      ['database', 'skipped'],
      ['addons', 'skipped'],
      ['apply-config', 'succeeded'],
      ['pre-migrate', 'skipped'],
      ['apply-workloads', 'succeeded'],
      ['rollout', 'skipped'],
      ['apply-route', 'succeeded'],
      ['post-migrate', 'skipped'],
      ['search-deploy', 'skipped'],
      ['owner-account', 'skipped'],
      ['prune', 'succeeded'],
    ],
  );
  for (const step of recorded) assert.ok(step.finishedAt && step.finishedAt >= step.startedAt);
  const operation = await db.operation.findFirstOrThrow({ where: { instanceId } });
  assert.equal(operation.status, 'succeeded');

  const objects = await db.dryRunObject.findMany({ where: { instanceId } });
  const kinds = new Set(objects.map((object) => object.kind));
  for (const kind of [
    'Namespace',
    'Secret',
    'ConfigMap',
    'Deployment',
    'Service',
    'Ingress',
    'Job',
    'NetworkPolicy',
    'ResourceQuota',
  ]) {
    assert.ok(kinds.has(kind), `${kind} applied`);
  }
  const secret = objects.find((object) => object.kind === 'Secret')?.manifest as {
    data: Record<string, string>;
  };
  assert.deepEqual(Object.keys(secret.data).sort(), [...INSTANCE_SECRET_NAMES].sort());
  assert.ok(Object.values(secret.data).every((value) => value === REDACTED_SECRET_VALUE));
});

test('secrets are sealed at rest, valid for Mastodon, and never logged', async () => {
  const { db } = database;
  const instanceId = await provisioningInstance('starter');
  await reconcileInstance({ db, box, log }, instanceId);
  const records = await db.secretRecord.findMany({ where: { instanceId } });
  assert.equal(records.length, INSTANCE_SECRET_NAMES.length);
  const values = Object.fromEntries(
    records.map((r) => [r.name, box.open(r, `instance:${instanceId}:${r.name}`)]),
  );
  assert.match(values.SECRET_KEY_BASE ?? '', /^[0-9a-f]{128}$/);
  assert.equal(Buffer.from(values.VAPID_PUBLIC_KEY ?? '', 'base64url').length, 65);
  assert.equal(Buffer.from(values.VAPID_PUBLIC_KEY ?? '', 'base64url')[0], 0x04);
  assert.equal(Buffer.from(values.VAPID_PRIVATE_KEY ?? '', 'base64url').length, 32);
  const stored = JSON.stringify(await db.dryRunObject.findMany({ where: { instanceId } }));
  const logged = Buffer.concat(logLines).toString();
  for (const record of records) {
    const value = values[record.name] ?? '';
    assert.ok(!record.ciphertext.includes(value), `${record.name} is not stored in clear`);
    assert.ok(!stored.includes(value), `${record.name} is not in the stored manifests`);
    assert.ok(!logged.includes(value), `${record.name} is not logged`);
  }
});

test('reconciling a running instance again changes nothing', async () => {
  const { db } = database;
  const instanceId = await provisioningInstance();
  await reconcileInstance({ db, box, log }, instanceId);
  const snapshot = async () => ({
    steps: await db.operationStep.count({ where: { operation: { instanceId } } }),
    operations: await db.operation.count({ where: { instanceId } }),
    secrets: (await db.secretRecord.findMany({ where: { instanceId }, orderBy: { name: 'asc' } })).map(
      (r) => r.ciphertext,
    ),
    objects: await db.dryRunObject.count({ where: { instanceId } }),
  });
  const first = await snapshot();
  await reconcileInstance({ db, box, log }, instanceId);
  assert.deepEqual(await snapshot(), first);
});

test('with a target that fails once, the retry resumes at the failed step and keeps the secrets', async () => {
  const { db } = database;
  const instanceId = await provisioningInstance();
  const real = makeDryRunTarget(db);
  let calls = 0;
  const flaky: ClusterTarget = {
    ...real,
    apply: (...args) =>
      ++calls === 1 ? Promise.reject(new Error('connection reset by peer')) : real.apply(...args),
  };
  await assert.rejects(
    reconcileInstance({ db, box, log, targetFor: () => flaky }, instanceId),
    /connection reset/,
  );
  const afterCrash = await db.instance.findUniqueOrThrow({ where: { id: instanceId } });
  assert.equal(afterCrash.status, 'provisioning');
  const secretsBefore = (
    await db.secretRecord.findMany({ where: { instanceId }, orderBy: { name: 'asc' } })
  ).map((r) => r.ciphertext);
  const failedEvent = await db.event.findFirst({ where: { instanceId, type: 'step.failed' } });
  assert.match(failedEvent?.message ?? '', /apply-config failed: connection reset/);

  await reconcileInstance({ db, box, log, targetFor: () => flaky }, instanceId);
  const recorded = await steps(instanceId);
  assert.deepEqual(
    recorded.map((step) => [step.name, step.outcome, step.attempt]),
    [
      ['placement', 'succeeded', 1],
      ['secrets', 'succeeded', 1],
      ['database', 'skipped', 1],
      ['addons', 'skipped', 1],
      ['apply-config', 'failed', 1],
      ['apply-config', 'succeeded', 2],
      ['pre-migrate', 'skipped', 1],
      ['apply-workloads', 'succeeded', 1],
      ['rollout', 'skipped', 1],
      ['apply-route', 'succeeded', 1],
      ['post-migrate', 'skipped', 1],
      ['search-deploy', 'skipped', 1],
      ['owner-account', 'skipped', 1],
      ['prune', 'succeeded', 1],
    ],
  );
  assert.equal(recorded[4]?.error, 'connection reset by peer');
  const secretsAfter = (
    await db.secretRecord.findMany({ where: { instanceId }, orderBy: { name: 'asc' } })
  ).map((r) => r.ciphertext);
  assert.deepEqual(secretsAfter, secretsBefore);
  assert.equal((await db.instance.findUniqueOrThrow({ where: { id: instanceId } })).status, 'running');
  assert.equal(await db.operation.count({ where: { instanceId } }), 1);
});

test('two reconcilers racing on one instance leave one set of secrets and one running instance', async () => {
  const { db } = database;
  const instanceId = await provisioningInstance();
  const results = await Promise.allSettled([
    reconcileInstance({ db, box, log }, instanceId),
    reconcileInstance({ db, box, log }, instanceId),
  ]);
  assert.ok(results.some((result) => result.status === 'fulfilled'));
  assert.equal(await db.secretRecord.count({ where: { instanceId } }), INSTANCE_SECRET_NAMES.length);
  assert.equal((await db.instance.findUniqueOrThrow({ where: { id: instanceId } })).status, 'running');
});

test('placement honours the ordered region and never overfills a cluster, even when placements race', async () => {
  const { db } = database;
  const [north, south] = await Promise.all(
    ['north', 'south'].map((region) =>
      db.cluster.create({ data: { name: `dry-${region}`, target: 'dry_run', region, capacity: 2 } }),
    ),
  );
  const ids = await Promise.all(
    Array.from({ length: 3 }, () => provisioningInstance('community', { region: 'south' })),
  );
  const results = await Promise.allSettled(ids.map((id) => reconcileInstance({ db, box, log }, id)));
  const placed = await db.instance.findMany({ where: { id: { in: ids } }, select: { clusterId: true } });
  assert.equal(placed.filter((row) => row.clusterId === south?.id).length, 2, 'south filled to capacity');
  assert.equal(placed.filter((row) => row.clusterId === north?.id).length, 0, 'never another region');
  const refused = results.filter((result) => result.status === 'rejected');
  assert.equal(refused.length, 1);
  assert.match(String((refused[0] as PromiseRejectedResult).reason), /no cluster in region south has room/);
});
