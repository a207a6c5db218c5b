import { type Runner, run, type TaskList, Logger as WorkerLogger } from 'graphile-worker';
import { z } from 'zod';
import type { SecretBox } from '../core/crypto.ts';
import type { Db } from '../core/db.ts';
import type { Logger } from '../core/log.ts';
import { RECONCILE_TASK } from './index.ts';
import { reconcileInstance } from './reconciler.ts';

/** Payload of `instance:reconcile`, version 1. */
const reconcilePayload = z.object({ v: z.literal(1), instanceId: z.uuid() });

export interface WorkerDeps {
  db: Db;
  box: SecretBox;
  log: Logger;
  databaseUrl: string;
  concurrency: number;
}

export interface Worker {
  release(): Promise<void>;
}

/** graphile-worker's log lines, routed into winston at the matching level. */
function workerLogger(log: Logger): WorkerLogger {
  return new WorkerLogger((scope) => (level, message, meta) => {
    const winstonLevel =
      level === 'error' ? 'error' : level === 'warning' ? 'warn' : level === 'info' ? 'info' : 'debug';
    log.log(winstonLevel, message, { worker: scope, ...meta });
  });
}

/** Starts the job runner: provisioning, and later metering and billing, run here. */
export async function startWorker(deps: WorkerDeps): Promise<Worker> {
  const taskList: TaskList = {
    [RECONCILE_TASK]: async (payload, helpers) => {
      const { instanceId } = reconcilePayload.parse(payload);
      await reconcileInstance(
        { db: deps.db, box: deps.box, log: deps.log.child({ jobId: helpers.job.id }) },
        instanceId,
      );
    },
  };
  const runner: Runner = await run({
    connectionString: deps.databaseUrl,
    concurrency: deps.concurrency,
    noHandleSignals: true,
    pollInterval: 1000,
    taskList,
    crontab: '',
    logger: workerLogger(deps.log.child({ component: 'worker' })),
  });
  return { release: () => runner.stop() };
}
