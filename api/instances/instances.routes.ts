import type { ApiDeps } from '../context.ts';
import type { OperationHandlers } from '../openapi.ts';
import { requestContext } from '../request-context.ts';
import { streamInstanceEvents } from './instance-events.ts';
import { getInstanceJson, listInstancesPageJson } from './instances.service.ts';

export function instancesHandlers(
  deps: ApiDeps,
): Pick<OperationHandlers, 'listInstances' | 'getInstance' | 'streamInstanceEvents'> {
  return {
    async listInstances(req, res, { query }) {
      const { actor } = requestContext(req);
      res.type('application/json').send(await listInstancesPageJson(deps, actor, query));
    },
    async getInstance(req, res, { params }) {
      const { actor } = requestContext(req);
      res.type('application/json').send(await getInstanceJson(deps, actor, params.id));
    },
    async streamInstanceEvents(req, res, { params, query }) {
      const { actor } = requestContext(req);
      const lastEventId = req.get('last-event-id');
      const after = lastEventId && /^[0-9]{1,19}$/.test(lastEventId) ? lastEventId : (query.after ?? '0');
      await streamInstanceEvents(deps, actor, params.id, after, req, res);
    },
  };
}
