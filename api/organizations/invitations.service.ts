import { randomBytes } from 'node:crypto';
import { hashToken } from '../../core/crypto.ts';
import type { Prisma } from '../../core/db.ts';
import { AppError } from '../../core/errors.ts';
import type { MembershipRole } from '../../core/generated/prisma/enums.ts';
import { audit } from '../audit.ts';
import { normaliseEmail } from '../auth/local.ts';
import type { Mail, Mailer } from '../auth/mailer.ts';
import type { Actor, ApiDeps, RequestContext } from '../context.ts';
import { assertMayGrantRole, assertOrganizationAccess, INVITING_ROLES } from '../policy.ts';
import { lockOrganization, MEMBER_USER, type MemberRow } from './members.service.ts';

const INVITATION_TTL_MS = 7 * 24 * 60 * 60 * 1000;
const LIST_LIMIT = 200;

/** An invitation with the inviter's address, as the API shows it. */
export interface InvitationRow {
  id: string;
  organizationId: string;
  email: string;
  role: MembershipRole;
  expiresAt: Date;
  acceptedAt: Date | null;
  revokedAt: Date | null;
  createdAt: Date;
  invitedBy: { email: string } | null;
}

const INVITED_BY = { invitedBy: { select: { email: true } } } as const;

/** Invitations whose link still works. */
const pending = (now: Date): Prisma.InvitationWhereInput => ({
  acceptedAt: null,
  revokedAt: null,
  expiresAt: { gt: now },
});

function statusOf(invitation: InvitationRow, now: Date) {
  if (invitation.acceptedAt) return 'accepted' as const;
  if (invitation.revokedAt) return 'revoked' as const;
  return invitation.expiresAt <= now ? ('expired' as const) : ('pending' as const);
}

export function presentInvitation(invitation: InvitationRow, now = new Date()) {
  return {
    id: invitation.id,
    organizationId: invitation.organizationId,
    email: invitation.email,
    role: invitation.role,
    status: statusOf(invitation, now),
    invitedBy: invitation.invitedBy?.email ?? null,
    expiresAt: invitation.expiresAt.toISOString(),
    createdAt: invitation.createdAt.toISOString(),
  };
}

function invitationMail(input: {
  to: string;
  publicUrl: string;
  token: string;
  organizationName: string;
  role: MembershipRole;
  invitedBy: string;
}): Mail {
  const { publicUrl, token } = input;
  return {
    to: input.to,
    subject: `You are invited to join ${input.organizationName} on Woolly`,
    text: [
      `${input.invitedBy} invited you to join ${input.organizationName} on Woolly, as ${input.role}.`,
      'To accept, sign in to Woolly with this e-mail address and open this link within 7 days:',
      '',
      `  ${publicUrl}/dashboard/#accept-invitation=${token}`,
      '',
      'or send the token to the API with an API token of your account:',
      '',
      `  curl -X POST ${publicUrl}/v1/invitations/accept -H "authorization: Bearer $WOOLLY_TOKEN" -H 'content-type: application/json' -d '{"token":"${token}"}'`,
      '',
      'If you do not know why you got this, ignore it: nothing happens unless you accept.',
    ].join('\n'),
  };
}

/**
 * Invites an address to an organization (owners, admins and staff; an owner only by owners
 * and staff) and mails it the link. An earlier pending invitation to the address is revoked,
 * so one link at most works per address and organization. The mail goes after the commit:
 * a link never points at an invitation that was rolled back.
 */
export async function createInvitation(
  deps: Pick<ApiDeps, 'db' | 'config'> & { mailer: Mailer },
  ctx: RequestContext,
  input: { organizationId: string; email: string; role: MembershipRole },
): Promise<InvitationRow> {
  const { organizationId, role } = input;
  const email = normaliseEmail(input.email);
  const token = randomBytes(32).toString('base64url');
  const { invitation, organizationName } = await deps.db.$transaction(async (tx) => {
    const now = new Date();
    await lockOrganization(tx, organizationId);
    const access = await assertOrganizationAccess(tx, ctx.actor, organizationId, INVITING_ROLES);
    assertMayGrantRole(access, role);
    const member = await tx.membership.findFirst({ where: { organizationId, user: { email } } });
    if (member) {
      throw new AppError('conflict', `${email} is a member of this organization already.`, {
        errors: [{ field: 'email', message: 'is a member already' }],
      });
    }
    const created = await tx.invitation.create({
      data: {
        organizationId,
        email,
        role,
        tokenHash: hashToken(token),
        invitedById: ctx.actor.userId,
        expiresAt: new Date(now.getTime() + INVITATION_TTL_MS),
      },
      include: { ...INVITED_BY, organization: { select: { name: true } } },
    });
    const replaced = await tx.invitation.findMany({
      where: { organizationId, email, id: { not: created.id }, ...pending(now) },
      select: { id: true },
    });
    if (replaced.length > 0) {
      await tx.invitation.updateMany({
        where: { id: { in: replaced.map((old) => old.id) } },
        data: { revokedAt: now },
      });
    }
    for (const old of replaced) {
      await audit(tx, ctx, {
        action: 'invitation.revoke',
        targetType: 'invitation',
        targetId: old.id,
        organizationId,
        data: { replacedBy: created.id },
      });
    }
    await audit(tx, ctx, {
      action: 'invitation.create',
      targetType: 'invitation',
      targetId: created.id,
      organizationId,
      data: { email, role },
    });
    const { organization, ...invitation } = created;
    return { invitation, organizationName: organization.name };
  });
  await deps.mailer.send(
    invitationMail({
      to: email,
      publicUrl: deps.config.publicUrl,
      token,
      organizationName,
      role,
      invitedBy: ctx.actor.email,
    }),
  );
  return invitation;
}

