/**
 * Crash safety of the job runner (core/worker.ts), with real processes on the real queue: a
 * runner killed mid-job (SIGKILL) leaves its job locked, and another runner releases it within
 * seconds, never while the first one lives; a runner that loses its lifeline stops at once.
 */
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { makeMasterKey } from '../../core/crypto.ts';
import { makeLogger } from '../../core/log.ts';
import { LIFELINE_LOCK_SPACE, releaseDeadRunners, startWorker } from '../../core/worker.ts';
import { makeTestDatabase, type TestDatabase } from '../support/db.ts';
import { BLOCK_TASK, spawnWorkerProcess, type WorkerProcess } from '../support/worker-processes.ts';

let database: TestDatabase;
let pool: pg.Pool;
const children: WorkerProcess[] = [];
const log = makeLogger({ log: { level: 'error', format: 'json' } }, new PassThrough().resume());
const masterKeys = [makeMasterKey('worker')];

before(async () => {
  database = await makeTestDatabase();
  pool = new pg.Pool({ connectionString: database.url, max: 3 });
});

after(async () => {
  for (const child of children) await child.kill();
  await pool.end();
  await database.release();
});

function blockingWorker(): WorkerProcess {
  const child = spawnWorkerProcess({ databaseUrl: database.url, masterKeys, tasks: 'block' });
  children.push(child);
  return child;
}

async function addBlockJob(queue: string): Promise<string> {
  const { rows } = await pool.query<{ id: string }>(
    'select id from graphile_worker.add_job($1, $2::json, queue_name := $3, max_attempts := 5)',
    [BLOCK_TASK, JSON.stringify({ queue }), queue],
  );
  return String(rows[0]?.id);
}

const jobRow = async (id: string) =>
  (
    await pool.query<{ locked_by: string | null; attempts: number }>(
      'select locked_by, attempts from graphile_worker.jobs where id = $1',
      [id],
    )
  ).rows[0];

const runners = async () =>
  (await pool.query<{ id: string }>('select id from "JobRunner" order by "startedAt"')).rows.map(
    (row) => row.id,
  );

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

test('a killed runner’s job runs again within seconds, and never while the runner lives', async () => {
  const jobId = await addBlockJob('instance:killed');
  const first = blockingWorker();
  const started = first.nextStarted();
  const firstId = await first.start();
  assert.equal(await started, jobId, first.tail());
  assert.equal((await jobRow(jobId))?.locked_by, firstId);

  // A second runner, in this process, sweeping five times a second.
  const done: string[] = [];
  const second = await startWorker({
    databaseUrl: database.url,
    concurrency: 1,
    log,
    tasks: {
      [BLOCK_TASK]: async (_payload, helpers) => {
        done.push(helpers.job.id);
      },
    },
    crontab: '',
    sweepIntervalMs: 200,
  });
  try {
    assert.deepEqual((await runners()).sort(), [firstId, second.id].sort());
    await new Promise((resolve) => setTimeout(resolve, 1500));
    assert.equal((await jobRow(jobId))?.locked_by, firstId, 'a live runner keeps its job');
    assert.deepEqual(done, []);

    const killedAt = Date.now();
    await first.kill('SIGKILL');
    await waitFor('the job is run to completion', async () => (await jobRow(jobId)) === undefined, 10_000);
    const took = Date.now() - killedAt;
    assert.deepEqual(done, [jobId]);
    assert.ok(took < 5_000, `released and run ${took} ms after the kill`);
    assert.deepEqual(await runners(), [second.id], 'the dead runner is forgotten');
    const queues = await pool.query(
      'select 1 from graphile_worker._private_job_queues where locked_by = $1',
      [firstId],
    );
    assert.equal(queues.rowCount, 0, 'its job queue is unlocked too');
  } finally {
    await second.release();
  }
  assert.deepEqual(await runners(), [], 'a runner that stops forgets itself');
});

