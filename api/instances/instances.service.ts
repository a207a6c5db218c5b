import { AppError } from '../../core/errors.ts';
import type { InstanceStatus } from '../../core/generated/prisma/enums.ts';
import type { Actor, ApiDeps } from '../context.ts';
import { decodeCursor, encodeCursor } from '../cursor.ts';
import { isStaff } from '../policy.ts';
import {
  findAddonStackJson,
  findInstanceDetailJson,
  findInstanceManifestsJson,
  findOperationJson,
  listInstanceSummaries,
  listOperationRows,
} from './instances.repository.ts';

/** Limits reads to the instances the actor may see: staff all, others their organizations'. */
export const memberFilter = (actor: Actor) => (isStaff(actor) ? null : actor.userId);

/** `{ data, nextCursor }` of rows fetched with one extra row, whose presence means another page. */
function pageJson(rows: { json: string; createdAt: Date; id: string }[], limit: number): string {
  const page = rows.slice(0, limit);
  const last = page.at(-1);
  const nextCursor = rows.length > limit && last ? JSON.stringify(encodeCursor(last)) : 'null';
  return `{"data":[${page.map((row) => row.json).join(',')}],"nextCursor":${nextCursor}}`;
}

/** A page of the instances the actor may see, newest first, as `{ data, nextCursor }` JSON. */
export async function listInstancesPageJson(
  deps: Pick<ApiDeps, 'pool'>,
  actor: Actor,
  query: {
    status?: InstanceStatus | undefined;
    plan?: string | undefined;
    cluster?: string | undefined;
    q?: string | undefined;
    limit?: number | undefined;
    cursor?: string | undefined;
  },
): Promise<string> {
  const limit = query.limit ?? 50;
  const rows = await listInstanceSummaries(deps.pool, {
    memberUserId: memberFilter(actor),
    status: query.status,
    plan: query.plan,
    cluster: query.cluster,
    search: query.q,
    limit: limit + 1,
    after: query.cursor ? decodeCursor(query.cursor) : undefined,
  });
  return pageJson(rows, limit);
}

/** One instance with its latest operations, steps and events, as JSON, and its ETag. */
export async function getInstanceJson(
  deps: Pick<ApiDeps, 'pool'>,
  actor: Actor,
  id: string,
): Promise<{ json: string; etag: string }> {
  const found = await findInstanceDetailJson(deps.pool, id, memberFilter(actor));
  if (found === null) throw new AppError('not_found', `No instance ${id}.`);
  return { json: found.json, etag: `"${found.generation}"` };
}

/** The instance's applied objects as `{ data }` JSON. */
export async function getInstanceManifestsJson(
  deps: Pick<ApiDeps, 'pool'>,
  actor: Actor,
  id: string,
): Promise<string> {
  const json = await findInstanceManifestsJson(deps.pool, id, memberFilter(actor));
  if (json === null) throw new AppError('not_found', `No instance ${id}.`);
  return `{"data":${json}}`;
}

/** The instance's add-on stack: what it holds, or on the dry-run target plans, and its settings. */
export async function getAddonStackJson(
  deps: Pick<ApiDeps, 'pool'>,
  actor: Actor,
  id: string,
): Promise<string> {
  const json = await findAddonStackJson(deps.pool, id, memberFilter(actor));
  if (json === null) throw new AppError('not_found', `No instance ${id}.`);
  return json;
}

/** A page of the instance's operations, newest first, as `{ data, nextCursor }` JSON. */
export async function listOperationsPageJson(
  deps: Pick<ApiDeps, 'pool'>,
  actor: Actor,
  id: string,
  query: { limit?: number | undefined; cursor?: string | undefined },
): Promise<string> {
  const limit = query.limit ?? 50;
  const rows = await listOperationRows(deps.pool, id, memberFilter(actor), {
    limit: limit + 1,
    after: query.cursor ? decodeCursor(query.cursor) : undefined,
  });
  if (rows === null) throw new AppError('not_found', `No instance ${id}.`);
  return pageJson(rows, limit);
}

/** One operation with its steps, as JSON. */
export async function getOperationJson(
  deps: Pick<ApiDeps, 'pool'>,
  actor: Actor,
  id: string,
): Promise<string> {
  const json = await findOperationJson(deps.pool, id, memberFilter(actor));
  if (json === null) throw new AppError('not_found', `No operation ${id}.`);
  return json;
}
