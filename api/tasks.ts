import type { Task } from 'graphile-worker';
import type { Db } from '../core/db.ts';
import type { Logger } from '../core/log.ts';
import { deleteStaleLoginThrottles } from './auth/local.ts';
import { deleteExpiredIdempotencyKeys } from './idempotency.ts';

export const IDEMPOTENCY_CLEANUP_TASK = 'idempotency:cleanup';
export const LOGIN_THROTTLE_CLEANUP_TASK = 'login-throttle:cleanup';

/** The API's housekeeping jobs, and when they run. */
export function apiTasks(deps: { db: Db; log: Logger }): { tasks: Record<string, Task>; crontab: string } {
  return {
    tasks: {
      [IDEMPOTENCY_CLEANUP_TASK]: async () => {
        const deleted = await deleteExpiredIdempotencyKeys(deps.db);
        deps.log.info('expired idempotency keys deleted', { deleted });
      },
      [LOGIN_THROTTLE_CLEANUP_TASK]: async () => {
        const deleted = await deleteStaleLoginThrottles(deps.db);
        deps.log.info('stale sign-in failure counts deleted', { deleted });
      },
    },
    crontab: [`0 * * * * ${IDEMPOTENCY_CLEANUP_TASK}`, `30 * * * * ${LOGIN_THROTTLE_CLEANUP_TASK}`].join(
      '\n',
    ),
  };
}
