import { EventEmitter } from 'node:events';
import os from 'node:os';
import { run, type Task, type WorkerEvents, Logger as WorkerLogger } from 'graphile-worker';
import pg from 'pg';
import type { Logger } from './log.ts';

export type { Task };

/**
 * A running job runner. `release` stops it gracefully: jobs in progress finish, then its
 * lifeline is let go.
 */
export interface Worker {
  /** graphile-worker's pool id: what this runner writes in the `locked_by` of its jobs. */
  readonly id: string;
  release(): Promise<void>;
}

/**
 * First key of the two-key advisory locks that keep job runners' lifelines ("wool" in ASCII),
 * so they never meet another user of advisory locks; the second key is `JobRunner.lockKey`.
 */
export const LIFELINE_LOCK_SPACE = 0x776f6f6c;

/** How often a runner looks for the jobs of dead runners, besides once at start. */
const SWEEP_INTERVAL_MS = 10_000;

/**
 * Settings of the lifeline's session. Keepalives let the server notice within about 30 s of
 * the last heartbeat that the host of a lifeline vanished (power loss, a network split: no FIN
 * is sent), and so free its lock; the idle timeouts, when the server sets them, would end a
 * perfectly live lifeline.
 */
const LIFELINE_SETTINGS: [string, string][] = [
  ['tcp_keepalives_idle', '15'],
  ['tcp_keepalives_interval', '5'],
  ['tcp_keepalives_count', '3'],
  ['idle_session_timeout', '0'],
  ['idle_in_transaction_session_timeout', '0'],
];

/**
 * The runner asks the server over its lifeline this often, and counts the lifeline lost when no
 * answer came in the timeout: cut off from the server, it stops (15 s at most) well before the
 * server gives up on it (30 s) and lets another runner take its jobs.
 */
const HEARTBEAT_MS = 5_000;
const HEARTBEAT_TIMEOUT_MS = 10_000;

/** graphile-worker's log lines, routed into winston at the matching level. */
function workerLogger(log: Logger): WorkerLogger {
  return new WorkerLogger((scope) => (level, message, meta) => {
    const winstonLevel =
      level === 'error' ? 'error' : level === 'warning' ? 'warn' : level === 'info' ? 'info' : 'debug';
    log.log(winstonLevel, message, { worker: scope, ...meta });
  });
}

type ConnectCallback = (
  error: Error | undefined,
  client: pg.PoolClient | undefined,
  done: (release?: unknown) => void,
) => void;

/**
 * graphile-worker's connections, which wait for `gate` before they are handed out (`query`
 * goes through `connect` too). The runner's id is only known once its pool exists, and its
 * lifeline must be held before it locks its first job: otherwise a sweep could find the lock
 * free, and the runner dead, while it runs that job.
 */
class GatedPool extends pg.Pool {
  gate: Promise<void> = Promise.resolve();

  override connect(): Promise<pg.PoolClient>;
  override connect(callback: ConnectCallback): void;
  override connect(callback?: ConnectCallback): Promise<pg.PoolClient> | undefined {
    if (!callback) return this.gate.then(() => super.connect());
    this.gate.then(
      () => super.connect(callback),
      (error: Error) => callback(error, undefined, () => {}),
    );
    return undefined;
  }
}

/**
 * Opens the runner's lifeline: one connection, held for the runner's life, whose session
 * advisory lock proves the runner alive. PostgreSQL frees the lock when the connection ends,
 * which a killed process's closed socket guarantees. The row is inserted and the lock taken in
 * one statement, so no one ever sees the row without the lock held.
 */
