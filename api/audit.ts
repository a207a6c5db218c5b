import { execute, type Prisma, type SqlClient, type Statement } from '../core/db.ts';
import type { Actor, RequestContext } from './context.ts';

/** Woolly acting on its own, not for a caller (billing's dunning): logged as `system:<name>`. */
export interface SystemActor {
  system: string;
}

type AuditContext = (Pick<RequestContext, 'requestId'> & { actor: Actor | null }) | SystemActor;

/** How the audit log names who acted: `token:<id>`, `session:<userId>`, `anonymous` or `system:<name>`. */
function actorLabel(ctx: AuditContext): string {
  if ('system' in ctx) return `system:${ctx.system}`;
  if (!ctx.actor) return 'anonymous';
  return ctx.actor.authMethod === 'session' ? `session:${ctx.actor.userId}` : `token:${ctx.actor.tokenId}`;
}
interface AuditEntry {
  action: string;
  targetType: string;
  targetId: string;
  organizationId?: string;
  data?: Prisma.InputJsonValue;
}

/** The audit row of a mutating call, as a statement to run with its effect. */
export function auditStatement(ctx: AuditContext, entry: AuditEntry): Statement {
  const caller = 'system' in ctx ? null : ctx;
  return {
    name: 'audit-insert',
    text: `insert into "AuditLog" ("actorUserId", actor, action, "targetType", "targetId", "organizationId", "requestId", data)
           values ($1::uuid, $2, $3, $4, $5, $6::uuid, $7, $8::jsonb) returning 1`,
    values: [
      caller?.actor?.userId ?? null,
      actorLabel(ctx),
      entry.action,
      entry.targetType,
      entry.targetId,
      entry.organizationId ?? null,
      caller?.requestId ?? null,
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