/** The organization's invitations, pending ones first, newest first within each group. */
export async function listInvitations(
  deps: Pick<ApiDeps, 'db'>,
  actor: Actor,
  organizationId: string,
): Promise<InvitationRow[]> {
  await assertOrganizationAccess(deps.db, actor, organizationId, INVITING_ROLES);
  const now = new Date();
  const order = [{ createdAt: 'desc' as const }, { id: 'desc' as const }];
  const open = await deps.db.invitation.findMany({
    where: { organizationId, ...pending(now) },
    include: INVITED_BY,
    orderBy: order,
    take: LIST_LIMIT,
  });
  const closed = await deps.db.invitation.findMany({
    where: { organizationId, NOT: pending(now) },
    include: INVITED_BY,
    orderBy: order,
    take: LIST_LIMIT - open.length,
  });
  return [...open, ...closed];
}

/** Revokes an invitation (owners, admins and staff); an accepted one stays, as its member does. */
export async function revokeInvitation(
  deps: Pick<ApiDeps, 'db'>,
  ctx: RequestContext,
  input: { organizationId: string; invitationId: string },
): Promise<void> {
  const { organizationId, invitationId } = input;
  await deps.db.$transaction(async (tx) => {
    await lockOrganization(tx, organizationId);
    await assertOrganizationAccess(tx, ctx.actor, organizationId, INVITING_ROLES);
    const invitation = await tx.invitation.findFirst({ where: { id: invitationId, organizationId } });
    if (!invitation) throw new AppError('not_found', `No invitation ${invitationId}.`);
    if (invitation.acceptedAt) {
      throw new AppError(
        'conflict',
        'This invitation was accepted; remove the member (DELETE /v1/organizations/{id}/members/{userId}) instead.',
      );
    }
    if (invitation.revokedAt) return;
    await tx.invitation.update({ where: { id: invitation.id }, data: { revokedAt: new Date() } });
    await audit(tx, ctx, {
      action: 'invitation.revoke',
      targetType: 'invitation',
      targetId: invitation.id,
      organizationId,
    });
  });
}

const invalidInvitation = () =>
  new AppError('validation_failed', 'This invitation is not valid: it is unknown, used or revoked.', {
    errors: [{ field: 'token', message: 'is unknown, used or revoked' }],
  });

/**
 * Accepts an invitation: the caller, signed in with the invited address, becomes a member
 * with the invited role. A token works once, within 7 days, unless revoked or replaced.
 */
export async function acceptInvitation(
  deps: Pick<ApiDeps, 'db'>,
  ctx: RequestContext,
  token: string,
): Promise<MemberRow> {
  return deps.db.$transaction(async (tx) => {
    const now = new Date();
    const invitation = await tx.invitation.findUnique({ where: { tokenHash: hashToken(token) } });
    if (!invitation || invitation.acceptedAt || invitation.revokedAt) throw invalidInvitation();
    if (invitation.expiresAt <= now) {
      throw new AppError('validation_failed', 'This invitation has expired; ask for a new one.', {
        errors: [{ field: 'token', message: 'has expired' }],
      });
    }
    // The token proves access to the mailbox; the account must be that mailbox's too, or a
    // forwarded link would let anyone in.
    if (invitation.email !== normaliseEmail(ctx.actor.email)) {
      throw new AppError(
        'forbidden',
        "This invitation was sent to another e-mail address than your account's; sign in with the invited address to accept it.",
      );
    }
    const { organizationId, role } = invitation;
    await lockOrganization(tx, organizationId);
    // A revocation or replacement that committed meanwhile wins: the claim finds no row.
    const claimed = await tx.invitation.updateMany({
      where: { id: invitation.id, acceptedAt: null, revokedAt: null },
      data: { acceptedAt: now },
    });
    if (claimed.count !== 1) throw invalidInvitation();
    const existing = await tx.membership.findUnique({
      where: { organizationId_userId: { organizationId, userId: ctx.actor.userId } },
    });
    if (existing) {
      throw new AppError('conflict', `You are a member of this organization already, as ${existing.role}.`);
    }
    const membership = await tx.membership.create({
      data: { organizationId, userId: ctx.actor.userId, role },
      include: MEMBER_USER,
    });
    await audit(tx, ctx, {
      action: 'invitation.accept',
      targetType: 'invitation',
      targetId: invitation.id,
      organizationId,
      data: { userId: ctx.actor.userId, role },
    });
    return membership;
  });
}
