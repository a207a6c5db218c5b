import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { InstanceStatus } from '../../core/domain/instance-status.ts';
import { enqueueUnsettledReconciles } from '../../provisioner/index.ts';
import { makeTestDatabase, type TestDatabase } from '../support/db.ts';
import { createOrganization, createUserWithToken } from '../support/factories.ts';

let database: TestDatabase;
before(async () => {
  database = await makeTestDatabase();
});
after(async () => {
  await database.release();
});

async function instance(status: InstanceStatus, generation = 1, observedGeneration = 1): Promise<string> {
  const { db } = database;
  const { userId } = await createUserWithToken(db);
  const organizationId = await createOrganization(db, userId);
  const plan = await db.plan.findUniqueOrThrow({ where: { code: 'starter' } });
  const created = await db.instance.create({
    data: {
      organizationId,
      planId: plan.id,
      domain: `resync-${status}-${Math.random().toString(36).slice(2, 8)}.woolly.test`,
      mastodonVersion: 'v4.5.11',
      status,
      spec: {},
      generation,
      observedGeneration,
    },
  });
  return created.id;
}

const jobs = () =>
  database.db.$queryRaw<
    { key: string; run_at: Date }[]
  >`select key, run_at from graphile_worker.jobs where task_identifier = 'instance:reconcile'`;

test('the resync queues exactly the instances whose desired state is not applied, and keeps a backoff', async () => {
  const unsettled = [
    await instance('provisioning', 1, 0),
    await instance('updating', 2, 1),
    await instance('suspended', 3, 2),
    await instance('deleting', 2, 1),
  ];
  const settled = [
    await instance('running'),
    await instance('suspended', 2, 2),
    await instance('deleted'),
    await instance('failed', 2, 1),
    await instance('pending_payment', 1, 0),
  ];
  // One of them already waits out a retry's backoff.
  const later = new Date(Date.now() + 10 * 60_000);
  await database.db
    .$executeRaw`select graphile_worker.add_job('instance:reconcile', json_build_object('v', 1),
    job_key := ${unsettled[0]}::text, run_at := ${later}::timestamptz)`;

  assert.equal(await enqueueUnsettledReconciles(database.db), 4);
  const queued = await jobs();
  assert.deepEqual(queued.map((job) => job.key).sort(), [...unsettled].sort());
  assert.ok(!queued.some((job) => settled.includes(job.key)));
  assert.equal(
    queued.find((job) => job.key === unsettled[0])?.run_at.getTime(),
    later.getTime(),
    'the backoff is kept',
  );

  assert.equal(await enqueueUnsettledReconciles(database.db), 4, 'repeating it queues no duplicates');
  assert.equal((await jobs()).length, 4);
});
