import type { Db, Prisma } from '../../core/db.ts';
import type { KubeObject } from '../manifests/render-instance.ts';
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
            create: { instanceId, ...key, manifest, generation, position: index },
            update: { manifest, generation, position: index, appliedAt: new Date() },
          });
        }
        const pruned = await tx.dryRunObject.deleteMany({
          where: { instanceId, generation: { lt: generation } },
        });
        return { applied: objects.length, pruned: pruned.count };
      });
    },
    async rollout() {
      // Nothing runs in the dry-run store, so there is nothing to wait for.
      return { done: true, waiting: [] };
    },
    async remove(instanceId) {
      const { count } = await db.dryRunObject.deleteMany({ where: { instanceId } });
      return { removed: count };
    },
  };
}
