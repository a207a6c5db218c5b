import type { ApiDeps } from '../context.ts';
import type { OperationHandlers } from '../openapi.ts';
import { requestContext } from '../request-context.ts';
import {
  createFleetUpgrade,
  getFleetUpgrade,
  listFleetUpgrades,
  stopFleetUpgrade,
} from './fleet-upgrades.service.ts';

type FleetUpgradeOperations =
  | 'listFleetUpgrades'
  | 'createFleetUpgrade'
  | 'getFleetUpgrade'
  | 'stopFleetUpgrade';

export function fleetUpgradesHandlers(deps: ApiDeps): Pick<OperationHandlers, FleetUpgradeOperations> {
  return {
    async listFleetUpgrades(req, res, { query }) {
      res.json(await listFleetUpgrades(deps, requestContext(req), query));
    },
    async createFleetUpgrade(req, res, { body }) {
      const upgrade = await createFleetUpgrade(deps, requestContext(req), body);
      res.status(201).location(`/v1/fleet-upgrades/${upgrade.id}`).json(upgrade);
    },
    async getFleetUpgrade(req, res, { params }) {
      res.json(await getFleetUpgrade(deps, requestContext(req), params.id));
    },
    async stopFleetUpgrade(req, res, { params }) {
      res.json(await stopFleetUpgrade(deps, requestContext(req), params.id));
    },
  };
}
