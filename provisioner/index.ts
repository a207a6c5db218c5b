import type { Tx } from '../core/db.ts';

export const RECONCILE_TASK = 'instance:reconcile';

/**
 * Queues a reconcile of the instance in the caller's transaction, so the job exists exactly
 * when the change that needs it commits. The job key is the instance id: a reconcile already
 * waiting absorbs this one, since the reconciler reads the latest desired state anyway. The
 * per-instance queue runs an instance's jobs one at a time, even when one is already running.
 */
export async function enqueueReconcile(tx: Tx, instanceId: string): Promise<void> {
  await tx.$executeRaw`select graphile_worker.add_job(
    ${RECONCILE_TASK},
    json_build_object('v', 1, 'instanceId', ${instanceId}::text),
    queue_name := ${`instance:${instanceId}`}::text,
    job_key := ${instanceId}::text,
    max_attempts := 10
  )`;
}
