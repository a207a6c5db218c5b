import { execute, type Prisma, type SqlClient, type Statement } from '../core/db.ts';
import type { Actor, RequestContext } from './context.ts';

/** How the audit log names a caller: `token:<id>`, `session:<userId>` or `anonymous`. */
function actorLabel(actor: Actor | null): string {
  if (!actor) return 'anonymous';
  return actor.authMethod === 'session' ? `session:${actor.userId}` : `token:${actor.tokenId}`;
}

type AuditContext = Pick<RequestContext, 'requestId'> & { actor: Actor | null };
interface AuditEntry {
  action: string;
  targetType: string;
  targetId: string;
  organizationId?: string;
  data?: Prisma.InputJsonValue;
}

/** The audit row of a mutating call, as a statement to run with its effect. */
export function auditStatement(ctx: AuditContext, entry: AuditEntry): Statement {
  return {
    name: 'audit-insert',
    text: `insert into "AuditLog" ("actorUserId", actor, action, "targetType", "targetId", "organizationId", "requestId", data)
           values ($1::uuid, $2, $3, $4, $5, $6::uuid, $7, $8::jsonb) returning 1`,
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
  };
}

/**
 * Writes the audit row of a mutating call, in the same transaction as its effect. A null
 * actor is a caller not signed in (sign-in attempts, sign-up, e-mail verification).
 */
export async function audit(client: SqlClient, ctx: AuditContext, entry: AuditEntry): Promise<void> {
  await execute(client, auditStatement(ctx, entry));
}
