import type { Db, Prisma } from '../../core/db.ts';
import { type ApplyPhase, applyPhaseOf, type KubeObject } from '../manifests/render-instance.ts';
import type { ClusterTarget } from './target.ts';

/** What a Secret's values become in the dry-run store: the keys stay, the values never leave. */
export const REDACTED_SECRET_VALUE = '<sealed in SecretRecord>';

/** A copy of the object safe to store and show: Secret values replaced. */
export function redactObject(object: KubeObject): KubeObject {
  if (object.kind !== 'Secret') return object;
  const redacted: KubeObject = { ...object };
  for (const field of ['data', 'stringData'] as const) {
    const values = object[field] as Record<string, string> | undefined;
    if (values)
      redacted[field] = Object.fromEntries(Object.keys(values).map((key) => [key, REDACTED_SECRET_VALUE]));
  }
  return redacted;
}

const PHASES: readonly ApplyPhase[] = [
  'config',
  'pre-migrate',
  'workloads',
  'route',
  'post-migrate',
  'owner-account',
];

/** Objects are listed in the order a cluster gets them: by phase, then as rendered. */
const positionOf = (object: KubeObject, index: number) => PHASES.indexOf(applyPhaseOf(object)) * 1000 + index;

const objectKey = (object: {
  apiVersion: string;
  kind: string;
  metadata: { namespace?: string | null; name: string };
}) => `${object.apiVersion}/${object.kind}/${object.metadata.namespace ?? ''}/${object.metadata.name}`;

/**
 * The default target when no cluster is configured: every object is stored in PostgreSQL as a
 * cluster would hold it, keyed like the API server does (apiVersion, kind, namespace, name).
 */
export function makeDryRunTarget(db: Db): ClusterTarget {
  return {
    dryRun: true,
    async apply(instanceId, generation, objects) {
      return db.$transaction(async (tx) => {
        const keys = objects.map((object) => ({
          apiVersion: object.apiVersion,
          kind: object.kind,
          namespace: object.metadata.namespace ?? '',
          name: object.metadata.name,
        }));
        for (const [index, object] of objects.entries()) {
          const key = keys[index] as (typeof keys)[number];
          const manifest = redactObject(object) as unknown as Prisma.InputJsonValue;
          await tx.dryRunObject.upsert({
            where: { instanceId_apiVersion_kind_namespace_name: { instanceId, ...key } },
            create: { instanceId, ...key, manifest, generation, position: positionOf(object, index) },
            update: { manifest, generation, position: positionOf(object, index), appliedAt: new Date() },
          });
        }
        return { applied: objects.length };
      });
    },
    async prune(instanceId, generation, keep) {
      const kept = new Set(keep.map(objectKey));
      const stored = await db.dryRunObject.findMany({
        where: { instanceId },
        select: { id: true, apiVersion: true, kind: true, namespace: true, name: true },
      });
      const stale = stored.filter((row) => !kept.has(objectKey({ ...row, metadata: row })));
      const { count } = await db.dryRunObject.deleteMany({
        where: { id: { in: stale.map((row) => row.id) }, generation: { lte: generation } },
      });
      return { pruned: count };
    },
    async jobState() {
      // Nothing runs in the dry-run store; the reconciler skips the wait on a dry-run target.
      return { state: 'succeeded', detail: 'dry-run: nothing runs' };
    },
    async rollout() {
      // Nothing runs in the dry-run store, so there is nothing to wait for.
      return { done: true, waiting: [] };
    },
    async remove(instanceId) {
      const { count } = await db.dryRunObject.deleteMany({ where: { instanceId } });
      return { removed: count };
    },
    async observe(instanceIds) {
      // The store holds what was applied, so comparing it finds drift only if a row was lost;
      // the resync observes real clusters only, and this keeps a test's swapped target honest.
      return db.dryRunObject.findMany({
        where: { instanceId: { in: [...instanceIds] }, kind: { not: 'Job' } },
        select: { instanceId: true, kind: true, name: true, generation: true },
      });
    },
  };
}
