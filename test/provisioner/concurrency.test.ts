/**
 * Two workers (two graphile-worker runners, as two `woolly worker` processes would be) on one
 * real queue, with every instance's reconcile queued several times over: each instance is
 * provisioned exactly once, each step recorded once, nothing written twice.
 */
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { after, before, test } from 'node:test';
import { makeMasterKey, makeSecretBox } from '../../core/crypto.ts';
import { makeLogger } from '../../core/log.ts';
import { startWorker, type Worker } from '../../core/worker.ts';
import { enqueueReconcile } from '../../provisioner/index.ts';
import { INSTANCE_SECRET_NAMES } from '../../provisioner/secrets.ts';
import { provisionerTasks } from '../../provisioner/tasks.ts';
import { makeTestDatabase, type TestDatabase } from '../support/db.ts';
import { createOrganization, createUserWithToken, PROVISION_STEPS } from '../support/factories.ts';

let database: TestDatabase;
const workers: Worker[] = [];
const log = makeLogger({ log: { level: 'error', format: 'json' } }, new PassThrough().resume());

before(async () => {
  database = await makeTestDatabase();
});
after(async () => {
  for (const worker of workers) await worker.release();
  await database.release();
});

test('two workers and duplicate jobs provision every instance exactly once', async () => {
  const { db } = database;
  const { userId } = await createUserWithToken(db);
  const organizationId = await createOrganization(db, userId);
  const plan = await db.plan.findUniqueOrThrow({ where: { code: 'starter' } });
  const ids: string[] = [];
  for (let index = 0; index < 12; index++) {
    const instance = await db.instance.create({
      data: {
        organizationId,
        planId: plan.id,
        domain: `twice-${index}.woolly.test`,
        mastodonVersion: 'v4.5.11',
        status: 'provisioning',
        spec: {},
      },
    });
    ids.push(instance.id);
  }
  // Queued three times each before any worker runs, then twice more while they run.
  for (let round = 0; round < 3; round++) {
    for (const id of ids) await db.$transaction((tx) => enqueueReconcile(tx, id));
  }
  const box = makeSecretBox([makeMasterKey('twice')]);
  for (let index = 0; index < 2; index++) {
    workers.push(
      await startWorker({
        databaseUrl: database.url,
        concurrency: 4,
        log,
        tasks: provisionerTasks({ db, box, log }),
        crontab: '',
      }),
    );
  }
  for (let round = 0; round < 2; round++) {
    for (const id of ids) await db.$transaction((tx) => enqueueReconcile(tx, id));
  }

  const deadline = Date.now() + 60_000;
  while ((await db.instance.count({ where: { id: { in: ids }, status: 'running' } })) < ids.length) {
    assert.ok(Date.now() < deadline, 'all running within 60 s');
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  // Let any reconcile queued meanwhile run to its (no-op) end.
  while (
    Number((await db.$queryRaw<{ n: bigint }[]>`select count(*) as n from graphile_worker.jobs`)[0]?.n) > 0
  ) {
    assert.ok(Date.now() < deadline, 'the queue drains');
    await new Promise((resolve) => setTimeout(resolve, 200));
  }

  const operations = await db.operation.groupBy({
    by: ['instanceId'],
    where: { instanceId: { in: ids } },
    _count: true,
  });
  assert.deepEqual(
    operations.map((row) => row._count),
    ids.map(() => 1),
    'one provision operation per instance',
  );
  const steps = await db.operationStep.groupBy({
    by: ['operationId', 'name'],
    where: { operation: { instanceId: { in: ids } } },
    _count: true,
  });
  assert.equal(steps.length, ids.length * PROVISION_STEPS.length);
  assert.ok(
    steps.every((row) => row._count === 1),
    'each step recorded once',
  );
  const secrets = await db.secretRecord.groupBy({
    by: ['instanceId'],
    where: { instanceId: { in: ids } },
    _count: true,
  });
  assert.ok(
    secrets.every((row) => row._count === INSTANCE_SECRET_NAMES.length),
    'secrets generated once',
  );
  const running = await db.event.count({ where: { instanceId: { in: ids }, type: 'instance.running' } });
  assert.equal(running, ids.length, 'one running event each');
});
