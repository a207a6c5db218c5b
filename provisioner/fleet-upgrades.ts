import type { Actor, RequestContext } from '../api/context.ts';
import { upgradeInstanceInFleet } from '../api/instances/instance-actions.ts';
import type { Db, Tx } from '../core/db.ts';
import { AppError } from '../core/errors.ts';
import type {
  FleetUpgradeMemberStatus,
  FleetUpgradeStatus,
  InstanceStatus,
} from '../core/generated/prisma/enums.ts';
import type { Logger } from '../core/log.ts';
import { enqueueFleetUpgrade } from './index.ts';

/** How long the driver waits before it looks at a wave in flight again. */
export const FLEET_UPGRADE_WATCH_MS = 5_000;

export interface FleetUpgradeDeps {
  db: Db;
  log: Logger;
  /** Delay of the driver's next look while a wave is in flight (`FLEET_UPGRADE_WATCH_MS`). */
  watchMs: number;
}

/** What one run of the driver left behind. */
export interface FleetUpgradeProgress {
  status: FleetUpgradeStatus;
  currentWave: number;
  /** Servers whose upgrade this run started. */
  started: number;
  /** True while there is something left to watch: the driver runs again after `watchMs`. */
  watching: boolean;
}

type MemberOutcome = { status: FleetUpgradeMemberStatus; note?: string };

interface ObservedInstance {
  status: InstanceStatus;
  statusReason: string | null;
  mastodonVersion: string;
  observedGeneration: number;
  domain: string;
}

/**
 * Where a server of the wave in flight stands. Done when it runs the target version with the
 * upgrade's generation (or a later one) applied; failed when it failed on that version; skipped
 * when someone else took it elsewhere (deleted, suspended, or on another version now), since
 * its outcome then says nothing about the upgrade.
 */
function outcomeOf(
  target: string,
  member: { generation: number | null },
  instance: ObservedInstance | undefined,
): MemberOutcome {
  if (!instance || instance.status === 'deleting' || instance.status === 'deleted') {
    return { status: 'skipped', note: 'deleted meanwhile' };
  }
  if (instance.mastodonVersion !== target) {
    return { status: 'skipped', note: `changed meanwhile: now on ${instance.mastodonVersion}` };
  }
  if (instance.status === 'failed') return { status: 'failed', note: instance.statusReason ?? 'failed' };
  if (instance.status === 'suspended') return { status: 'skipped', note: 'suspended meanwhile' };
  if (instance.status === 'running' && instance.observedGeneration >= (member.generation ?? 0)) {
    return { status: 'succeeded' };
  }
  return { status: 'upgrading' };
}

/** Locks the fleet upgrade's row: every run of the driver and every stop take turns on it. */
async function lockFleetUpgrade(tx: Tx, fleetUpgradeId: string) {
  await tx.$queryRaw`select 1 from "FleetUpgrade" where id = ${fleetUpgradeId}::uuid for update`;
  return tx.fleetUpgrade.findUnique({ where: { id: fleetUpgradeId } });
}

/**
 * The staff member who started the upgrade, as the actor of each server's change (its audit
 * row and the staff check of the change path); null once they are no longer staff. The audit
 * log has no label for a job acting for someone, so it reads `session:<userId>`.
 */
async function findStaffActor(db: Db, userId: string): Promise<Actor | null> {
  const user = await db.user.findUnique({
    where: { id: userId },
    select: { id: true, email: true, staffRole: true },
  });
  if (!user?.staffRole) return null;
  return {
    userId: user.id,
    email: user.email,
    staffRole: user.staffRole,
    scopes: ['admin'],
    authMethod: 'session',
    tokenId: null,
  };
}

/**
 * Records the outcome of each server of the wave in flight, ends the upgrade as `failed` at
 * the first failed one, and once the wave in flight is over, moves on to the next wave (or ends
 * the upgrade as `succeeded` after the last). All in one transaction on the locked row.
 */
