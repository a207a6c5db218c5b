import { isUniqueViolation } from '../../core/db.ts';
import { AppError } from '../../core/errors.ts';
import { audit } from '../audit.ts';
import type { ApiDeps } from '../context.ts';
import type { OperationHandlers } from '../openapi.ts';
import { assertOrganizationAccess, isStaff, MEMBER_ROLES } from '../policy.ts';
import { requestContext } from '../request-context.ts';
import { MEMBER_USER, presentMember } from './members.service.ts';

const present = (org: { id: string; name: string; slug: string; createdAt: Date }) => ({
  id: org.id,
  name: org.name,
  slug: org.slug,
  createdAt: org.createdAt.toISOString(),
});

export function organizationsHandlers(
  deps: ApiDeps,
): Pick<OperationHandlers, 'createOrganization' | 'listOrganizations' | 'listMembers'> {
  return {
    /** Creates an organization with the caller as its owner. */
    async createOrganization(req, res, { body }) {
      const ctx = requestContext(req);
      const input = { name: body.name.trim(), slug: body.slug };
      const org = await deps.db
        .$transaction(async (tx) => {
          const created = await tx.organization.create({
            data: { ...input, memberships: { create: { userId: ctx.actor.userId, role: 'owner' } } },
          });
          await audit(tx, ctx, {
            action: 'organization.create',
            targetType: 'organization',
            targetId: created.id,
            organizationId: created.id,
          });
          return created;
        })
        .catch((error: unknown) => {
          if (isUniqueViolation(error)) {
            throw new AppError('conflict', `The slug "${input.slug}" is taken.`, {
              errors: [{ field: 'slug', message: 'Already in use.' }],
            });
          }
          throw error;
        });
      res.status(201).location(`/v1/organizations/${org.id}`).json(present(org));
    },

    /** Organizations the caller belongs to (staff: all). */
    async listOrganizations(req, res) {
      const { actor } = requestContext(req);
      const orgs = await deps.db.organization.findMany({
        where: isStaff(actor) ? {} : { memberships: { some: { userId: actor.userId } } },
        orderBy: { createdAt: 'asc' },
        take: 200,
      });
      res.json({ data: orgs.map(present) });
    },

    /** Who belongs to the organization, with which role; any member (or staff) may look. */
    async listMembers(req, res, { params }) {
      const { actor } = requestContext(req);
      await assertOrganizationAccess(deps.db, actor, params.id, MEMBER_ROLES);
      const memberships = await deps.db.membership.findMany({
        where: { organizationId: params.id },
        include: MEMBER_USER,
        orderBy: [{ createdAt: 'asc' }, { id: 'asc' }],
      });
      const ownersFirst = [...memberships].sort(
        (a, b) => Number(b.role === 'owner') - Number(a.role === 'owner'),
      );
      res.json({
        data: ownersFirst.map(presentMember),
      });
    },
  };
}
