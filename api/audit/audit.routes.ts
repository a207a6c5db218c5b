import type { Prisma } from '../../core/db.ts';
import type { ApiDeps } from '../context.ts';
import type { OperationHandlers } from '../openapi.ts';
import { assertOrganizationAccess } from '../policy.ts';
import { requestContext } from '../request-context.ts';

interface AuditQuery {
  action?: string | undefined;
  targetType?: string | undefined;
  limit?: number | undefined;
  cursor?: string | undefined;
}

/** A page of the audit log, newest first; the cursor is the id of the last entry served. */
async function auditPage(deps: ApiDeps, where: Prisma.AuditLogWhereInput, query: AuditQuery) {
  const limit = query.limit ?? 50;
  const rows = await deps.db.auditLog.findMany({
    where: {
      ...where,
      ...(query.action ? { action: query.action } : {}),
      ...(query.targetType ? { targetType: query.targetType } : {}),
      ...(query.cursor ? { id: { lt: BigInt(query.cursor) } } : {}),
    },
    orderBy: { id: 'desc' },
    take: limit + 1,
  });
  const page = rows.slice(0, limit);
  return {
    data: page.map((row) => ({
      id: row.id.toString(),
      actor: row.actor,
      actorUserId: row.actorUserId,
      action: row.action,
      targetType: row.targetType,
      targetId: row.targetId,
      organizationId: row.organizationId,
      requestId: row.requestId,
      data: row.data as Record<string, unknown>,
      createdAt: row.createdAt.toISOString(),
    })),
    nextCursor: rows.length > limit ? (page.at(-1)?.id.toString() ?? null) : null,
  };
}

export function auditHandlers(
  deps: ApiDeps,
): Pick<OperationHandlers, 'listAuditLog' | 'listOrganizationAuditLog'> {
  return {
    async listAuditLog(_req, res, { query }) {
      res.json(
        await auditPage(deps, query.organizationId ? { organizationId: query.organizationId } : {}, query),
      );
    },
    async listOrganizationAuditLog(req, res, { params, query }) {
      const { actor } = requestContext(req);
      // An organization's log is its owners' (and staff's); everyone else is told it is not there.
      await assertOrganizationAccess(deps.db, actor, params.id, ['owner']);
      res.json(await auditPage(deps, { organizationId: params.id }, query));
    },
  };
}
