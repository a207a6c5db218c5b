import { Router } from 'express';
import { z } from 'zod';
import { getActor, requireScope } from '../auth/bearer.ts';
import type { ApiDeps } from '../context.ts';
import { parseInput } from '../validation.ts';
import { getInstance, listInstances } from './instances.service.ts';

const listQuery = z.strictObject({
  status: z
    .enum([
      'pending_payment',
      'provisioning',
      'running',
      'updating',
      'suspended',
      'deleting',
      'deleted',
      'failed',
    ])
    .optional(),
  limit: z.coerce.number().int().min(1).max(200).default(50),
});

const instanceId = z.object({ id: z.uuid({ message: 'must be an instance id (UUID)' }) });

export function instancesRoutes(deps: ApiDeps): Router {
  const router = Router();

  router.get('/v1/instances', async (req, res) => {
    const actor = getActor(req);
    requireScope(actor, 'instances:read');
    const query = parseInput(listQuery, req.query, 'query');
    res.json({ data: await listInstances(deps.db, actor, query) });
  });

  router.get('/v1/instances/:id', async (req, res) => {
    const actor = getActor(req);
    requireScope(actor, 'instances:read');
    const { id } = parseInput(instanceId, req.params, 'path');
    res.json(await getInstance(deps.db, actor, id));
  });

  return router;
}
