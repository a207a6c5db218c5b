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

/**
 * Ordering spends money and starts servers, so people who signed themselves up must confirm
 * their e-mail address first. A self-signed-up account is one with a password that is not
 * verified; accounts made by operators (API tokens only) were vetted when they were made.
 */
export async function assertMayOrder(db: Db | Tx, actor: Actor): Promise<void> {
  const user = await db.user.findUnique({
    where: { id: actor.userId },
    select: { passwordHash: true, emailVerifiedAt: true },
  });
  if (user?.passwordHash && !user.emailVerifiedAt) {
    throw new AppError(
      'forbidden',
      'Confirm your e-mail address before ordering: follow the link in the mail sent at sign-up (signing up again sends a new one).',
    );
  }
}