test('a sweep never releases the job of a live runner in another process', async () => {
  const jobId = await addBlockJob('instance:alive');
  const child = blockingWorker();
  const started = child.nextStarted();
  const childId = await child.start();
  assert.equal(await started, jobId);
  for (let round = 0; round < 5; round++) {
    assert.deepEqual(await releaseDeadRunners(pool), { runners: [], jobs: 0 });
  }
  const row = await jobRow(jobId);
  assert.equal(row?.locked_by, childId);
  assert.equal(row?.attempts, 1, 'taken once');
  await child.kill();
  await waitFor(
    'the lifeline is gone',
    async () => (await releaseDeadRunners(pool)).runners.includes(childId),
    5_000,
  );
  const released = await jobRow(jobId);
  assert.equal(released?.locked_by, null, 'released once its runner is dead');
  await pool.query('delete from graphile_worker._private_jobs where id = $1', [jobId]);
});

test('jobs locked by a runner without a lifeline (an older release) are left to graphile-worker', async () => {
  const { rows } = await pool.query<{ id: string }>(
    `select id from graphile_worker.add_job($1, '{}'::json)`,
    [BLOCK_TASK],
  );
  const jobId = String(rows[0]?.id);
  await pool.query(
    `update graphile_worker._private_jobs set locked_at = now(), locked_by = 'pool-older-release' where id = $1`,
    [jobId],
  );
  assert.deepEqual(await releaseDeadRunners(pool), { runners: [], jobs: 0 });
  assert.equal((await jobRow(jobId))?.locked_by, 'pool-older-release');
  await pool.query('delete from graphile_worker._private_jobs where id = $1', [jobId]);
});

test('a runner whose lifeline breaks exits at once, so its jobs can safely run elsewhere', async () => {
  const child = blockingWorker();
  const childId = await child.start();
  const terminated = await pool.query(
    'select pg_terminate_backend(pid) from pg_stat_activity where application_name = $1',
    [`woolly lifeline ${childId}`],
  );
  assert.equal(terminated.rowCount, 1);
  assert.equal(await child.exited(), 'exited with code 70', child.tail());
});

test('a runner holds its lifeline before it takes its first job', async () => {
  const jobId = await addBlockJob('instance:first');
  const seen: { lockedBy: string | null; registered: boolean; lockFree: boolean }[] = [];
  const worker = await startWorker({
    databaseUrl: database.url,
    concurrency: 1,
    log,
    tasks: {
      [BLOCK_TASK]: async (_payload, helpers) => {
        const lockedBy = helpers.job.locked_by;
        const { rows } = await pool.query<{ registered: boolean; free: boolean | null }>(
          `select exists (select 1 from "JobRunner" where id = $1) as registered,
                  (select case when pg_try_advisory_lock($2, "lockKey") then pg_advisory_unlock($2, "lockKey")
                               else false end
                     from "JobRunner" where id = $1) as free`,
          [lockedBy, LIFELINE_LOCK_SPACE],
        );
        seen.push({ lockedBy, registered: rows[0]?.registered ?? false, lockFree: rows[0]?.free ?? true });
      },
    },
    crontab: '',
  });
  try {
    await waitFor('the queued job runs', async () => (await jobRow(jobId)) === undefined, 5_000);
    assert.deepEqual(seen, [{ lockedBy: worker.id, registered: true, lockFree: false }]);
  } finally {
    await worker.release();
  }
});

test('in-process, a broken lifeline is reported to onLifelineLost', async () => {
  let lost: Error | undefined;
  const worker = await startWorker({
    databaseUrl: database.url,
    concurrency: 1,
    log,
    tasks: { [BLOCK_TASK]: async () => {} },
    crontab: '',
    onLifelineLost: (error) => {
      lost = error;
    },
  });
  await pool.query('select pg_terminate_backend(pid) from pg_stat_activity where application_name = $1', [
    `woolly lifeline ${worker.id}`,
  ]);
  await waitFor('the loss is reported', async () => lost !== undefined, 5_000);
  assert.deepEqual((await releaseDeadRunners(pool)).runners, [worker.id], 'and others see it dead');
  await worker.release();
});
