/**
 * The fleet resync: the database pass that re-queues instances not yet settled, and drift
 * observation, which compares every running instance on a real cluster with what the cluster
 * holds and sends the ones that drifted back through the reconciler.
 */
import type { SecretBox } from '../core/crypto.ts';
import type { Db } from '../core/db.ts';
import type { PlanLimits } from '../core/domain/catalog.ts';
import { transition } from '../core/domain/instance-status.ts';
import type { Logger } from '../core/log.ts';
import { addonRenderInput } from './addons.ts';
import { parseClusterSettings } from './cluster-settings.ts';
import { openClusterSecrets } from './clusters.ts';
import { enqueueReconcile, enqueueUnsettledReconciles } from './index.ts';
import { renderInstanceManifests } from './manifests/render-instance.ts';
import { INSTANCE_SECRET_NAME, instanceRenderInput, type RenderedInstance } from './render-input.ts';
import { makeDryRunTarget } from './targets/dry-run.target.ts';
import { kubernetesTargetFor } from './targets/kubernetes.target.ts';
import type { ClusterTarget, ObservedObject } from './targets/target.ts';

export interface ResyncDeps {
  db: Db;
  box: SecretBox;
  log: Logger;
  /** Picks the target for a cluster row, as in ReconcilerDeps; the cluster's own by default. */
  targetFor?: (cluster: { target: string }) => ClusterTarget;
}

/** What one resync did. */
export interface ResyncReport {
  /** Reconciles queued or kept by the database pass (`enqueueUnsettledReconciles`). */
  queued: number;
  /** Running instances compared with their cluster. */
  observed: number;
  /** Instances found drifted and sent back through the reconciler. */
  drifted: number;
  /** Clusters that could not be observed this time (named in the log); the next resync retries. */
  failedClusters: string[];
}

/** How many drifts a status reason names before it says how many more there are. */
const REASON_ITEMS = 3;

/** One object an instance should have: kind, name, and whether it carries the generation annotation. */
interface ExpectedObject {
  kind: string;
  name: string;
  annotated: boolean;
}

const keyOf = (object: { kind: string; name: string }) => `${object.kind}/${object.name}`;

/**
 * The objects a running instance should have on its cluster, rendered as the reconciler
 * renders them (`instanceRenderInput`), Jobs left out: they run once and expire by their TTL.
 * The Secret's values do not matter here, only that it exists.
 */
export function expectedObjectsOf(
  instance: RenderedInstance & {
    observedGeneration: number;
    addonStack?: { state: string; outputs: unknown } | null;
  },
  settings: ReturnType<typeof parseClusterSettings>,
): ExpectedObject[] {
  const rendered = renderInstanceManifests(
    instanceRenderInput(instance, settings, {
      generation: instance.observedGeneration,
      suspended: false,
      owner: null,
      addons: addonRenderInput(instance.addonStack ?? null, instance.plan.limits as PlanLimits),
    }),
  );
  return [
    { kind: 'Secret', name: INSTANCE_SECRET_NAME, annotated: false },
    ...rendered
      .filter((object) => object.kind !== 'Job')
      .map((object) => ({
        kind: object.kind,
        name: object.metadata.name,
        annotated: object.metadata.annotations?.['woolly.dev/generation'] !== undefined,
      })),
  ];
}

/**
 * How `observed` falls short of `expected`: each object missing, or annotated with a generation
 * older than `observedGeneration` (put back by someone, or restored from an old backup of the
 * cluster). Empty when the instance has not drifted. Objects the instance should not have are
 * not drift: the reconciler's prune removes them at its next run.
 */
export function driftOf(
  expected: readonly ExpectedObject[],
  observed: readonly ObservedObject[],
  observedGeneration: number,
): string[] {
  const found = new Map(observed.map((object) => [keyOf(object), object.generation]));
  return expected.flatMap((object) => {
    const key = keyOf(object);
    if (!found.has(key)) return [`${object.kind} ${object.name} missing`];
    const generation = found.get(key) ?? (object.annotated ? 0 : null);
    if (generation !== null && generation < observedGeneration) {
      return [`${object.kind} ${object.name} at generation ${generation}, not ${observedGeneration}`];
    }
    return [];
  });
}

