import type { SecretBox } from '../core/crypto.ts';
import type { Db } from '../core/db.ts';
import type { PlanLimits } from '../core/domain/catalog.ts';
import { transition } from '../core/domain/instance-status.ts';
import type { Logger } from '../core/log.ts';
import { parseClusterSettings } from './cluster-settings.ts';
import { namespaceFor, renderInstanceManifests, renderInstanceSecret } from './manifests/render-instance.ts';
import { ensureInstanceSecrets } from './secrets.ts';
import { makeDryRunTarget } from './targets/dry-run.target.ts';
import type { ClusterTarget } from './targets/target.ts';

export interface ReconcilerDeps {
  db: Db;
  box: SecretBox;
  log: Logger;
  /** Picks the target for a cluster row; the dry-run store unless a test swaps it. */
  targetFor?: (cluster: { target: string }) => ClusterTarget;
}

type StepResult = { outcome: 'succeeded' | 'skipped'; detail?: string };

const SECRET_NAME = 'mastodon-secrets';

/**
 * Brings one instance to its desired state. Level-triggered: it reads the instance, runs only
 * the steps of the current operation that have not yet succeeded, and records each as an
 * OperationStep. A failing step is recorded and rethrown so the queue retries with backoff;
 * the retry resumes at that step.
 */
