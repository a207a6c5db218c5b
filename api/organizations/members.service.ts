import type { Tx } from '../../core/db.ts';
import { AppError } from '../../core/errors.ts';
import type { MembershipRole } from '../../core/generated/prisma/enums.ts';
import { audit } from '../audit.ts';
import type { ApiDeps, RequestContext } from '../context.ts';
import { assertMayRemoveMember, assertOrganizationAccess } from '../policy.ts';

/** A membership with the fields of its user the API shows. */
export interface MemberRow {
  organizationId: string;
  userId: string;
  role: MembershipRole;
  createdAt: Date;
  user: { email: string; name: string | null };
}

/** What `include` fetches of a membership's user for `presentMember`. */
export const MEMBER_USER = { user: { select: { email: true, name: true } } } as const;

/** A membership as GET /v1/organizations/{id}/members shows it. */
export function presentMember(membership: MemberRow) {
  return {
    userId: membership.userId,
    email: membership.user.email,
    name: membership.user.name,
    role: membership.role,
    joinedAt: membership.createdAt.toISOString(),
  };
}

/**
 * Holds the organization's row lock until the transaction ends. Every change to an
 * organization's memberships and invitations takes it first, so none decides on a state
 * another is changing: two owners demoting each other at once leave one owner. One row, not
 * the membership rows: it also covers memberships inserted meanwhile, and cannot deadlock
 * on lock order. `no key update` leaves rows that merely reference the organization (its
 * orders, instances, new memberships) free to be written.
 */
export async function lockOrganization(tx: Tx, organizationId: string): Promise<void> {
  await tx.$queryRaw`select 1 from "Organization" where id = ${organizationId}::uuid for no key update`;
}

/** Throws `conflict` when the organization has one owner left; call it under `lockOrganization`. */
async function assertAnotherOwner(tx: Tx, organizationId: string, detail: string): Promise<void> {
  const owners = await tx.membership.count({ where: { organizationId, role: 'owner' } });
  if (owners <= 1) throw new AppError('conflict', detail);
}

async function getMember(
  tx: Tx,
  organizationId: string,
  userId: string,
): Promise<MemberRow & { id: string }> {
  const membership = await tx.membership.findUnique({
    where: { organizationId_userId: { organizationId, userId } },
    include: MEMBER_USER,
  });
  if (!membership) throw new AppError('not_found', `No member ${userId} in organization ${organizationId}.`);
  return membership;
}

/** Gives a member another role (owners and staff); the last owner keeps theirs. */
export async function updateMemberRole(
  deps: Pick<ApiDeps, 'db'>,
  ctx: RequestContext,
  input: { organizationId: string; userId: string; role: MembershipRole },
): Promise<MemberRow> {
  const { organizationId, userId, role } = input;
  return deps.db.$transaction(async (tx) => {
    await lockOrganization(tx, organizationId);
    await assertOrganizationAccess(tx, ctx.actor, organizationId, ['owner']);
    const membership = await getMember(tx, organizationId, userId);
    if (membership.role === role) return membership;
    if (membership.role === 'owner') {
      await assertAnotherOwner(
        tx,
        organizationId,
        "This is the organization's last owner; make another member owner before changing this one's role.",
      );
    }
    const updated = await tx.membership.update({
      where: { id: membership.id },
      data: { role },
      include: MEMBER_USER,
    });
    await audit(tx, ctx, {
      action: 'member.update',
      targetType: 'member',
      targetId: userId,
      organizationId,
      data: { from: membership.role, to: role },
    });
    return updated;
  });
}

/** Removes a member (owners and staff), or the caller themselves (leaving); never the last owner. */
export async function removeMember(
  deps: Pick<ApiDeps, 'db'>,
  ctx: RequestContext,
  input: { organizationId: string; userId: string },
): Promise<void> {
  const { organizationId, userId } = input;
  await deps.db.$transaction(async (tx) => {
    await lockOrganization(tx, organizationId);
    await assertMayRemoveMember(tx, ctx.actor, organizationId, userId);
    const membership = await getMember(tx, organizationId, userId);
    if (membership.role === 'owner') {
      await assertAnotherOwner(
        tx,
        organizationId,
        "This is the organization's last owner, who cannot be removed; make another member owner first.",
      );
    }
    await tx.membership.delete({ where: { id: membership.id } });
    await audit(tx, ctx, {
      action: 'member.remove',
      targetType: 'member',
      targetId: userId,
      organizationId,
      data: { role: membership.role, left: userId === ctx.actor.userId },
    });
  });
}
