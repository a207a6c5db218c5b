import { AppError } from '../../core/errors.ts';
import type { InstanceStatus } from '../../core/generated/prisma/enums.ts';
import type { Actor, ApiDeps } from '../context.ts';
import { isStaff } from '../policy.ts';
import { findInstanceDetailJson, listInstanceSummariesJson } from './instances.repository.ts';

/** Limits reads to the instances the actor may see: staff all, others their organizations'. */
const memberFilter = (actor: Actor) => (isStaff(actor) ? null : actor.userId);

/** Instances the actor may see, newest first, as a JSON array. */
export function listInstancesJson(
  deps: Pick<ApiDeps, 'pool'>,
  actor: Actor,
  filter: { status: InstanceStatus | undefined; limit: number },
): Promise<string> {
  return listInstanceSummariesJson(deps.pool, { memberUserId: memberFilter(actor), ...filter });
}

/** One instance with its operations, steps, events and applied manifests, as JSON. */
export async function getInstanceJson(
  deps: Pick<ApiDeps, 'pool'>,
  actor: Actor,
  id: string,
): Promise<string> {
  const json = await findInstanceDetailJson(deps.pool, id, memberFilter(actor));
  if (json === null) throw new AppError('not_found', `No instance ${id}.`);
  return json;
}
