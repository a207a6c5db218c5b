import type { Db, Tx } from '../core/db.ts';
import { AppError } from '../core/errors.ts';
import type { MembershipRole } from '../core/generated/prisma/enums.ts';
import type { Actor } from './context.ts';

/** Roles that may spend money or change servers for an organization. */
export const MANAGING_ROLES: readonly MembershipRole[] = ['owner', 'admin', 'billing'];

export function isStaff(actor: Actor): boolean {
  return actor.staffRole !== null;
}

/**
 * The one place that decides who may act on an organization. Staff may act on all; members
 * with one of `roles` on theirs. Anything else answers `not_found`, so a caller cannot learn
 * that a foreign organization exists.
 */
export async function assertOrganizationAccess(
  db: Db | Tx,
  actor: Actor,
  organizationId: string,
  roles: readonly MembershipRole[],
): Promise<void> {
  if (isStaff(actor)) {
    const exists = await db.organization.count({ where: { id: organizationId } });
    if (exists === 1) return;
  } else {
    const membership = await db.membership.findUnique({
      where: { organizationId_userId: { organizationId, userId: actor.userId } },
    });
    if (membership && roles.includes(membership.role)) return;
  }
  throw new AppError('not_found', `No organization ${organizationId}.`);
}

/** A Prisma filter that limits instances to those the actor may see. */
export function visibleInstances(actor: Actor): {
  organization?: { memberships: { some: { userId: string } } };
} {
  return isStaff(actor) ? {} : { organization: { memberships: { some: { userId: actor.userId } } } };
}
