import type { ApiDeps } from '../context.ts';
import type { OperationHandlers } from '../openapi.ts';
import { requestContext } from '../request-context.ts';
import { presentMember, removeMember, updateMemberRole } from './members.service.ts';

export function membersHandlers(deps: ApiDeps): Pick<OperationHandlers, 'updateMember' | 'removeMember'> {
  return {
    async updateMember(req, res, { params, body }) {
      const ctx = requestContext(req);
      const member = await updateMemberRole(deps, ctx, {
        organizationId: params.id,
        userId: params.userId,
        role: body.role,
      });
      res.json(presentMember(member));
    },

    async removeMember(req, res, { params }) {
      const ctx = requestContext(req);
      await removeMember(deps, ctx, { organizationId: params.id, userId: params.userId });
      res.status(204).end();
    },
  };
}
