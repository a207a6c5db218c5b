import { Router } from 'express';
import { z } from 'zod';
import { AppError } from '../../core/errors.ts';
import { audit } from '../audit.ts';
import { getActor, requireScope } from '../auth/bearer.ts';
import type { ApiDeps } from '../context.ts';
import { isStaff } from '../policy.ts';
import { requestContext } from '../request-context.ts';
import { parseInput } from '../validation.ts';

const createBody = z.strictObject({
  name: z.string().trim().min(1).max(120),
  slug: z.string().regex(/^[a-z0-9](?:[a-z0-9-]{0,46}[a-z0-9])?$/, {
    message: 'must be lower-case letters, digits and hyphens',
  }),
});

const present = (org: { id: string; name: string; slug: string; createdAt: Date }) => ({
  id: org.id,
  name: org.name,
  slug: org.slug,
  createdAt: org.createdAt,
});

export function organizationsRoutes(deps: ApiDeps): Router {
  const router = Router();

  /** Creates an organization with the caller as its owner. */
  router.post('/v1/organizations', async (req, res) => {
    const ctx = requestContext(req);
    requireScope(ctx.actor, 'instances:write');
    const input = parseInput(createBody, req.body);
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
      .catch((error: { code?: string }) => {
        if (error.code === 'P2002') {
          throw new AppError('conflict', `The slug "${input.slug}" is taken.`, {
            errors: [{ field: 'slug', message: 'Already in use.' }],
          });
        }
        throw error;
      });
    res.status(201).location(`/v1/organizations/${org.id}`).json(present(org));
  });

  /** Organizations the caller belongs to (staff: all). */
  router.get('/v1/organizations', async (req, res) => {
    const actor = getActor(req);
    requireScope(actor, 'instances:read');
    const orgs = await deps.db.organization.findMany({
      where: isStaff(actor) ? {} : { memberships: { some: { userId: actor.userId } } },
      orderBy: { createdAt: 'asc' },
      take: 200,
    });
    res.json({ data: orgs.map(present) });
  });

  return router;
}
