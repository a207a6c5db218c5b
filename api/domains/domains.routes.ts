import type { ApiDeps } from '../context.ts';
import type { OperationHandlers } from '../openapi.ts';
import { requestContext } from '../request-context.ts';
import { makeDnsResolver } from './dns.ts';
import {
  checkServerDomain,
  claimCustomDomain,
  listCustomDomains,
  presentCustomDomain,
  removeCustomDomain,
  verifyCustomDomain,
} from './domains.service.ts';

export function domainsHandlers(
  deps: ApiDeps,
): Pick<
  OperationHandlers,
  'claimCustomDomain' | 'listCustomDomains' | 'verifyCustomDomain' | 'removeCustomDomain' | 'checkDomain'
> {
  const dns = makeDnsResolver({ servers: deps.config.dnsServers });
  return {
    async claimCustomDomain(req, res, { params, body }) {
      const ctx = requestContext(req);
      const domain = await claimCustomDomain(deps, ctx, params.id, body.hostname);
      res
        .status(201)
        .location(`/v1/organizations/${params.id}/domains/${domain.id}`)
        .json(presentCustomDomain(domain));
    },
    async listCustomDomains(req, res, { params }) {
      const ctx = requestContext(req);
      const domains = await listCustomDomains(deps, ctx, params.id);
      res.json({ data: domains.map(presentCustomDomain) });
    },
    async verifyCustomDomain(req, res, { params }) {
      const ctx = requestContext(req);
      res.json(presentCustomDomain(await verifyCustomDomain(deps, ctx, dns, params.id, params.domainId)));
    },
    async checkDomain(req, res, { query }) {
      res.json(await checkServerDomain(deps, requestContext(req), query.organizationId, query.domain));
    },
    async removeCustomDomain(req, res, { params }) {
      const ctx = requestContext(req);
      await removeCustomDomain(deps, ctx, params.id, params.domainId);
      res.status(204).end();
    },
  };
}
