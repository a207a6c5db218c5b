import type { Response } from 'express';
import type { Logger } from '../../core/log.ts';
import type { ApiDeps } from '../context.ts';
import type { OperationHandlers } from '../openapi.ts';
import { requestContext } from '../request-context.ts';
import {
  getSponsorPage,
  listInstanceSponsorships,
  type PublicRequestContext,
  startSponsorship,
  updateSponsorPage,
} from './sponsors.service.ts';

/** The ids and logger of a request that may come from nobody (the public sponsor page). */
function publicContext(res: Response): PublicRequestContext {
  const locals = res.locals as { requestId: string; log: Logger };
  return { requestId: locals.requestId, log: locals.log };
}

export function sponsorsHandlers(
  deps: ApiDeps,
): Pick<
  OperationHandlers,
  'updateSponsorPage' | 'listInstanceSponsorships' | 'getSponsorPage' | 'openSponsorCheckout'
> {
  return {
    async updateSponsorPage(req, res, { params, body }) {
      res.json(await updateSponsorPage(deps, requestContext(req), params.id, body));
    },
    async listInstanceSponsorships(req, res, { params }) {
      res.json({ data: await listInstanceSponsorships(deps, requestContext(req), params.id) });
    },
    async getSponsorPage(_req, res, { params }) {
      res.json(await getSponsorPage(deps, params.domain));
    },
    async openSponsorCheckout(_req, res, { params, body }) {
      res.status(201).json(await startSponsorship(deps, publicContext(res), params.domain, body));
    },
  };
}
