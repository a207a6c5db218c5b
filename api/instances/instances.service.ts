import type { Db } from '../../core/db.ts';
import { AppError } from '../../core/errors.ts';
import type { InstanceStatus } from '../../core/generated/prisma/enums.ts';
import type { Actor } from '../context.ts';
import { isStaff, visibleInstances } from '../policy.ts';
import { findInstanceSummaries, type InstanceSummaryRow } from './instances.repository.ts';

const durationMs = (start: Date, end: Date | null) => (end ? end.getTime() - start.getTime() : null);

/** Instances the actor may see, newest first, optionally filtered by status. */
export async function listInstances(
  db: Db,
  actor: Actor,
  filter: { status?: InstanceStatus | undefined; limit: number },
) {
  const rows = await findInstanceSummaries(db, {
    memberUserId: isStaff(actor) ? null : actor.userId,
    status: filter.status,
    limit: filter.limit,
  });
  return rows.map(presentSummary);
}

/** One instance with its operations, steps and the manifests applied to its target. */
export async function getInstance(db: Db, actor: Actor, id: string) {
  const instance = await db.instance.findFirst({
    where: { id, ...visibleInstances(actor) },
    include: {
      plan: true,
      cluster: true,
      addons: { include: { addonType: true } },
      operations: {
        orderBy: { startedAt: 'asc' },
        include: { steps: { orderBy: [{ startedAt: 'asc' }, { id: 'asc' }] } },
      },
      dryRunObjects: { orderBy: { appliedAt: 'asc' } },
      events: { orderBy: { id: 'asc' }, take: 200 },
    },
  });
  if (!instance) throw new AppError('not_found', `No instance ${id}.`);
  return {
    ...presentSummary({
      ...instance,
      planCode: instance.plan.code,
      planName: instance.plan.name,
      clusterName: instance.cluster?.name ?? null,
      clusterTarget: instance.cluster?.target ?? null,
      addons: instance.addons.map((addon) => addon.addonType.code).sort(),
    }),
    operations: instance.operations.map((op) => ({
      id: op.id,
      kind: op.kind,
      status: op.status,
      generation: op.generation,
      error: op.error,
      startedAt: op.startedAt,
      finishedAt: op.finishedAt,
      durationMs: durationMs(op.startedAt, op.finishedAt),
      steps: op.steps.map((step) => ({
        name: step.name,
        outcome: step.outcome,
        attempt: step.attempt,
        detail: step.detail,
        error: step.error,
        startedAt: step.startedAt,
        finishedAt: step.finishedAt,
        durationMs: durationMs(step.startedAt, step.finishedAt),
      })),
    })),
    events: instance.events.map((event) => ({
      id: event.id.toString(),
      type: event.type,
      message: event.message,
      createdAt: event.createdAt,
    })),
    manifests: instance.dryRunObjects.map((object) => object.manifest),
  };
}

function presentSummary(row: InstanceSummaryRow) {
  return {
    id: row.id,
    organizationId: row.organizationId,
    domain: row.domain,
    plan: { code: row.planCode, name: row.planName },
    status: row.status,
    statusReason: row.statusReason,
    /** True on the dry-run target: rendered and stored, never really running. */
    dryRun: row.clusterTarget === 'dry_run',
    cluster: row.clusterName ? { name: row.clusterName } : null,
    flavor: row.flavor,
    mastodonVersion: row.mastodonVersion,
    addons: row.addons,
    generation: row.generation,
    observedGeneration: row.observedGeneration,
    createdAt: row.createdAt,
    updatedAt: row.updatedAt,
  };
}
