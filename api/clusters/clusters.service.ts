import type { ApiDeps, RequestContext } from '../context.ts';
import { assertStaff } from '../policy.ts';

/**
 * Every cluster with how many servers it holds and the room left, by name (staff). Only what
 * placement decides on: never a secret, a secret's id or the settings.
 */
export async function listClusters(deps: Pick<ApiDeps, 'db'>, ctx: RequestContext) {
  assertStaff(ctx.actor);
  const clusters = await deps.db.cluster.findMany({
    orderBy: { name: 'asc' },
    select: {
      id: true,
      name: true,
      target: true,
      region: true,
      capacity: true,
      createdAt: true,
      _count: { select: { instances: { where: { status: { not: 'deleted' } } } } },
    },
  });
  return {
    data: clusters.map(({ _count, ...cluster }) => ({
      ...cluster,
      instances: _count.instances,
      free: Math.max(0, cluster.capacity - _count.instances),
    })),
  };
}
