import { type Db, isUniqueViolation, type Prisma } from '../../core/db.ts';
import { compareMastodonVersions } from '../../core/domain/mastodon-version.ts';
import { AppError } from '../../core/errors.ts';
import type { FleetUpgradeMemberStatus, FleetUpgradeStatus } from '../../core/generated/prisma/enums.ts';
import { enqueueFleetUpgrade } from '../../provisioner/index.ts';
import { audit } from '../audit.ts';
import type { ApiDeps, RequestContext } from '../context.ts';
import { assertStaff } from '../policy.ts';

/** What staff ask for (api/openapi.yaml, FleetUpgradeCreate). */
export interface FleetUpgradeCreate {
  mastodonVersion: string;
  waveSize: number;
  clusterId?: string | undefined;
  fromVersion?: string | undefined;
}

type Counts = Record<FleetUpgradeMemberStatus, number>;
const noCounts = (): Counts => ({ pending: 0, upgrading: 0, succeeded: 0, failed: 0, skipped: 0 });

type FleetUpgradeRow = Prisma.FleetUpgradeGetPayload<object>;

/** One fleet upgrade runs at a time; `id` names the running one when it is known. */
const alreadyRunning = (id?: string) =>
  new AppError(
    'conflict',
    `${id ? `Fleet upgrade ${id} is` : 'Another fleet upgrade is'} still running, and one runs at a time: stop it (POST /v1/fleet-upgrades/{id}/stop) or let it finish first.`,
  );

/** True when `version` is a release tag older than `target`; a version that is no tag never is. */
function isOlder(version: string, target: string): boolean {
  try {
    return compareMastodonVersions(version, target) < 0;
  } catch {
    return false;
  }
}

/**
 * Starts a fleet upgrade: every running server older than the target (within the filters),
 * oldest first, split into waves of `waveSize`, and the driver queued (provisioner/
 * fleet-upgrades.ts) in the same transaction. One runs at a time: a running one answers
 * `conflict`, and the partial unique index on running upgrades settles a race between two.
 */
export async function createFleetUpgrade(deps: ApiDeps, ctx: RequestContext, input: FleetUpgradeCreate) {
  assertStaff(ctx.actor);
  const { mastodonVersion: target, waveSize, clusterId, fromVersion } = input;
  const id = await deps.db
    .$transaction(async (tx) => {
      if (clusterId && !(await tx.cluster.findUnique({ where: { id: clusterId }, select: { id: true } }))) {
        throw new AppError('unprocessable', `There is no cluster ${clusterId}.`, {
          errors: [{ field: 'clusterId', message: 'Unknown cluster.' }],
        });
      }
      const running = await tx.fleetUpgrade.findFirst({ where: { status: 'running' }, select: { id: true } });
      if (running) throw alreadyRunning(running.id);
      const candidates = await tx.instance.findMany({
        where: {
          status: 'running',
          ...(clusterId ? { clusterId } : {}),
          ...(fromVersion ? { mastodonVersion: fromVersion } : {}),
        },
        orderBy: [{ createdAt: 'asc' }, { id: 'asc' }],
        select: { id: true, mastodonVersion: true },
      });
      const members = candidates.filter((instance) => isOlder(instance.mastodonVersion, target));
      if (members.length === 0) {
        throw new AppError(
          'unprocessable',
          `No running server${clusterId || fromVersion ? ' matching the filters' : ''} is on a version older than ${target}: there is nothing to upgrade.`,
          { errors: [{ field: 'mastodonVersion', message: 'Must be newer than some running server.' }] },
        );
      }
      const upgrade = await tx.fleetUpgrade.create({
        data: {
          targetVersion: target,
          waveSize,
          clusterId: clusterId ?? null,
          fromVersion: fromVersion ?? null,
          status: 'running',
          createdById: ctx.actor.userId,
        },
      });
      await tx.fleetUpgradeMember.createMany({
        data: members.map((instance, position) => ({
          fleetUpgradeId: upgrade.id,
          instanceId: instance.id,
          position,
          wave: Math.floor(position / waveSize) + 1,
          fromVersion: instance.mastodonVersion,
        })),
      });
      await audit(tx, ctx, {
        action: 'fleet_upgrade.create',
        targetType: 'fleet_upgrade',
        targetId: upgrade.id,
        data: {
          mastodonVersion: target,
          waveSize,
          clusterId: clusterId ?? null,
          fromVersion: fromVersion ?? null,
          servers: members.length,
          waves: Math.ceil(members.length / waveSize),
        },
      });
      await enqueueFleetUpgrade(tx, upgrade.id);
      return upgrade.id;
    })
    .catch((error: unknown) => {
      if (isUniqueViolation(error)) throw alreadyRunning();
      throw error;
    });
  ctx.log.info('fleet upgrade created', { fleetUpgradeId: id, mastodonVersion: target, waveSize });
  return getFleetUpgrade(deps, ctx, id);
}

/**
 * Stops a running fleet upgrade: no further wave starts. The servers of the wave in flight go
 * on to the end of their own upgrade, and the driver still records how they come out.
 */
