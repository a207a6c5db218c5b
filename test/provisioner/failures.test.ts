/**
 * Failure handling with the real job queue (graphile-worker on the test PostgreSQL): a
 * permanent error fails the instance at once; a transient one is retried with backoff until
 * the attempts run out; staff retry a failed instance through the API and it recovers; a step
 * waiting on the cluster is looked at again without spending attempts, up to its time limit.
 * The cluster is a stand-in (the dry-run store, with failures and Job states injected per
 * instance); test/provisioner/kubernetes-reconcile.test.ts runs against a real API server.
 */
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { after, before, test } from 'node:test';
import { makeMasterKey, makeSecretBox } from '../../core/crypto.ts';
import { makeLogger } from '../../core/log.ts';
import { startWorker, type Worker } from '../../core/worker.ts';
import { enqueueReconcile } from '../../provisioner/index.ts';
import { makeDryRunTarget } from '../../provisioner/targets/dry-run.target.ts';
import type { ClusterTarget } from '../../provisioner/targets/target.ts';
import { provisionerTasks } from '../../provisioner/tasks.ts';
import { call, startTestApp, type TestApp } from '../support/app.ts';
import { makeTestDatabase, type TestDatabase } from '../support/db.ts';
import { createOrganization, createUserWithToken } from '../support/factories.ts';

let database: TestDatabase;
let worker: Worker;
let app: TestApp;
/** What the cluster does on apply, per instance domain: fail for good, fail for now, or work. */
const behaviour = new Map<string, 'permanent' | 'transient' | 'waiting' | 'ok'>();
const log = makeLogger({ log: { level: 'error', format: 'json' } }, new PassThrough().resume());

class ClusterError extends Error {
  constructor(
    message: string,
    readonly retryable: boolean,
  ) {
    super(message);
  }
}

before(async () => {
  database = await makeTestDatabase();
  app = await startTestApp(database);
  const dryRun = makeDryRunTarget(database.db);
  const target: ClusterTarget = {
    ...dryRun,
    async apply(instanceId, generation, objects) {
      const { domain } = await database.db.instance.findUniqueOrThrow({ where: { id: instanceId } });
      const mode = behaviour.get(domain) ?? 'ok';
      if (mode === 'permanent')
        throw new ClusterError('Ingress "web" is invalid: spec.rules[0].host: Invalid value', false);
      if (mode === 'transient')
        throw new ClusterError('the server is currently unable to handle the request', true);
      return dryRun.apply(instanceId, generation, objects);
    },
    // Not dry-run, so the reconciler reads Job states and rollouts, as on a real cluster.
    dryRun: false,
    async jobState(instanceId) {
      const { domain } = await database.db.instance.findUniqueOrThrow({ where: { id: instanceId } });
      return behaviour.get(domain) === 'waiting'
        ? { state: 'running', detail: '1 running, 0 failed so far' }
        : { state: 'succeeded', detail: 'complete' };
    },
  };
  worker = await startWorker({
    databaseUrl: database.url,
    concurrency: 2,
    log,
    tasks: provisionerTasks({
      db: database.db,
      box: makeSecretBox([makeMasterKey('t')]),
      log,
      targetFor: () => target,
      waitPollMs: 200,
    }),
    crontab: '',
  });
});

after(async () => {
  await worker.release();
  await app.release();
  await database.release();
});

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function provisioning(
  mode: 'permanent' | 'transient' | 'waiting',
): Promise<{ id: string; domain: string }> {
  const { db } = database;
  const { userId } = await createUserWithToken(db);
  const organizationId = await createOrganization(db, userId);
  const plan = await db.plan.findUniqueOrThrow({ where: { code: 'starter' } });
  const domain = `${mode}-${Date.now()}.woolly.test`;
  behaviour.set(domain, mode);
  const instance = await db.$transaction(async (tx) => {
    const created = await tx.instance.create({
      data: {
        organizationId,
        planId: plan.id,
        domain,
        mastodonVersion: 'v4.5.11',
        status: 'provisioning',
        spec: {},
      },
    });
    await enqueueReconcile(tx, created.id);
    return created;
  });
  return { id: instance.id, domain };
}

const statusOf = async (id: string) =>
  (await database.db.instance.findUniqueOrThrow({ where: { id } })).status;

test('a permanent error fails the instance on the first attempt, with the reason', async () => {
  const { id } = await provisioning('permanent');
  await waitFor('failed', async () => ((await statusOf(id)) === 'failed' ? true : undefined));
  const instance = await database.db.instance.findUniqueOrThrow({ where: { id } });
  assert.match(instance.statusReason ?? '', /Ingress "web" is invalid/);
  const operation = await database.db.operation.findFirstOrThrow({ where: { instanceId: id } });
  assert.equal(operation.status, 'failed');
  const jobs = await database.db.$queryRaw<{ n: number }[]>`
    select count(*)::int as n from graphile_worker.jobs where key = ${id}`;
  assert.equal(jobs[0]?.n, 0, 'no retry is queued');
  assert.equal(await database.db.event.count({ where: { instanceId: id, type: 'instance.failed' } }), 1);
});

