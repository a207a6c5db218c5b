import type { JobHelpers, Task } from 'graphile-worker';
import { z } from 'zod';
import type { SecretBox } from '../core/crypto.ts';
import type { Db } from '../core/db.ts';
import type { Logger } from '../core/log.ts';
import { resyncFleet } from './drift.ts';
import { FLEET_UPGRADE_WATCH_MS, markFleetUpgradeFailed, runFleetUpgrade } from './fleet-upgrades.ts';
import {
  BACKUP_TASK,
  enqueueBackup,
  enqueueUnsettledFleetUpgrades,
  FLEET_UPGRADE_TASK,
  PURGE_TASK,
  RECONCILE_TASK,
  RESYNC_TASK,
  requeueReconcile,
  schedulePurge,
} from './index.ts';
import {
  backupInstance,
  isPermanent,
  markBackupFailed,
  markInstanceFailed,
  purgeInstance,
  type ReconcilerDeps,
  reconcileInstance,
} from './reconciler.ts';

/** How soon a reconcile waiting on a rollout or a migration looks at the cluster again. */
const WAIT_POLL_MS = 10_000;

/** Payloads, version 1. */
const instancePayload = z.object({ v: z.literal(1), instanceId: z.uuid() });
const backupPayload = instancePayload.extend({ backupId: z.uuid() });
const fleetUpgradePayload = z.object({ v: z.literal(1), fleetUpgradeId: z.uuid() });
/** The crontab's run of `FLEET_UPGRADE_TASK`: the safety net, not one upgrade. */
const fleetUpgradeSweepPayload = z.object({ v: z.literal(1), sweep: z.literal(true) });

/**
 * One job: `work`, retried by the queue with its exponential backoff when it throws; a
 * permanent error, or the last allowed attempt, calls `fail` instead, so a job never retries
 * forever or stops without a trace.
 */
function job<P>(
  deps: ReconcilerDeps,
  schema: z.ZodType<P>,
  work: (deps: ReconcilerDeps, payload: P) => Promise<void>,
  fail: (deps: ReconcilerDeps, payload: P, reason: string) => Promise<void>,
): Task {
  return async (raw, helpers: JobHelpers) => {
    const payload = schema.parse(raw);
    const jobDeps = { ...deps, log: deps.log.child({ jobId: helpers.job.id }) };
    try {
      await work(jobDeps, payload);
    } catch (error) {
      const lastAttempt = helpers.job.attempts >= helpers.job.max_attempts;
      if (!isPermanent(error) && !lastAttempt) throw error;
      const message = error instanceof Error ? error.message : String(error);
      await fail(
        jobDeps,
        payload,
        lastAttempt ? `${message} (after ${helpers.job.attempts} attempts)` : message,
      );
    }
  };
}

/** The provisioner's jobs. */
export function provisionerTasks(deps: {
  db: Db;
  box: SecretBox;
  log: Logger;
  targetFor?: ReconcilerDeps['targetFor'];
  /** Where add-on stacks live (infra/workspace.ts); none: add-on steps on real clusters are blocked. */
  pulumi?: ReconcilerDeps['pulumi'];
  /** How soon a reconcile waiting on the cluster looks again (default `WAIT_POLL_MS`). */
  waitPollMs?: number;
  /** How soon a fleet upgrade's driver looks at a wave in flight again (`FLEET_UPGRADE_WATCH_MS`). */
  fleetUpgradeWatchMs?: number;
}): Record<string, Task> {
  const failInstance = (jobDeps: ReconcilerDeps, { instanceId }: { instanceId: string }, reason: string) =>
    markInstanceFailed(jobDeps, instanceId, reason);
  const waitPollMs = deps.waitPollMs ?? WAIT_POLL_MS;
  const fleetUpgrade = job(
    deps,
    fleetUpgradePayload,
    (jobDeps, { fleetUpgradeId }) =>
      runFleetUpgrade(
        { ...jobDeps, watchMs: deps.fleetUpgradeWatchMs ?? FLEET_UPGRADE_WATCH_MS },
        fleetUpgradeId,
      ),
    (jobDeps, { fleetUpgradeId }, reason) => markFleetUpgradeFailed(jobDeps, fleetUpgradeId, reason),
  );
  return {
    [RECONCILE_TASK]: job(
      deps,
      instancePayload,
      async (jobDeps, { instanceId }) => {
        const result = await reconcileInstance(jobDeps, instanceId);
        if (result.state === 'waiting') await requeueReconcile(jobDeps.db, instanceId, waitPollMs);
      },
      failInstance,
    ),
    [PURGE_TASK]: job(
      deps,
      instancePayload,
      async (jobDeps, { instanceId }) => {
        const result = await purgeInstance(jobDeps, instanceId);
        if (result.state === 'waiting')
          await schedulePurge(jobDeps.db, instanceId, new Date(Date.now() + waitPollMs));
      },
      failInstance,
    ),
    [RESYNC_TASK]: async () => {
      const report = await resyncFleet(deps);
      deps.log.info('fleet resync', { ...report });
    },
    [FLEET_UPGRADE_TASK]: async (raw, helpers) => {
      if (!fleetUpgradeSweepPayload.safeParse(raw).success) return fleetUpgrade(raw, helpers);
      const queued = await enqueueUnsettledFleetUpgrades(deps.db);
      deps.log.info('fleet upgrades resync', { queued });
    },
    // A backup that cannot be taken fails alone: the server itself is fine.
    [BACKUP_TASK]: job(
      deps,
      backupPayload,
      async (jobDeps, { instanceId, backupId }) => {
        const result = await backupInstance(jobDeps, instanceId, backupId);
        if (result.state === 'waiting') await enqueueBackup(jobDeps.db, instanceId, backupId, waitPollMs);
      },
      (jobDeps, { instanceId, backupId }, reason) => markBackupFailed(jobDeps, instanceId, backupId, reason),
    ),
  };
}
