import type { ApiDeps } from '../context.ts';
import type { OperationHandlers } from '../openapi.ts';
import { requestContext } from '../request-context.ts';
import { getInstanceJson, listInstancesPageJson } from './instances.service.ts';

export function instancesHandlers(deps: ApiDeps): Pick<OperationHandlers, 'listInstances' | 'getInstance'> {
  return {
    async listInstances(req, res, { query }) {
      const { actor } = requestContext(req);
      res.type('application/json').send(await listInstancesPageJson(deps, actor, query));
    },
    async getInstance(req, res, { params }) {
      const { actor } = requestContext(req);
      res.type('application/json').send(await getInstanceJson(deps, actor, params.id));
    },
  };
}
