import type { Db, Prisma, Tx } from '../core/db.ts';
import type { Actor, RequestContext } from './context.ts';

/** How the audit log names a caller: `token:<id>`, `session:<userId>` or `anonymous`. */
function actorLabel(actor: Actor | null): string {
  if (!actor) return 'anonymous';
  return actor.authMethod === 'session' ? `session:${actor.userId}` : `token:${actor.tokenId}`;
}

/**
 * Writes the audit row of a mutating call, in the same transaction as its effect. A null
 * actor is a caller not signed in (sign-in attempts, sign-up, e-mail verification).
 */
export async function audit(
  tx: Db | Tx,
  ctx: Pick<RequestContext, 'requestId'> & { actor: Actor | null },
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
      actorUserId: ctx.actor?.userId ?? null,
      actor: actorLabel(ctx.actor),
      action: entry.action,
      targetType: entry.targetType,
      targetId: entry.targetId,
      organizationId: entry.organizationId ?? null,
      requestId: ctx.requestId,
      data: entry.data ?? {},
    },
  });
}