export async function stopFleetUpgrade(deps: ApiDeps, ctx: RequestContext, id: string) {
  assertStaff(ctx.actor);
  await deps.db.$transaction(async (tx) => {
    // The driver starts each server on this lock, so none starts after the stop commits.
    await tx.$queryRaw`select 1 from "FleetUpgrade" where id = ${id}::uuid for update`;
    const upgrade = await tx.fleetUpgrade.findUnique({ where: { id } });
    if (!upgrade) throw new AppError('not_found', `No fleet upgrade ${id}.`);
    if (upgrade.status !== 'running') {
      throw new AppError('conflict', `The fleet upgrade is over already: it ${upgrade.status}.`);
    }
    await tx.fleetUpgrade.update({
      where: { id },
      data: { status: 'stopped', reason: `Stopped by ${ctx.actor.email}.`, finishedAt: new Date() },
    });
    await audit(tx, ctx, {
      action: 'fleet_upgrade.stop',
      targetType: 'fleet_upgrade',
      targetId: id,
      data: { wave: upgrade.currentWave },
    });
  });
  ctx.log.info('fleet upgrade stopped', { fleetUpgradeId: id });
  return getFleetUpgrade(deps, ctx, id);
}

/** Per upgrade, how many servers of each wave are in each state. */
async function countMembers(db: Db, ids: string[]): Promise<Map<string, Map<number, Counts>>> {
  const groups = await db.fleetUpgradeMember.groupBy({
    by: ['fleetUpgradeId', 'wave', 'status'],
    where: { fleetUpgradeId: { in: ids } },
    _count: { _all: true },
  });
  const byUpgrade = new Map<string, Map<number, Counts>>();
  for (const group of groups) {
    const waves = byUpgrade.get(group.fleetUpgradeId) ?? new Map<number, Counts>();
    const counts = waves.get(group.wave) ?? noCounts();
    counts[group.status] += group._count._all;
    waves.set(group.wave, counts);
    byUpgrade.set(group.fleetUpgradeId, waves);
  }
  return byUpgrade;
}

function present(upgrade: FleetUpgradeRow, waves: Map<number, Counts>) {
  const servers = noCounts();
  for (const counts of waves.values()) {
    for (const status of Object.keys(servers) as FleetUpgradeMemberStatus[])
      servers[status] += counts[status];
  }
  return {
    id: upgrade.id,
    mastodonVersion: upgrade.targetVersion,
    waveSize: upgrade.waveSize,
    clusterId: upgrade.clusterId,
    fromVersion: upgrade.fromVersion,
    status: upgrade.status,
    reason: upgrade.reason,
    currentWave: upgrade.currentWave,
    waveCount: Math.max(1, ...waves.keys()),
    servers,
    createdById: upgrade.createdById,
    createdAt: upgrade.createdAt.toISOString(),
    finishedAt: upgrade.finishedAt?.toISOString() ?? null,
  };
}

/** One fleet upgrade with each wave's counts and every server, in upgrade order. */
export async function getFleetUpgrade(deps: ApiDeps, ctx: RequestContext, id: string) {
  assertStaff(ctx.actor);
  const upgrade = await deps.db.fleetUpgrade.findUnique({ where: { id } });
  if (!upgrade) throw new AppError('not_found', `No fleet upgrade ${id}.`);
  const [counts, members] = await Promise.all([
    countMembers(deps.db, [id]),
    deps.db.fleetUpgradeMember.findMany({ where: { fleetUpgradeId: id }, orderBy: { position: 'asc' } }),
  ]);
  const domains = new Map(
    (
      await deps.db.instance.findMany({
        where: { id: { in: members.map((member) => member.instanceId) } },
        select: { id: true, domain: true },
      })
    ).map((instance) => [instance.id, instance.domain]),
  );
  const waves = counts.get(id) ?? new Map<number, Counts>();
  return {
    ...present(upgrade, waves),
    waves: [...waves.entries()].sort(([a], [b]) => a - b).map(([wave, count]) => ({ wave, ...count })),
    members: members.map((member) => ({
      instanceId: member.instanceId,
      domain: domains.get(member.instanceId) ?? null,
      wave: member.wave,
      status: member.status,
      fromVersion: member.fromVersion,
      note: member.note,
      startedAt: member.startedAt?.toISOString() ?? null,
      finishedAt: member.finishedAt?.toISOString() ?? null,
    })),
  };
}

/** A page of fleet upgrades, newest first; the cursor is the id of the last one served. */
export async function listFleetUpgrades(
  deps: ApiDeps,
  ctx: RequestContext,
  query: { status?: FleetUpgradeStatus | undefined; limit?: number | undefined; cursor?: string | undefined },
) {
  assertStaff(ctx.actor);
  const limit = query.limit ?? 50;
  const filters: Prisma.FleetUpgradeWhereInput[] = query.status ? [{ status: query.status }] : [];
  if (query.cursor) {
    const last = await deps.db.fleetUpgrade.findUnique({
      where: { id: query.cursor },
      select: { id: true, createdAt: true },
    });
    if (!last) {
      throw new AppError('validation_failed', 'The cursor names no fleet upgrade.', {
        errors: [{ field: 'cursor', message: 'is not the nextCursor of a page' }],
      });
    }
    filters.push({
      OR: [{ createdAt: { lt: last.createdAt } }, { createdAt: last.createdAt, id: { lt: last.id } }],
    });
  }
  const rows = await deps.db.fleetUpgrade.findMany({
    where: { AND: filters },
    orderBy: [{ createdAt: 'desc' }, { id: 'desc' }],
    take: limit + 1,
  });
  const page = rows.slice(0, limit);
  const counts = await countMembers(
    deps.db,
    page.map((upgrade) => upgrade.id),
  );
  return {
    data: page.map((upgrade) => present(upgrade, counts.get(upgrade.id) ?? new Map())),
    nextCursor: rows.length > limit ? (page.at(-1)?.id ?? null) : null,
  };
}