async function observe(deps: FleetUpgradeDeps, fleetUpgradeId: string, log: Logger) {
  return deps.db.$transaction(async (tx) => {
    const upgrade = await lockFleetUpgrade(tx, fleetUpgradeId);
    if (!upgrade) return null;
    const upgrading = await tx.fleetUpgradeMember.findMany({
      where: { fleetUpgradeId, status: 'upgrading' },
      orderBy: { position: 'asc' },
    });
    const instances = new Map(
      (
        await tx.instance.findMany({
          where: { id: { in: upgrading.map((member) => member.instanceId) } },
          select: {
            id: true,
            status: true,
            statusReason: true,
            mastodonVersion: true,
            observedGeneration: true,
            domain: true,
          },
        })
      ).map((instance) => [instance.id, instance]),
    );
    let status = upgrade.status;
    let currentWave = upgrade.currentWave;
    let stillUpgrading = 0;
    const now = new Date();
    for (const member of upgrading) {
      const instance = instances.get(member.instanceId);
      const outcome = outcomeOf(upgrade.targetVersion, member, instance);
      if (outcome.status === 'upgrading') {
        stillUpgrading += 1;
        continue;
      }
      await tx.fleetUpgradeMember.update({
        where: { id: member.id },
        data: { status: outcome.status, note: outcome.note ?? null, finishedAt: now },
      });
      log.info('fleet upgrade: server settled', {
        instanceId: member.instanceId,
        wave: member.wave,
        outcome: outcome.status,
        note: outcome.note,
      });
      if (outcome.status === 'failed' && status === 'running') {
        status = 'failed';
        const reason = `${instance?.domain ?? member.instanceId} failed in wave ${member.wave}: ${outcome.note}`;
        await tx.fleetUpgrade.update({
          where: { id: fleetUpgradeId },
          data: { status, reason, finishedAt: now },
        });
        log.warn('fleet upgrade failed', { wave: member.wave, reason });
      }
    }
    if (status !== 'running' || stillUpgrading > 0) return { upgrade, status, currentWave };
    // A wave partly started (a crash, or a run that stopped mid-wave) finishes starting first.
    const unstarted = await tx.fleetUpgradeMember.count({
      where: { fleetUpgradeId, status: 'pending', wave: currentWave },
    });
    if (unstarted > 0) return { upgrade, status, currentWave };
    const next = await tx.fleetUpgradeMember.findFirst({
      where: { fleetUpgradeId, status: 'pending', wave: { gt: currentWave } },
      orderBy: { wave: 'asc' },
      select: { wave: true },
    });
    if (next) {
      currentWave = next.wave;
      await tx.fleetUpgrade.update({ where: { id: fleetUpgradeId }, data: { currentWave } });
      log.info('fleet upgrade: wave starts', { wave: currentWave });
    } else {
      status = 'succeeded';
      await tx.fleetUpgrade.update({ where: { id: fleetUpgradeId }, data: { status, finishedAt: now } });
      log.info('fleet upgrade succeeded', { waves: currentWave });
    }
    return { upgrade, status, currentWave };
  });
}

/**
 * Starts one server's upgrade through the shared change path, in the transaction that marks
 * it `upgrading`, with the upgrade's row locked: a server is started only while the upgrade
 * runs and only from `pending`, so concurrent or repeated runs never start it twice. A
 * refusal of the change path (the server is not running, is gone, or has this version or a
 * newer one) rolls that transaction back and skips the server, noting why.
 */
async function startMember(
  deps: FleetUpgradeDeps,
  ctx: RequestContext,
  fleetUpgradeId: string,
  memberId: string,
): Promise<'started' | 'skipped' | 'not-started'> {
  try {
    return await deps.db.$transaction(async (tx) => {
      const upgrade = await lockFleetUpgrade(tx, fleetUpgradeId);
      const member = await tx.fleetUpgradeMember.findUnique({ where: { id: memberId } });
      if (upgrade?.status !== 'running' || member?.status !== 'pending') return 'not-started';
      const generation = await upgradeInstanceInFleet(tx, ctx, member.instanceId, upgrade.targetVersion, {
        fleetUpgradeId,
        wave: member.wave,
      });
      await tx.fleetUpgradeMember.update({
        where: { id: memberId },
        data: { status: 'upgrading', generation, startedAt: new Date() },
      });
      ctx.log.info('fleet upgrade: server upgrading', {
        instanceId: member.instanceId,
        wave: member.wave,
        generation,
      });
      return 'started';
    });
  } catch (error) {
    if (!(error instanceof AppError)) throw error;
    const skipped = await deps.db.$transaction(async (tx) => {
      await lockFleetUpgrade(tx, fleetUpgradeId);
      const now = new Date();
      const { count } = await tx.fleetUpgradeMember.updateMany({
        where: { id: memberId, status: 'pending' },
        data: { status: 'skipped', note: error.detail, startedAt: now, finishedAt: now },
      });
      return count;
    });
    ctx.log.info('fleet upgrade: server skipped', { memberId, note: error.detail });
    return skipped > 0 ? 'skipped' : 'not-started';
  }
}

