import type { Task } from 'graphile-worker';
import { z } from 'zod';
import type { SecretBox } from '../core/crypto.ts';
import type { Db } from '../core/db.ts';
import type { Logger } from '../core/log.ts';
import { RECONCILE_TASK } from './index.ts';
import { reconcileInstance } from './reconciler.ts';

/** Payload of `instance:reconcile`, version 1. */
const reconcilePayload = z.object({ v: z.literal(1), instanceId: z.uuid() });

/** The provisioner's jobs. */
export function provisionerTasks(deps: { db: Db; box: SecretBox; log: Logger }): Record<string, Task> {
  return {
    [RECONCILE_TASK]: async (payload, helpers) => {
      const { instanceId } = reconcilePayload.parse(payload);
      await reconcileInstance({ ...deps, log: deps.log.child({ jobId: helpers.job.id }) }, instanceId);
    },
  };
}
