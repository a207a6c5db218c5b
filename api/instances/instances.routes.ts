import type { Response } from 'express';
import type { ApiDeps } from '../context.ts';
import type { OperationHandlers } from '../openapi.ts';
import { requestContext } from '../request-context.ts';
import { makeBackupDownloadUrl } from './backup-download.ts';
import {
  addInstanceAddon,
  deleteInstance,
  removeInstanceAddon,
  requestBackup,
  restoreInstance,
  resumeInstance,
  retryInstance,
  suspendInstance,
  updateInstance,
} from './instance-actions.ts';
import { streamInstanceEvents } from './instance-events.ts';
import { getInstanceSubscription, setCancelAtPeriodEnd } from './instance-subscription.ts';
import {
  getAddonStackJson,
  getInstanceJson,
  getInstanceManifestsJson,
  getOperationJson,
  listInstancesPageJson,
  listOperationsPageJson,
} from './instances.service.ts';

type InstanceOperations =
  | 'listInstances'
  | 'getInstance'
  | 'streamInstanceEvents'
  | 'updateInstance'
  | 'deleteInstance'
  | 'restoreInstance'
  | 'suspendInstance'
  | 'resumeInstance'
  | 'retryInstance'
  | 'addInstanceAddon'
  | 'removeInstanceAddon'
  | 'listBackups'
  | 'requestBackup'
  | 'downloadBackup'
  | 'listOperations'
  | 'getOperation'
  | 'listInstanceManifests'
  | 'getInstanceAddonStack'
  | 'getInstanceSubscription'
  | 'updateInstanceSubscription';

const presentBackup = (backup: {
  id: string;
  instanceId: string;
  status: string;
  location: string | null;
  sizeBytes: bigint | null;
  createdAt: Date;
  completedAt: Date | null;
}) => ({
  id: backup.id,
  instanceId: backup.instanceId,
  status: backup.status,
  location: backup.location,
  sizeBytes: backup.sizeBytes === null ? null : Number(backup.sizeBytes),
  createdAt: backup.createdAt.toISOString(),
  completedAt: backup.completedAt?.toISOString() ?? null,
});

export function instancesHandlers(deps: ApiDeps): Pick<OperationHandlers, InstanceOperations> {
  /** A change was accepted: 202 with the server as it now stands and its new ETag. */
  const accepted = async (req: Parameters<typeof requestContext>[0], res: Response, id: string) => {
    const { json, etag } = await getInstanceJson(deps, requestContext(req).actor, id);
    res.status(202).set('ETag', etag).type('application/json').send(json);
  };
  return {
    async listInstances(req, res, { query }) {
      const { actor } = requestContext(req);
      res.type('application/json').send(await listInstancesPageJson(deps, actor, query));
    },
    async getInstance(req, res, { params }) {
      const { json, etag } = await getInstanceJson(deps, requestContext(req).actor, params.id);
      res.set('ETag', etag).type('application/json').send(json);
    },
    async streamInstanceEvents(req, res, { params, query }) {
      const { actor } = requestContext(req);
      const lastEventId = req.get('last-event-id');
      const after = lastEventId && /^[0-9]{1,19}$/.test(lastEventId) ? lastEventId : (query.after ?? '0');
      await streamInstanceEvents(deps, actor, params.id, after, req, res);
    },
    async updateInstance(req, res, { params, headers, body }) {
      await updateInstance(deps, requestContext(req), params.id, headers['If-Match'], body);
      await accepted(req, res, params.id);
    },
    async deleteInstance(req, res, { params, headers }) {
      await deleteInstance(deps, requestContext(req), params.id, headers['If-Match']);
      await accepted(req, res, params.id);
    },
    async restoreInstance(req, res, { params, headers }) {
      await restoreInstance(deps, requestContext(req), params.id, headers['If-Match']);
      await accepted(req, res, params.id);
    },
    async suspendInstance(req, res, { params, headers, body }) {
      await suspendInstance(deps, requestContext(req), params.id, headers['If-Match'], body?.reason);
      await accepted(req, res, params.id);
    },
    async resumeInstance(req, res, { params, headers }) {
      await resumeInstance(deps, requestContext(req), params.id, headers['If-Match']);
      await accepted(req, res, params.id);
    },
    async retryInstance(req, res, { params, headers }) {
      await retryInstance(deps, requestContext(req), params.id, headers['If-Match']);
      await accepted(req, res, params.id);
    },
    async addInstanceAddon(req, res, { params, headers, body }) {
      await addInstanceAddon(deps, requestContext(req), params.id, headers['If-Match'], body.code);
      await accepted(req, res, params.id);
    },
    async removeInstanceAddon(req, res, { params, headers }) {
      await removeInstanceAddon(deps, requestContext(req), params.id, headers['If-Match'], params.code);
      await accepted(req, res, params.id);
    },
    async listBackups(req, res, { params }) {
      // Visibility as for reading the instance; the detail query answers 404 for strangers.
      await getInstanceJson(deps, requestContext(req).actor, params.id);
      const backups = await deps.db.backup.findMany({
        where: { instanceId: params.id },
        orderBy: [{ createdAt: 'desc' }, { id: 'desc' }],
        take: 100,
      });
      res.json({ data: backups.map(presentBackup) });
    },
    async requestBackup(req, res, { params }) {
      const backup = await requestBackup(deps, requestContext(req), params.id);
      res.status(202).location(`/v1/instances/${params.id}/backups`).json(presentBackup(backup));
    },
    async downloadBackup(req, res, { params }) {
      const url = await makeBackupDownloadUrl(deps, requestContext(req), params.id, params.backupId);
      // No body: the link is the answer, and it must not outlive its five minutes in a cache.
      res.status(302).set({ Location: url.href, 'Cache-Control': 'no-store' }).end();
    },
    async listOperations(req, res, { params, query }) {
      const json = await listOperationsPageJson(deps, requestContext(req).actor, params.id, query);
      res.type('application/json').send(json);
    },
    async getOperation(req, res, { params }) {
      res.type('application/json').send(await getOperationJson(deps, requestContext(req).actor, params.id));
    },
    async listInstanceManifests(req, res, { params }) {
      const json = await getInstanceManifestsJson(deps, requestContext(req).actor, params.id);
      res.type('application/json').send(json);
    },
    async getInstanceAddonStack(req, res, { params }) {
      res.type('application/json').send(await getAddonStackJson(deps, requestContext(req).actor, params.id));
    },
    async getInstanceSubscription(req, res, { params }) {
      res.json(await getInstanceSubscription(deps, requestContext(req), params.id));
    },
    async updateInstanceSubscription(req, res, { params, body }) {
      res.json(await setCancelAtPeriodEnd(deps, requestContext(req), params.id, body.cancelAtPeriodEnd));
    },
  };
}
