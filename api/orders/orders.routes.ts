import { Router } from 'express';
import { z } from 'zod';
import { getActor, requireScope } from '../auth/bearer.ts';
import type { ApiDeps } from '../context.ts';
import { requestContext } from '../request-context.ts';
import { parseInput } from '../validation.ts';
import { approvePayment, createOrder, getOrder, presentOrder } from './orders.service.ts';

const createOrderBody = z.strictObject({
  organizationId: z.uuid({ message: 'must be an organization id (UUID)' }),
  plan: z.string().min(1).max(64),
  domain: z.string().min(1).max(253),
  addons: z
    .array(z.string().min(1).max(64))
    .max(10)
    .default([])
    .refine((list) => new Set(list).size === list.length, {
      message: 'must not repeat an add-on',
    }),
});

const orderId = z.object({ id: z.uuid({ message: 'must be an order id (UUID)' }) });

export function ordersRoutes(deps: ApiDeps): Router {
  const router = Router();

  router.post('/v1/orders', async (req, res) => {
    const ctx = requestContext(req);
    requireScope(ctx.actor, 'instances:write');
    const input = parseInput(createOrderBody, req.body);
    const order = await createOrder(deps, ctx, input);
    res.status(201).location(`/v1/orders/${order.id}`).json(presentOrder(order));
  });

  router.get('/v1/orders/:id', async (req, res) => {
    const actor = getActor(req);
    requireScope(actor, 'instances:read');
    const { id } = parseInput(orderId, req.params, 'path');
    res.json(presentOrder(await getOrder(deps, actor, id)));
  });

  router.post('/v1/orders/:id/approve-payment', async (req, res) => {
    const ctx = requestContext(req);
    requireScope(ctx.actor, 'admin');
    const { id } = parseInput(orderId, req.params, 'path');
    res.json(presentOrder(await approvePayment(deps, ctx, id)));
  });

  return router;
}
