import type { Task } from 'graphile-worker';
import type { Db } from '../core/db.ts';
import type { Logger } from '../core/log.ts';
import { deleteExpiredIdempotencyKeys } from './idempotency.ts';

export const IDEMPOTENCY_CLEANUP_TASK = 'idempotency:cleanup';

/** The API's housekeeping jobs, and when they run. */
export function apiTasks(deps: { db: Db; log: Logger }): { tasks: Record<string, Task>; crontab: string } {
  return {
    tasks: {
      [IDEMPOTENCY_CLEANUP_TASK]: async () => {
        const deleted = await deleteExpiredIdempotencyKeys(deps.db);
        deps.log.info('expired idempotency keys deleted', { deleted });
      },
    },
    crontab: `0 * * * * ${IDEMPOTENCY_CLEANUP_TASK}`,
  };
}
