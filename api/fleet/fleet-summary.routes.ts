import type { ApiDeps } from '../context.ts';
import type { OperationHandlers } from '../openapi.ts';
import { requestContext } from '../request-context.ts';
import { getFleetSummaryJson } from './fleet-summary.service.ts';

export function fleetSummaryHandlers(deps: ApiDeps): Pick<OperationHandlers, 'getFleetSummary'> {
  return {
    async getFleetSummary(req, res) {
      res.type('application/json').send(await getFleetSummaryJson(deps, requestContext(req).actor));
    },
  };
}
