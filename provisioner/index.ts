import { execute, type SqlClient, type Statement } from '../core/db.ts';

export const RECONCILE_TASK = 'instance:reconcile';
export const PURGE_TASK = 'instance:purge';
export const BACKUP_TASK = 'instance:backup';
export const RESYNC_TASK = 'fleet:resync';
export const FLEET_UPGRADE_TASK = 'fleet:upgrade';

/**
 * The provisioner's periodic jobs: the fleet resync every five minutes, and every minute the
 * fleet upgrades' safety net (`enqueueUnsettledFleetUpgrades`).
 */
export const PROVISIONER_CRONTAB = [
  `*/5 * * * * ${RESYNC_TASK}`,
  `* * * * * ${FLEET_UPGRADE_TASK} {v:1,sweep:true}`,
].join('\n');

/**
 * Queues a reconcile of the instance in the caller's transaction, so the job exists exactly
 * when the change that needs it commits. The job key is the instance id: a reconcile already
 * waiting absorbs this one, since the reconciler reads the latest desired state anyway. The
 * per-instance queue runs an instance's jobs one at a time, even when one is already running.
 */
export function reconcileJobStatement(instanceId: string): Statement {
  return {
    name: 'job-reconcile',
    text: `select graphile_worker.add_job($1::text, json_build_object('v', 1, 'instanceId', $2::text),
             queue_name := $3::text, job_key := $2::text, max_attempts := 10)`,
    values: [RECONCILE_TASK, instanceId, `instance:${instanceId}`],
  };
}

/**
 * The periodic safety net: queues a reconcile for every instance whose desired state is not
 * yet applied (provisioning or updating, or a suspended or deleting one with a newer
 * generation), so a lost job, a crashed worker or a dropped notification never leaves one
 * stuck. A reconcile already queued keeps its time (`preserve_run_at`), so a retry waiting
 * out its backoff is not hurried. Returns how many were queued or kept.
 */
export async function enqueueUnsettledReconciles(client: SqlClient): Promise<number> {
  return execute(client, {
    name: 'job-resync',
    text: `select graphile_worker.add_job($1::text, json_build_object('v', 1, 'instanceId', id::text),
             queue_name := 'instance:' || id::text, job_key := id::text, job_key_mode := 'preserve_run_at',
             max_attempts := 10)
             from "Instance"
            where status in ('provisioning', 'updating')
               or (status in ('suspended', 'deleting') and "observedGeneration" < generation)`,
    values: [RECONCILE_TASK],
  });
}

/**
 * Queues the instance's next look at the cluster, `delayMs` from now, while a step waits on it
 * (a rollout, a migration). A reconcile queued meanwhile for a change keeps its earlier time.
 */
export async function requeueReconcile(
  client: SqlClient,
  instanceId: string,
  delayMs: number,
): Promise<void> {
  await execute(client, {
    name: 'job-requeue',
    text: `select graphile_worker.add_job($1::text, json_build_object('v', 1, 'instanceId', $2::text),
             queue_name := $3::text, run_at := now() + $4::int * interval '1 millisecond',
             job_key := $2::text, job_key_mode := 'preserve_run_at', max_attempts := 10)`,
    values: [RECONCILE_TASK, instanceId, `instance:${instanceId}`, delayMs],
  });
}

/** Queues a reconcile of the instance (`reconcileJobStatement`) on `client`. */
export async function enqueueReconcile(client: SqlClient, instanceId: string): Promise<void> {
  await execute(client, reconcileJobStatement(instanceId));
}

/**
 * Schedules the purge of a deleted instance for when its grace period ends. A later delete
 * (after a restore) moves the same keyed job; the task itself re-checks that the instance is
 * still deleting and due, so a restore needs no job removal to be safe.
 */
export async function schedulePurge(client: SqlClient, instanceId: string, at: Date): Promise<void> {
  await execute(client, {
    text: `select graphile_worker.add_job($1::text, json_build_object('v', 1, 'instanceId', $2::text),
             queue_name := $3::text, run_at := $4::timestamptz, job_key := $5::text, max_attempts := 25)`,
    values: [PURGE_TASK, instanceId, `instance:${instanceId}`, at, `purge:${instanceId}`],
  });
}

/** Drops a scheduled purge (the deletion was undone). */
export async function cancelPurge(client: SqlClient, instanceId: string): Promise<void> {
  await execute(client, {
    text: 'select graphile_worker.remove_job($1::text)',
    values: [`purge:${instanceId}`],
  });
}

/**
 * Queues the backup `backupId` of the instance, behind the instance's other jobs; `delayMs`
 * later when it is a backup looking again at its running Job.
 */
export async function enqueueBackup(
  client: SqlClient,
  instanceId: string,
  backupId: string,
  delayMs = 0,
): Promise<void> {
  await execute(client, {
    text: `select graphile_worker.add_job($1::text,
             json_build_object('v', 1, 'instanceId', $2::text, 'backupId', $3::text),
             queue_name := $4::text, run_at := now() + $5::int * interval '1 millisecond',
             job_key := $6::text, max_attempts := 5)`,
    values: [BACKUP_TASK, instanceId, backupId, `instance:${instanceId}`, delayMs, `backup:${backupId}`],
  });
}

/**
 * Queues a run of a fleet upgrade's driver `delayMs` from now. One job per upgrade (its key),
 * in a queue of its own so its runs never overlap; a run already waiting moves to the new time.
 */
export async function enqueueFleetUpgrade(
  client: SqlClient,
  fleetUpgradeId: string,
  delayMs = 0,
): Promise<void> {
  await execute(client, {
    name: 'job-fleet-upgrade',
    text: `select graphile_worker.add_job($1::text, json_build_object('v', 1, 'fleetUpgradeId', $2::text),
             queue_name := $3::text, run_at := now() + $4::int * interval '1 millisecond',
             job_key := $3::text, max_attempts := 25)`,
    values: [FLEET_UPGRADE_TASK, fleetUpgradeId, `fleet-upgrade:${fleetUpgradeId}`, delayMs],
  });
}

/**
 * The fleet upgrades' safety net: queues the driver of every upgrade still running or still
 * watching a wave in flight, so a lost job or a crashed worker never leaves one stalled. A run
 * already queued keeps its time. Returns how many were queued or kept.
 */
export async function enqueueUnsettledFleetUpgrades(client: SqlClient): Promise<number> {
  return execute(client, {
    name: 'job-fleet-upgrade-sweep',
    text: `select graphile_worker.add_job($1::text, json_build_object('v', 1, 'fleetUpgradeId', u.id::text),
             queue_name := 'fleet-upgrade:' || u.id::text, job_key := 'fleet-upgrade:' || u.id::text,
             job_key_mode := 'preserve_run_at', max_attempts := 25)
             from "FleetUpgrade" u
            where u.status = 'running'
               or exists (select 1 from "FleetUpgradeMember" m
                           where m."fleetUpgradeId" = u.id and m.status = 'upgrading')`,
    values: [FLEET_UPGRADE_TASK],
  });
}
