import type { ApiDeps } from '../context.ts';
import type { OperationHandlers } from '../openapi.ts';
import { requestContext } from '../request-context.ts';
import { getBillingUsage, getInstanceUsage } from './usage.service.ts';

export function usageHandlers(
  deps: ApiDeps,
): Pick<OperationHandlers, 'getInstanceUsage' | 'getBillingUsage'> {
  return {
    async getInstanceUsage(req, res, { params, query }) {
      res.json(await getInstanceUsage(deps, requestContext(req), params.id, query));
    },
    async getBillingUsage(req, res, { query }) {
      res.json(await getBillingUsage(deps, requestContext(req), query));
    },
  };
}