async function openLifeline(databaseUrl: string, runnerId: string): Promise<pg.Client> {
  const client = new pg.Client({
    connectionString: databaseUrl,
    keepAlive: true,
    query_timeout: HEARTBEAT_TIMEOUT_MS,
    application_name: `woolly lifeline ${runnerId}`,
  });
  await client.connect();
  try {
    // Only settings this server knows (idle_session_timeout is PostgreSQL 14+).
    await client.query(
      `select set_config(s.name, s.value, false)
         from unnest($1::text[], $2::text[]) as s(name, value)
        where s.name in (select name from pg_settings)`,
      [LIFELINE_SETTINGS.map(([name]) => name), LIFELINE_SETTINGS.map(([, value]) => value)],
    );
    await client.query(
      `with runner as (
         insert into "JobRunner" (id, host, pid) values ($2, $3, $4) returning "lockKey")
       select pg_advisory_lock($1, "lockKey") from runner`,
      [LIFELINE_LOCK_SPACE, runnerId, os.hostname(), process.pid],
    );
    return client;
  } catch (error) {
    await client.end().catch(() => {});
    throw error;
  }
}

/**
 * Releases the jobs (and job queues) locked by runners that are dead, and forgets those
 * runners. A runner is dead when its lifeline lock is free: taking it succeeds (and it is
 * given back at once). Jobs locked by anything without a JobRunner row (a runner of an older
 * release) are left to graphile-worker's own 4-hour rule. With `runnerIds`, releases those
 * runners instead, dead or not: a runner's own, once it has stopped. Returns the runners
 * released and how many of their jobs were still locked.
 */
export async function releaseDeadRunners(
  pool: pg.Pool,
  runnerIds?: string[],
): Promise<{ runners: string[]; jobs: number }> {
  const client = await pool.connect();
  try {
    await client.query('begin');
    const { rows } = runnerIds
      ? { rows: runnerIds.map((id) => ({ id })) }
      : await client.query<{ id: string }>(
          // CASE keeps the order: give back only a lock that was taken.
          `select id from "JobRunner"
            where case when pg_try_advisory_lock($1, "lockKey") then pg_advisory_unlock($1, "lockKey")
                       else false end`,
          [LIFELINE_LOCK_SPACE],
        );
    const runners = rows.map((row) => row.id);
    let jobs = 0;
    if (runners.length > 0) {
      const locked = await client.query<{ count: string }>(
        'select count(*) from graphile_worker.jobs where locked_by = any($1::text[])',
        [runners],
      );
      jobs = Number(locked.rows[0]?.count ?? 0);
      // What WorkerUtils.forceUnlockWorkers runs, here in the same transaction as the delete.
      await client.query('select graphile_worker.force_unlock_workers($1::text[])', [runners]);
      await client.query('delete from "JobRunner" where id = any($1::text[])', [runners]);
      // Wakes idle runners everywhere, as a new job does (graphile-worker's own payload), so
      // the released jobs do not wait for their next poll.
      if (jobs > 0) {
        await client.query(
          `select pg_notify('jobs:insert', json_build_object('r', random(), 'count', $1::int)::text)`,
          [jobs],
        );
      }
    }
    await client.query('commit');
    return { runners, jobs };
  } catch (error) {
    await client.query('rollback').catch(() => {});
    throw error;
  } finally {
    client.release();
  }
}

/**
 * Starts the job runner with the tasks the components contribute (each component exports its
 * own from its index.ts) and their periodic schedule in crontab syntax.
 *
 * Crash safety: graphile-worker keeps a job locked by a runner that was killed mid-job for 4
 * hours. Here each runner holds a lifeline (`openLifeline`) before it takes any job, and every
 * runner, at start and every `sweepIntervalMs`, releases the jobs of runners whose lifeline is
 * gone (`releaseDeadRunners`): a killed runner's jobs run again within seconds, a live one's
 * are never touched. Should the lifeline break while this process lives (the database
 * restarted, the network failed, a heartbeat went unanswered), the runner is no longer
 * provably alive and another may take its jobs: `onLifelineLost` is called, by default ending
 * the process at once, so a job never runs twice at the same time. The lifeline needs a real
 * session: behind a transaction-pooling proxy (PgBouncer's transaction mode) session locks do
 * not hold, so `databaseUrl` must reach PostgreSQL directly or in session mode.
 */
