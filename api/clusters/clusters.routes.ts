import type { ApiDeps } from '../context.ts';
import type { OperationHandlers } from '../openapi.ts';
import { requestContext } from '../request-context.ts';
import { listClusters } from './clusters.service.ts';

export function clustersHandlers(deps: ApiDeps): Pick<OperationHandlers, 'listClusters'> {
  return {
    async listClusters(req, res) {
      res.json(await listClusters(deps, requestContext(req)));
    },
  };
}