/** The target of a registered cluster, as the reconciler connects to it. */
async function targetOf(
  deps: ResyncDeps,
  cluster: { target: string } & Parameters<typeof openClusterSecrets>[2],
): Promise<ClusterTarget> {
  const swapped = deps.targetFor?.(cluster);
  if (swapped) return swapped;
  if (cluster.target !== 'kubernetes') return makeDryRunTarget(deps.db);
  const { kubeconfig } = await openClusterSecrets(deps.db, deps.box, cluster);
  return kubernetesTargetFor(kubeconfig);
}

/**
 * Moves a drifted instance `running → updating` with the drift as its reason, records an
 * Event and queues its reconcile, all in one transaction, so the reconciler re-applies every
 * object. Does nothing when the instance changed since it was observed (no longer running, or
 * a newer generation applied meanwhile): then the observation is stale. Returns whether it moved.
 */
async function markDrifted(
  db: Db,
  instanceId: string,
  observedGeneration: number,
  drift: readonly string[],
): Promise<boolean> {
  const shown = drift.slice(0, REASON_ITEMS).join('; ');
  const more = drift.length > REASON_ITEMS ? ` and ${drift.length - REASON_ITEMS} more` : '';
  const reason = `drift: ${shown}${more}`;
  return db.$transaction(async (tx) => {
    await tx.$queryRaw`select 1 from "Instance" where id = ${instanceId}::uuid for update`;
    const now = await tx.instance.findUnique({
      where: { id: instanceId },
      select: { status: true, observedGeneration: true },
    });
    if (now?.status !== 'running' || now.observedGeneration !== observedGeneration) return false;
    await transition(tx, instanceId, 'running', 'updating', { statusReason: reason });
    await tx.event.create({
      data: {
        instanceId,
        type: 'instance.drift',
        message: `The cluster no longer holds what was applied (${reason}): applying it again.`,
        data: { drift: [...drift], generation: observedGeneration },
      },
    });
    await enqueueReconcile(tx, instanceId);
    return true;
  });
}

/**
 * Drift observation over every real cluster: per cluster one observation of all Woolly's
 * objects (`ClusterTarget.observe`), compared with what each of its running instances should
 * have. A cluster that cannot be reached is logged and skipped; the others go on.
 */
export async function observeDrift(deps: ResyncDeps): Promise<Omit<ResyncReport, 'queued'>> {
  const { db } = deps;
  const report = { observed: 0, drifted: 0, failedClusters: [] as string[] };
  const clusters = await db.cluster.findMany({ where: { target: 'kubernetes' }, orderBy: { name: 'asc' } });
  for (const cluster of clusters) {
    const log = deps.log.child({ clusterId: cluster.id, cluster: cluster.name });
    // Read before the cluster is listed: an instance running now had all its objects applied
    // before it went running, so whatever the listing lacks is drift, not a reconcile under way.
    const instances = await db.instance.findMany({
      where: { clusterId: cluster.id, status: 'running' },
      select: {
        id: true,
        domain: true,
        mastodonVersion: true,
        flavor: true,
        observedGeneration: true,
        plan: { select: { code: true, limits: true } },
        addonStack: { select: { state: true, outputs: true } },
      },
    });
    if (instances.length === 0) continue;
    let observed: ObservedObject[];
    try {
      const target = await targetOf(deps, cluster);
      observed = await target.observe(new Set(instances.map((instance) => instance.id)));
    } catch (error) {
      log.warn('drift observation failed', { error: error instanceof Error ? error.message : String(error) });
      report.failedClusters.push(cluster.name);
      continue;
    }
    // Not Map.groupBy: Node 20 has none.
    const byInstance = new Map<string, ObservedObject[]>();
    for (const object of observed) {
      const list = byInstance.get(object.instanceId);
      if (list) list.push(object);
      else byInstance.set(object.instanceId, [object]);
    }
    const settings = parseClusterSettings(cluster.settings);
    for (const instance of instances) {
      report.observed++;
      const drift = driftOf(
        expectedObjectsOf(instance, settings),
        byInstance.get(instance.id) ?? [],
        instance.observedGeneration,
      );
      if (drift.length === 0) continue;
      if (await markDrifted(db, instance.id, instance.observedGeneration, drift)) {
        report.drifted++;
        log.warn('instance drifted', { instanceId: instance.id, drift });
      }
    }
  }
  return report;
}

/**
 * The periodic resync (`fleet:resync`): queues every instance whose desired state is not yet
 * applied, then observes the real clusters for drift.
 */
export async function resyncFleet(deps: ResyncDeps): Promise<ResyncReport> {
  const queued = await enqueueUnsettledReconciles(deps.db);
  return { queued, ...(await observeDrift(deps)) };
}