export async function startWorker(options: {
  databaseUrl: string;
  concurrency: number;
  log: Logger;
  tasks: Record<string, Task>;
  crontab: string;
  /** How often an idle runner looks for jobs that are due (default 1 s); new jobs wake it at once. */
  pollIntervalMs?: number;
  /** How often to look for dead runners' jobs (default 10 s). */
  sweepIntervalMs?: number;
  /** Called when the lifeline breaks while running (default: exit the process with code 70). */
  onLifelineLost?: (error: Error) => void;
}): Promise<Worker> {
  const log = options.log.child({ component: 'worker' });
  const pool = new GatedPool({
    connectionString: options.databaseUrl,
    max: Math.max(10, options.concurrency + 2),
  });
  pool.on('error', (error) => log.warn('idle worker database connection failed', { error }));
  pool.on('connect', (client) =>
    client.on('error', (error) => log.warn('worker database connection failed', { error })),
  );

  let lifeline: pg.Client | undefined;
  let heartbeat: NodeJS.Timeout | undefined;
  /** Set once `release` starts: the lifeline ending is then expected. */
  let stopping = false;
  const lifelineLost =
    options.onLifelineLost ??
    ((error: Error) => {
      log.error('the worker lifeline broke: exiting so that no job runs twice', { error });
      process.exit(70);
    });
  const events: WorkerEvents = new EventEmitter();
  let registered: Promise<string> | undefined;
  events.on('pool:create', ({ workerPool }) => {
    const runnerId = workerPool.id;
    registered = openLifeline(options.databaseUrl, runnerId).then((client) => {
      lifeline = client;
      let reported = false;
      const lost = (error?: Error) => {
        if (stopping || reported) return;
        reported = true;
        lifelineLost(error ?? new Error('the lifeline connection ended'));
      };
      client.on('error', lost);
      client.on('end', () => lost());
      heartbeat = setInterval(() => {
        client.query('select 1').catch((error: Error) => lost(error));
      }, HEARTBEAT_MS);
      return runnerId;
    });
    pool.gate = registered.then(() => {});
    // The runner sees a failure through its connections, startWorker through `registered`.
    pool.gate.catch(() => {});
  });

  const runner = await run({
    pgPool: pool,
    events,
    concurrency: options.concurrency,
    noHandleSignals: true,
    pollInterval: options.pollIntervalMs ?? 1000,
    taskList: options.tasks,
    crontab: options.crontab,
    logger: workerLogger(log),
  });
  let runnerId: string;
  try {
    if (!registered) throw new Error('graphile-worker started no worker pool');
    runnerId = await registered;
  } catch (error) {
    stopping = true;
    clearInterval(heartbeat);
    await runner.stop().catch(() => {});
    await lifeline?.end().catch(() => {});
    await pool.end();
    throw error;
  }

  let timer: NodeJS.Timeout | undefined;
  const sweep = async () => {
    try {
      const released = await releaseDeadRunners(pool);
      if (released.runners.length > 0) log.warn('released the jobs of dead job runners', released);
    } catch (error) {
      log.error('looking for dead job runners failed', { error });
    }
  };
  let sweeping = sweep();
  await sweeping;
  const schedule = () => {
    if (stopping) return;
    timer = setTimeout(() => {
      sweeping = sweep().then(schedule);
    }, options.sweepIntervalMs ?? SWEEP_INTERVAL_MS);
  };
  schedule();

  let released: Promise<void> | undefined;
  const release = async () => {
    stopping = true;
    clearTimeout(timer);
    await sweeping;
    try {
      await runner.stop();
      // Stopped: anything still locked in its name (a job a forced stop left) goes back now.
      await releaseDeadRunners(pool, [runnerId]);
    } finally {
      clearInterval(heartbeat);
      await lifeline?.end().catch(() => {});
      await pool.end();
    }
  };
  return {
    id: runnerId,
    release() {
      released ??= release();
      return released;
    },
  };
}