test('a transient error is retried with backoff, and fails the instance when the attempts run out', async () => {
  const { id } = await provisioning('transient');
  const job = await waitFor('the first attempt to fail', async () => {
    const [row] = await database.db.$queryRaw<
      { attempts: number; max_attempts: number; run_at: Date; last_error: string | null }[]
    >`
      select attempts, max_attempts, run_at, last_error from graphile_worker.jobs where key = ${id}`;
    return row && row.attempts >= 1 && row.last_error ? row : undefined;
  });
  assert.ok(job.run_at.getTime() > Date.now(), 'the retry waits (backoff)');
  assert.match(job.last_error ?? '', /unable to handle the request/);
  assert.equal(await statusOf(id), 'provisioning');

  // Spend all but the last attempt and make it due now, as if the backoff had passed.
  await database.db.$executeRaw`
    update graphile_worker._private_jobs set attempts = max_attempts - 1, run_at = now() where key = ${id}`;
  await waitFor('failed', async () => ((await statusOf(id)) === 'failed' ? true : undefined));
  const instance = await database.db.instance.findUniqueOrThrow({ where: { id } });
  assert.match(instance.statusReason ?? '', /after 10 attempts/);
});

test('staff retry a failed instance and it recovers; others may not', async () => {
  const { id, domain } = await provisioning('permanent');
  await waitFor('failed', async () => ((await statusOf(id)) === 'failed' ? true : undefined));
  const customer = await createUserWithToken(database.db);
  const refused = await call(`${app.url}/v1/instances/${id}/retry`, {
    method: 'POST',
    token: customer.token,
  });
  assert.equal(refused.status, 403);

  behaviour.set(domain, 'ok');
  const staff = await createUserWithToken(database.db, { staffRole: 'ops' });
  const retried = await call(`${app.url}/v1/instances/${id}/retry`, { method: 'POST', token: staff.token });
  assert.equal(retried.status, 202, JSON.stringify(retried.body));
  assert.equal(retried.body.status, 'provisioning');
  await waitFor('running', async () => ((await statusOf(id)) === 'running' ? true : undefined));
  const operations = await database.db.operation.findMany({
    where: { instanceId: id },
    orderBy: { startedAt: 'asc' },
  });
  assert.deepEqual(
    operations.map((operation) => [operation.kind, operation.status]),
    [
      ['provision', 'failed'],
      ['provision', 'succeeded'],
    ],
  );
  const again = await call(`${app.url}/v1/instances/${id}/retry`, { method: 'POST', token: staff.token });
  assert.equal(again.status, 409, 'only a failed instance is retried');
});

test('a step waiting on the cluster is looked at again without spending attempts, until it is done', async () => {
  const { id, domain } = await provisioning('waiting');
  const queued = async () =>
    (
      await database.db.$queryRaw<{ id: string; attempts: number }[]>`
        select id::text, attempts from graphile_worker.jobs where key = ${id}`
    )[0];
  const first = await waitFor('the migration to be waited on', async () => {
    const row = await database.db.operationStep.findFirst({
      where: { operation: { instanceId: id }, name: 'pre-migrate' },
    });
    const job = await queued();
    return row?.detail && job ? job : undefined;
  });
  // Each look queues the next as a new job, a poll interval later.
  const later = await waitFor('another look', async () => {
    const job = await queued();
    return job && job.id !== first.id ? job : undefined;
  });
  assert.equal(later.attempts, 0, 'a wait is no failed attempt');
  const row = await database.db.operationStep.findFirstOrThrow({
    where: { operation: { instanceId: id }, name: 'pre-migrate' },
  });
  assert.equal(row.outcome, 'running');
  assert.match(row.detail ?? '', /^Job db-migrate-[0-9a-f]{10}: .*1 running/);
  assert.equal(await statusOf(id), 'provisioning');

  behaviour.set(domain, 'ok');
  await waitFor('running', async () => ((await statusOf(id)) === 'running' ? true : undefined));
  const steps = await database.db.operationStep.findMany({ where: { operation: { instanceId: id } } });
  assert.equal(steps.filter((row) => row.name === 'pre-migrate').length, 1, 'one row for the whole wait');
  assert.ok(steps.every((row) => row.outcome !== 'failed'));
});

test('a step that waits past its limit fails the instance, naming what it waited for', async () => {
  const { id } = await provisioning('waiting');
  await waitFor('the wait to start', () =>
    database.db.operationStep
      .findFirst({
        where: { operation: { instanceId: id }, name: 'pre-migrate', outcome: 'running' },
      })
      .then((row) => row ?? undefined),
  );
  // As if the migration had been running for seven hours: past its six-hour limit.
  await database.db.operationStep.updateMany({
    where: { operation: { instanceId: id }, name: 'pre-migrate' },
    data: { startedAt: new Date(Date.now() - 7 * 3_600_000) },
  });
  await waitFor('failed', async () => ((await statusOf(id)) === 'failed' ? true : undefined));
  const instance = await database.db.instance.findUniqueOrThrow({ where: { id } });
  assert.match(instance.statusReason ?? '', /gave up after 420 min: Job db-migrate-[0-9a-f]{10}: 1 running/);
});
