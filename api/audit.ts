import { execute, type Prisma, type SqlClient } from '../core/db.ts';
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
  client: SqlClient,
  ctx: Pick<RequestContext, 'requestId'> & { actor: Actor | null },
  entry: {
    action: string;
    targetType: string;
    targetId: string;
    organizationId?: string;
    data?: Prisma.InputJsonValue;
  },
): Promise<void> {
  await execute(client, {
    name: 'audit-insert',
    text: `insert into "AuditLog" ("actorUserId", actor, action, "targetType", "targetId", "organizationId", "requestId", data)
           values ($1::uuid, $2, $3, $4, $5, $6::uuid, $7, $8::jsonb)`,
    values: [
      ctx.actor?.userId ?? null,
      actorLabel(ctx.actor),
      entry.action,
      entry.targetType,
      entry.targetId,
      entry.organizationId ?? null,
      ctx.requestId,
      JSON.stringify(entry.data ?? {}),
    ],
  });
}