export async function reconcileInstance(deps: ReconcilerDeps, instanceId: string): Promise<void> {
  const { db } = deps;
  const instance = await db.instance.findUnique({
    where: { id: instanceId },
    include: { plan: true, addons: { include: { addonType: true } } },
  });
  if (!instance) return;
  const log = deps.log.child({ instanceId });
  if (instance.status !== 'provisioning') {
    // Other states (upgrade, suspend, delete) arrive with their operations; nothing to do here.
    log.debug('reconcile: nothing to do', { status: instance.status });
    return;
  }
  const operation =
    (await db.operation.findFirst({
      where: { instanceId, generation: instance.generation, status: 'running', kind: 'provision' },
    })) ??
    (await db.operation.create({
      data: { instanceId, kind: 'provision', status: 'running', generation: instance.generation },
    }));
  const opLog = log.child({ operationId: operation.id });
  const done = new Set(
    (
      await db.operationStep.findMany({
        where: { operationId: operation.id, outcome: { in: ['succeeded', 'skipped'] } },
      })
    ).map((step) => step.name),
  );

  const step = async (name: string, run: () => Promise<StepResult>) => {
    if (done.has(name)) return;
    const attempt = (await db.operationStep.count({ where: { operationId: operation.id, name } })) + 1;
    const row = await db.operationStep.create({
      data: { operationId: operation.id, name, outcome: 'running', attempt },
    });
    try {
      const result = await run();
      await db.operationStep.update({
        where: { id: row.id },
        data: { outcome: result.outcome, detail: result.detail ?? null, finishedAt: new Date() },
      });
      opLog.info('step done', { step: name, outcome: result.outcome, attempt });
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      await db.operationStep.update({
        where: { id: row.id },
        data: { outcome: 'failed', error: message, finishedAt: new Date() },
      });
      await db.event.create({
        data: { instanceId, type: 'step.failed', message: `${name} failed: ${message}`, data: { attempt } },
      });
      opLog.warn('step failed', { step: name, attempt, error: message });
      throw error;
    }
  };

  await step('placement', async () => {
    if (instance.clusterId) return { outcome: 'skipped', detail: 'already placed' };
    const cluster = await placeInstance(db, instanceId);
    return { outcome: 'succeeded', detail: `placed on cluster ${cluster.name}` };
  });
  const placed = await db.instance.findUniqueOrThrow({
    where: { id: instanceId },
    include: { cluster: true },
  });
  const cluster = placed.cluster;
  if (!cluster) throw new Error('instance has no cluster after placement');
  const target = (deps.targetFor ?? (() => makeDryRunTarget(db)))(cluster);
  const settings = parseClusterSettings(cluster.settings);
  const namespace = namespaceFor(instanceId);
  const databaseName = namespace.replaceAll('-', '_');

  let secrets: Awaited<ReturnType<typeof ensureInstanceSecrets>> | undefined;
  const loadSecrets = async () => {
    secrets ??= await ensureInstanceSecrets(db, deps.box, instanceId);
    return secrets;
  };
  await step('secrets', async () => {
    const { created } = await loadSecrets();
    return {
      outcome: 'succeeded',
      detail: created > 0 ? `generated ${created} secrets` : 'secrets already present',
    };
  });
  await step('database', async () => {
    if (target.dryRun) {
      return {
        outcome: 'skipped',
        detail: `dry-run: would create role and database ${databaseName} on ${settings.databaseHost}`,
      };
    }
    throw new Error('creating databases on a real cluster is not available yet');
  });
  await step('apply-manifests', async () => {
    const addons = new Set(instance.addons.map((addon) => addon.addonType.code));
    const objects = renderInstanceManifests({
      instanceId,
      domain: instance.domain,
      mastodonVersion: instance.mastodonVersion,
      flavor: instance.flavor === 'glitch' ? 'glitch' : 'vanilla',
      planCode: instance.plan.code,
      limits: instance.plan.limits as unknown as PlanLimits,
      generation: instance.generation,
      secretName: SECRET_NAME,
      database: {
        host: settings.databaseHost,
        port: settings.databasePort,
        name: databaseName,
        user: databaseName,
      },
      smtp: {
        server: settings.smtpServer,
        port: settings.smtpPort,
        fromAddress: `notifications@${instance.domain}`,
      },
      ingressClassName: settings.ingressClassName,
      clusterIssuer: settings.clusterIssuer,
      // Add-on endpoints come from their Pulumi stacks (infra/); until then add-ons render off.
      objectStorage: null,
      search: null,
    });
    const [namespaceObject, ...rest] = objects;
    const secret = renderInstanceSecret({
      namespace,
      name: SECRET_NAME,
      labels: namespaceObject?.metadata.labels ?? {},
      values: (await loadSecrets()).values,
    });
    const ordered = namespaceObject ? [namespaceObject, secret, ...rest] : [secret, ...rest];
    const result = await target.apply(instanceId, instance.generation, ordered);
    const pending = [...addons].filter((code) => code === 'object_storage' || code === 'elasticsearch');
    return {
      outcome: 'succeeded',
      detail: `applied ${result.applied} objects, pruned ${result.pruned}${pending.length > 0 ? `; add-ons not yet wired: ${pending.join(', ')}` : ''}`,
    };
  });
  await step('rollout', async () =>
    target.dryRun
      ? { outcome: 'skipped', detail: 'dry-run: no workloads run, so there is no rollout to wait for' }
      : Promise.reject(new Error('rollout on a real cluster is not available yet')),
  );

  await db.$transaction(async (tx) => {
    await transition(tx, instanceId, 'provisioning', 'running', {
      observedGeneration: instance.generation,
      statusReason: target.dryRun
        ? 'provisioned in dry-run: manifests rendered and stored, nothing runs'
        : null,
    });
    await tx.operation.update({
      where: { id: operation.id },
      data: { status: 'succeeded', finishedAt: new Date() },
    });
    await tx.event.create({
      data: {
        instanceId,
        type: 'instance.running',
        message: target.dryRun ? 'Provisioned in dry-run.' : 'The server is running.',
        data: { dryRun: target.dryRun, generation: instance.generation },
      },
    });
  });
  opLog.info('instance running', { dryRun: target.dryRun });
}

/** Picks a cluster with room left, fullest first so clusters fill before new ones are used. */
async function placeInstance(db: Db, instanceId: string) {
  return db.$transaction(async (tx) => {
    const clusters = await tx.cluster.findMany({
      include: { _count: { select: { instances: true } } },
      orderBy: { name: 'asc' },
    });
    const withRoom = clusters
      .filter((cluster) => cluster._count.instances < cluster.capacity)
      .sort((a, b) => b._count.instances - a._count.instances);
    const cluster = withRoom[0];
    if (!cluster) throw new Error('no cluster has room for another instance');
    await tx.instance.update({ where: { id: instanceId }, data: { clusterId: cluster.id } });
    return cluster;
  });
}
