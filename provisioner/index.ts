import type { Tx } from '../core/db.ts';

export const RECONCILE_TASK = 'instance:reconcile';
export const PURGE_TASK = 'instance:purge';
export const BACKUP_TASK = 'instance:backup';

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

/**
 * Schedules the purge of a deleted instance for when its grace period ends. A later delete
 * (after a restore) moves the same keyed job; the task itself re-checks that the instance is
 * still deleting and due, so a restore needs no job removal to be safe.
 */
export async function schedulePurge(tx: Tx, instanceId: string, at: Date): Promise<void> {
  await tx.$executeRaw`select graphile_worker.add_job(
    ${PURGE_TASK},
    json_build_object('v', 1, 'instanceId', ${instanceId}::text),
    queue_name := ${`instance:${instanceId}`}::text,
    run_at := ${at}::timestamptz,
    job_key := ${`purge:${instanceId}`}::text,
    max_attempts := 25
  )`;
}

/** Drops a scheduled purge (the deletion was undone). */
export async function cancelPurge(tx: Tx, instanceId: string): Promise<void> {
  await tx.$executeRaw`select graphile_worker.remove_job(${`purge:${instanceId}`}::text)`;
}

/** Queues the backup `backupId` of the instance, behind the instance's other jobs. */
export async function enqueueBackup(tx: Tx, instanceId: string, backupId: string): Promise<void> {
  await tx.$executeRaw`select graphile_worker.add_job(
    ${BACKUP_TASK},
    json_build_object('v', 1, 'instanceId', ${instanceId}::text, 'backupId', ${backupId}::text),
    queue_name := ${`instance:${instanceId}`}::text,
    max_attempts := 5
  )`;
}
