import type { Db, Tx } from '../core/db.ts';
import { AppError } from '../core/errors.ts';
import type { MembershipRole } from '../core/generated/prisma/enums.ts';
import type { Actor } from './context.ts';

/** Roles that may spend money or change servers for an organization. */
export const MANAGING_ROLES: readonly MembershipRole[] = ['owner', 'admin', 'billing'];

export function isStaff(actor: Actor): boolean {
  return actor.staffRole !== null;
}

/** Every membership role: what "any member" may do. */
export const MEMBER_ROLES: readonly MembershipRole[] = ['owner', 'admin', 'billing', 'viewer'];

/** Roles that may invite people to an organization, and see and revoke its invitations. */
export const INVITING_ROLES: readonly MembershipRole[] = ['owner', 'admin'];

/** How a caller reaches an organization: through a membership's role, or as staff. */
export type OrganizationAccess = MembershipRole | 'staff';

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
): Promise<OrganizationAccess> {
  const facts = isStaff(actor)
    ? {
        organizationExists: (await db.organization.count({ where: { id: organizationId } })) === 1,
        role: null,
      }
    : {
        organizationExists: true,
        role:
          (
            await db.membership.findUnique({
              where: { organizationId_userId: { organizationId, userId: actor.userId } },
              select: { role: true },
            })
          )?.role ?? null,
      };
  return decideOrganizationAccess(actor, organizationId, facts, roles);
}

/**
 * `assertOrganizationAccess` on facts already read (a hot path reads them with the rest of
 * what it needs in one query): whether the organization exists, and the caller's role in it.
 */
export function decideOrganizationAccess(
  actor: Actor,
  organizationId: string,
  facts: { organizationExists: boolean; role: MembershipRole | null },
  roles: readonly MembershipRole[],
): OrganizationAccess {
  if (isStaff(actor)) {
    if (facts.organizationExists) return 'staff';
  } else if (facts.role && roles.includes(facts.role)) {
    return facts.role;
  }
  throw new AppError('not_found', `No organization ${organizationId}.`);
}

/**
 * Only owners (and staff) may make someone an owner: an owner can remove every other owner,
 * so an admin who could create one could take the organization over. The caller can see the
 * organization, so this is a refused value (`unprocessable`), not a hidden resource.
 */
export function assertMayGrantRole(access: OrganizationAccess, role: MembershipRole): void {
  if (role === 'owner' && access !== 'owner' && access !== 'staff') {
    throw new AppError('unprocessable', 'Only owners may make someone an owner.', {
      errors: [{ field: 'role', message: 'only owners may grant it' }],
    });
  }
}

/**
 * Owners (and staff) may remove anyone from an organization; any member may remove
 * themselves (leave). Others are told the organization is not there, as everywhere.
 */
export function assertMayRemoveMember(
  db: Db | Tx,
  actor: Actor,
  organizationId: string,
  userId: string,
): Promise<OrganizationAccess> {
  return assertOrganizationAccess(
    db,
    actor,
    organizationId,
    userId === actor.userId ? MEMBER_ROLES : ['owner'],
  );
}

/**
 * Ordering spends money and starts servers, so people who signed themselves up must confirm
 * their e-mail address first. A self-signed-up account is one with a password that is not
 * verified; accounts made by operators (API tokens only) were vetted when they were made.
 */
export function assertMayOrder(user: { hasPassword: boolean; emailVerified: boolean }): void {
  if (user.hasPassword && !user.emailVerified) {
    throw new AppError(
      'forbidden',
      'Confirm your e-mail address before ordering: follow the link in the mail sent at sign-up (signing up again sends a new one).',
    );
  }
}

/** Roles that may upgrade, delete, restore and back up a server. */
export const SERVER_ROLES: readonly MembershipRole[] = ['owner', 'admin'];

/**
 * Who may change an instance: staff always; members of its organization with one of `roles`
 * (`'staff'`: nobody else). A caller who cannot see the instance gets `not_found`; a member
 * who can see it but whose role does not allow the change gets `forbidden`, since hiding a
 * resource from someone who just read it protects nothing.
 */
export async function assertInstanceRole(
  db: Db | Tx,
  actor: Actor,
  instance: { id: string; organizationId: string },
  roles: readonly MembershipRole[] | 'staff',
): Promise<void> {
  if (isStaff(actor)) return;
  const membership = await db.membership.findUnique({
    where: { organizationId_userId: { organizationId: instance.organizationId, userId: actor.userId } },
    select: { role: true },
  });
  if (!membership) throw new AppError('not_found', `No instance ${instance.id}.`);
  if (roles === 'staff' || !roles.includes(membership.role)) {
    throw new AppError(
      'forbidden',
      roles === 'staff'
        ? 'Only Woolly staff may do this.'
        : `Your role (${membership.role}) cannot do this; it needs ${roles.join(' or ')}.`,
    );
  }
}

/**
 * Staff-only work (fleet operations). Customers' tokens never carry the `admin` scope these
 * operations need, so this only matters for a token that outlived its holder's staff role.
 */
export function assertStaff(actor: Actor): void {
  if (!isStaff(actor)) throw new AppError('forbidden', 'Only Woolly staff may do this.');
}
