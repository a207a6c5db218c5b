import type { Task } from 'graphile-worker';
import { z } from 'zod';
import type { SecretBox } from '../core/crypto.ts';
import type { Db } from '../core/db.ts';
import type { Logger } from '../core/log.ts';
import { BACKUP_TASK, PURGE_TASK, RECONCILE_TASK } from './index.ts';
import { backupInstance, purgeInstance, reconcileInstance } from './reconciler.ts';

/** Payloads, version 1. */
const instancePayload = z.object({ v: z.literal(1), instanceId: z.uuid() });
const backupPayload = instancePayload.extend({ backupId: z.uuid() });

/** The provisioner's jobs. */
export function provisionerTasks(deps: { db: Db; box: SecretBox; log: Logger }): Record<string, Task> {
  const withJob = (helpers: { job: { id: string } }) => ({
    ...deps,
    log: deps.log.child({ jobId: helpers.job.id }),
  });
  return {
    [RECONCILE_TASK]: async (payload, helpers) => {
      const { instanceId } = instancePayload.parse(payload);
      await reconcileInstance(withJob(helpers), instanceId);
    },
    [PURGE_TASK]: async (payload, helpers) => {
      const { instanceId } = instancePayload.parse(payload);
      await purgeInstance(withJob(helpers), instanceId);
    },
    [BACKUP_TASK]: async (payload, helpers) => {
      const { instanceId, backupId } = backupPayload.parse(payload);
      await backupInstance(withJob(helpers), instanceId, backupId);
    },
  };
}
