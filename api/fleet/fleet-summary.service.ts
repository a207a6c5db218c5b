import type { Actor, ApiDeps } from '../context.ts';
import { memberFilter } from '../instances/instances.service.ts';
import { findFleetSummaryJson } from './fleet-summary.repository.ts';

/** Counts of the servers the actor may see (as `listInstances` lists them), as JSON. */
export function getFleetSummaryJson(deps: Pick<ApiDeps, 'pool'>, actor: Actor): Promise<string> {
  return findFleetSummaryJson(deps.pool, memberFilter(actor));
}
