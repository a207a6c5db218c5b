import type { Request } from 'express';
import type { Logger } from '../core/log.ts';
import { getActor } from './auth/bearer.ts';
import type { RequestContext } from './context.ts';

/** The request's context for services: its authenticated actor, id and scoped logger. */
export function requestContext(req: Request): RequestContext {
  const local = req.res?.locals as { requestId: string; log: Logger };
  return { actor: getActor(req), requestId: local.requestId, log: local.log };
}