/** Ends a running upgrade with `status` and `reason`; false when it was over already. */
async function endFleetUpgrade(
  db: Db,
  fleetUpgradeId: string,
  status: 'stopped' | 'failed',
  reason: string,
): Promise<boolean> {
  const { count } = await db.fleetUpgrade.updateMany({
    where: { id: fleetUpgradeId, status: 'running' },
    data: { status, reason, finishedAt: new Date() },
  });
  return count > 0;
}

/**
 * One run of a fleet upgrade's driver: records how the servers of the wave in flight came out,
 * then starts the servers of the current wave not yet started. Idempotent and safe to run
 * twice at once or after a crash at any point: each server's start commits with its change,
 * on the locked upgrade row, and starts only from `pending`.
 */
export async function advanceFleetUpgrade(
  deps: FleetUpgradeDeps,
  fleetUpgradeId: string,
): Promise<FleetUpgradeProgress | null> {
  const log = deps.log.child({ fleetUpgradeId });
  const observed = await observe(deps, fleetUpgradeId, log);
  if (!observed) return null;
  const { upgrade, status, currentWave } = observed;
  let started = 0;
  if (status === 'running') {
    const actor = await findStaffActor(deps.db, upgrade.createdById);
    if (!actor) {
      // Each change is made in their name; without a staff member behind it, nothing more starts.
      const reason = 'Stopped: the account that started it is no longer staff.';
      if (await endFleetUpgrade(deps.db, fleetUpgradeId, 'stopped', reason)) {
        log.warn('fleet upgrade stopped', { reason });
      }
    } else {
      const ctx: RequestContext = { actor, requestId: `fleet-upgrade:${fleetUpgradeId}`, log };
      const pending = await deps.db.fleetUpgradeMember.findMany({
        where: { fleetUpgradeId, status: 'pending', wave: currentWave },
        orderBy: { position: 'asc' },
        select: { id: true },
      });
      for (const member of pending) {
        if ((await startMember(deps, ctx, fleetUpgradeId, member.id)) === 'started') started += 1;
      }
    }
  }
  const [now, upgrading] = await Promise.all([
    deps.db.fleetUpgrade.findUniqueOrThrow({ where: { id: fleetUpgradeId }, select: { status: true } }),
    deps.db.fleetUpgradeMember.count({ where: { fleetUpgradeId, status: 'upgrading' } }),
  ]);
  return {
    status: now.status,
    currentWave,
    started,
    // A stopped or failed upgrade still watches its wave in flight until every server settles.
    watching: now.status === 'running' || upgrading > 0,
  };
}

/** The driver's job: one run, then the next one queued while there is something to watch. */
export async function runFleetUpgrade(deps: FleetUpgradeDeps, fleetUpgradeId: string): Promise<void> {
  const progress = await advanceFleetUpgrade(deps, fleetUpgradeId);
  if (progress?.watching) await enqueueFleetUpgrade(deps.db, fleetUpgradeId, deps.watchMs);
}

/** The driver itself cannot go on (retries spent): the upgrade ends as failed, saying why. */
export async function markFleetUpgradeFailed(
  deps: Pick<FleetUpgradeDeps, 'db' | 'log'>,
  fleetUpgradeId: string,
  reason: string,
): Promise<void> {
  if (await endFleetUpgrade(deps.db, fleetUpgradeId, 'failed', `The upgrade driver failed: ${reason}`)) {
    deps.log.warn('fleet upgrade failed', { fleetUpgradeId, reason });
  }
}
