/**
 * Failure handling with the real job queue (graphile-worker on the test PostgreSQL): a
 * permanent error fails the instance at once; a transient one is retried with backoff until
 * the attempts run out; staff retry a failed instance through the API and it recovers.
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
const behaviour = new Map<string, 'permanent' | 'transient' | 'ok'>();
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

async function provisioning(mode: 'permanent' | 'transient'): Promise<{ id: string; domain: string }> {
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
