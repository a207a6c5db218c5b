import type { ApiDeps } from '../context.ts';
import type { OperationHandlers } from '../openapi.ts';
import { requestContext } from '../request-context.ts';
import { getBillingReport } from './billing-reports.service.ts';

export function billingReportsHandlers(deps: ApiDeps): Pick<OperationHandlers, 'getBillingReport'> {
  return {
    async getBillingReport(req, res, { query }) {
      res.json(await getBillingReport(deps, requestContext(req), query));
    },
  };
}
