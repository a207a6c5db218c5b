import { run, type Task, Logger as WorkerLogger } from 'graphile-worker';
import type { Logger } from './log.ts';

export type { Task };

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

/**
 * Starts the job runner with the tasks the components contribute (each component exports its
 * own from its index.ts) and their periodic schedule in crontab syntax.
 */
export async function startWorker(options: {
  databaseUrl: string;
  concurrency: number;
  log: Logger;
  tasks: Record<string, Task>;
  crontab: string;
}): Promise<Worker> {
  const runner = await run({
    connectionString: options.databaseUrl,
    concurrency: options.concurrency,
    noHandleSignals: true,
    pollInterval: 1000,
    taskList: options.tasks,
    crontab: options.crontab,
    logger: workerLogger(options.log.child({ component: 'worker' })),
  });
  return { release: () => runner.stop() };
}
