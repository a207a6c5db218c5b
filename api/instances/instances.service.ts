import type { Db } from '../../core/db.ts';
import { AppError } from '../../core/errors.ts';
import type { Actor } from '../context.ts';
import { visibleInstances } from '../policy.ts';

const durationMs = (start: Date, end: Date | null) => (end ? end.getTime() - start.getTime() : null);

/** Instances the actor may see, newest first, optionally filtered by status. */
export async function listInstances(
  db: Db,
  actor: Actor,
  filter: { status?: string | undefined; limit: number },
) {
  const instances = await db.instance.findMany({
    where: { ...visibleInstances(actor), ...(filter.status ? { status: filter.status as never } : {}) },
    include: { plan: true, cluster: true, addons: { include: { addonType: true } } },
    orderBy: [{ createdAt: 'desc' }, { id: 'desc' }],
    take: filter.limit,
  });
  return instances.map(presentSummary);
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
    ...presentSummary(instance),
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

type SummaryInput = {
  id: string;
  organizationId: string;
  domain: string;
  flavor: string;
  mastodonVersion: string;
  status: string;
  statusReason: string | null;
  generation: number;
  observedGeneration: number;
  createdAt: Date;
  updatedAt: Date;
  plan: { code: string; name: string };
  cluster: { name: string; target: string } | null;
  addons: { addonType: { code: string } }[];
};

function presentSummary(instance: SummaryInput) {
  return {
    id: instance.id,
    organizationId: instance.organizationId,
    domain: instance.domain,
    plan: { code: instance.plan.code, name: instance.plan.name },
    status: instance.status,
    statusReason: instance.statusReason,
    /** True when the instance lives on the dry-run target: rendered and stored, never really running. */
    dryRun: instance.cluster?.target === 'dry_run',
    cluster: instance.cluster ? { name: instance.cluster.name } : null,
    flavor: instance.flavor,
    mastodonVersion: instance.mastodonVersion,
    addons: instance.addons.map((addon) => addon.addonType.code),
    generation: instance.generation,
    observedGeneration: instance.observedGeneration,
    createdAt: instance.createdAt,
    updatedAt: instance.updatedAt,
  };
}
