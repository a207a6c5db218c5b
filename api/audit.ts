import type { Prisma, Tx } from '../core/db.ts';
import type { RequestContext } from './context.ts';

/** Writes the audit row of a mutating call, in the same transaction as its effect. */
export async function audit(
  tx: Tx,
  ctx: RequestContext,
  entry: {
    action: string;
    targetType: string;
    targetId: string;
    organizationId?: string;
    data?: Prisma.InputJsonValue;
  },
): Promise<void> {
  await tx.auditLog.create({
    data: {
      actorUserId: ctx.actor.userId,
      actor: `token:${ctx.actor.tokenId}`,
      action: entry.action,
      targetType: entry.targetType,
      targetId: entry.targetId,
      organizationId: entry.organizationId ?? null,
      requestId: ctx.requestId,
      data: entry.data ?? {},
    },
  });
}
