import type { ApiDeps } from '../context.ts';
import type { OperationHandlers } from '../openapi.ts';
import { requestContext } from '../request-context.ts';
import { getInstance, listInstances } from './instances.service.ts';

export function instancesHandlers(deps: ApiDeps): Pick<OperationHandlers, 'listInstances' | 'getInstance'> {
  return {
    async listInstances(req, res, { query }) {
      const { actor } = requestContext(req);
      res.json({
        data: await listInstances(deps.db, actor, { status: query.status, limit: query.limit ?? 50 }),
      });
    },
    async getInstance(req, res, { params }) {
      const { actor } = requestContext(req);
      res.json(await getInstance(deps.db, actor, params.id));
    },
  };
}
