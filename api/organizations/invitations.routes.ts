import type { Mailer } from '../auth/mailer.ts';
import type { ApiDeps } from '../context.ts';
import type { OperationHandlers } from '../openapi.ts';
import { requestContext } from '../request-context.ts';
import {
  acceptInvitation,
  createInvitation,
  listInvitations,
  presentInvitation,
  revokeInvitation,
} from './invitations.service.ts';
import { presentMember } from './members.service.ts';

export function invitationsHandlers(
  deps: ApiDeps & { mailer: Mailer },
): Pick<OperationHandlers, 'createInvitation' | 'listInvitations' | 'revokeInvitation' | 'acceptInvitation'> {
  return {
    async createInvitation(req, res, { params, body }) {
      const ctx = requestContext(req);
      const invitation = await createInvitation(deps, ctx, {
        organizationId: params.id,
        email: body.email,
        role: body.role,
      });
      res
        .status(201)
        .location(`/v1/organizations/${params.id}/invitations/${invitation.id}`)
        .json(presentInvitation(invitation));
    },

    async listInvitations(req, res, { params }) {
      const { actor } = requestContext(req);
      const invitations = await listInvitations(deps, actor, params.id);
      const now = new Date();
      res.json({ data: invitations.map((invitation) => presentInvitation(invitation, now)) });
    },

    async revokeInvitation(req, res, { params }) {
      const ctx = requestContext(req);
      await revokeInvitation(deps, ctx, { organizationId: params.id, invitationId: params.invitationId });
      res.status(204).end();
    },

    async acceptInvitation(req, res, { body }) {
      const ctx = requestContext(req);
      const membership = await acceptInvitation(deps, ctx, body.token);
      res
        .status(201)
        .location(`/v1/organizations/${membership.organizationId}/members/${membership.userId}`)
        .json(presentMember(membership));
    },
  };
}
