import type { ApiDeps } from '../context.ts';
import type { OperationHandlers } from '../openapi.ts';
import { requestContext } from '../request-context.ts';
import {
  approvePayment,
  cancelOrder,
  createOrder,
  getOrder,
  listOrders,
  openCheckout,
  presentOrder,
} from './orders.service.ts';

export function ordersHandlers(
  deps: ApiDeps,
): Pick<
  OperationHandlers,
  'listOrders' | 'createOrder' | 'getOrder' | 'approveOrderPayment' | 'cancelOrder' | 'openOrderCheckout'
> {
  return {
    async listOrders(req, res, { query }) {
      res.json(await listOrders(deps, requestContext(req).actor, query));
    },
    async createOrder(req, res, { body }) {
      const ctx = requestContext(req);
      const order = await createOrder(deps, ctx, body);
      res.status(201).location(`/v1/orders/${order.id}`).json(presentOrder(order));
    },
    async getOrder(req, res, { params }) {
      const ctx = requestContext(req);
      res.json(presentOrder(await getOrder(deps, ctx.actor, params.id)));
    },
    async approveOrderPayment(req, res, { params }) {
      const ctx = requestContext(req);
      res.json(presentOrder(await approvePayment(deps, ctx, params.id)));
    },
    async openOrderCheckout(req, res, { params }) {
      res.json(await openCheckout(deps, requestContext(req), params.id));
    },
    async cancelOrder(req, res, { params }) {
      res.json(presentOrder(await cancelOrder(deps, requestContext(req), params.id)));
    },
  };
}
