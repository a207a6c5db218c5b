import { enqueueSubscriptionSync } from '../billing/subscriptions.ts';
import type { SecretBox } from '../core/crypto.ts';
import type { Db, Prisma } from '../core/db.ts';
import type { PlanLimits } from '../core/domain/catalog.ts';
import { canTransition, type InstanceStatus, transition } from '../core/domain/instance-status.ts';
import type { OperationKind } from '../core/generated/prisma/enums.ts';
import type { Logger } from '../core/log.ts';
import type { PulumiSettings } from '../infra/workspace.ts';
import { addonRenderInput, addonSecretValues, purgeAddons, reconcileAddons } from './addons.ts';
import { parseClusterSettings } from './cluster-settings.ts';
import { type BackupCredentials, openClusterSecrets } from './clusters.ts';
import { dropInstanceDatabase, ensureInstanceDatabase } from './database.ts';
import { type BackupStorage, backupLocation, renderBackupObjects } from './manifests/render-backup.ts';
import {
  type ApplyPhase,
  applyPhaseOf,
  namespaceFor,
  renderInstanceManifests,
  renderInstanceSecret,
} from './manifests/render-instance.ts';
import { INSTANCE_SECRET_NAME, instanceRenderInput } from './render-input.ts';
import { ensureInstanceSecrets } from './secrets.ts';
import { makeDryRunTarget } from './targets/dry-run.target.ts';
import { kubernetesTargetFor } from './targets/kubernetes.target.ts';
import type { ClusterTarget } from './targets/target.ts';

export interface ReconcilerDeps {
  db: Db;
  box: SecretBox;
  log: Logger;
  /** Picks the target for a cluster row; the dry-run store unless a test swaps it. */
  targetFor?: (cluster: { target: string }) => ClusterTarget;
  /** Where add-on stacks live; without it add-on steps on a real cluster report themselves blocked. */
  pulumi?: PulumiSettings | null;
}

type StepResult = { outcome: 'succeeded' | 'skipped'; detail?: string };
type RunStep = (name: string, run: () => Promise<StepResult>) => Promise<void>;

/** Statuses in which the reconciler brings the cluster to the spec. */
const RECONCILED: readonly InstanceStatus[] = ['provisioning', 'updating', 'suspended', 'deleting'];

interface InstanceSpec {
  suspended?: boolean;
  suspendReason?: string | null;
  /** The region the order asked for; any when absent. */
  region?: string;
}

/**
 * The operation a job works on: the newest running one that `matches` (a change made meanwhile
 * opened a newer one, which supersedes the older), or else a new one of `kind`.
 */
async function currentOperation(
  db: Db,
  instanceId: string,
  generation: number,
  kind: OperationKind,
  matches: Prisma.EnumOperationKindFilter = { equals: kind },
) {
  return (
    (await db.operation.findFirst({
      where: { instanceId, status: 'running', kind: matches },
      orderBy: [{ generation: 'desc' }, { startedAt: 'desc' }],
    })) ?? (await db.operation.create({ data: { instanceId, kind, status: 'running', generation } }))
  );
}

/**
 * Records each step of `operationId` as an OperationStep, skipping steps that already
 * succeeded in it (a retried job resumes where the last attempt failed). A failing step is
 * recorded with an Event and rethrown, so the queue retries with backoff.
 */
async function stepRunner(deps: ReconcilerDeps, instanceId: string, operationId: string): Promise<RunStep> {
  const { db } = deps;
  const log = deps.log.child({ instanceId, operationId });
  const done = new Set(
    (
      await db.operationStep.findMany({
        where: { operationId, outcome: { in: ['succeeded', 'skipped'] } },
        select: { name: true },
      })
    ).map((step) => step.name),
  );
  return async (name, run) => {
    if (done.has(name)) return;
    // A step left running (still waiting, or its worker died) carries on in the same row.
    const row =
      (await db.operationStep.findFirst({ where: { operationId, name, outcome: 'running' } })) ??
      (await db.operationStep.create({
        data: {
          operationId,
          name,
          outcome: 'running',
          attempt: (await db.operationStep.count({ where: { operationId, name } })) + 1,
        },
      }));
    const attempt = row.attempt;
    try {
      const result = await run();
      await db.operationStep.update({
        where: { id: row.id },
        data: { outcome: result.outcome, detail: result.detail ?? null, finishedAt: new Date() },
      });
      log.info('step done', { step: name, outcome: result.outcome, attempt });
    } catch (caught) {
      let error = caught;
      if (error instanceof Waiting) {
        const waited = Date.now() - row.startedAt.getTime();
        if (waited <= (WAIT_LIMIT_MS[name] ?? DEFAULT_WAIT_LIMIT_MS)) {
          await db.operationStep.update({ where: { id: row.id }, data: { detail: error.message } });
          log.info('step waiting', { step: name, detail: error.message });
          throw error;
        }
        error = permanent(`gave up after ${Math.round(waited / 60_000)} min: ${error.message}`);
      }
      const message = error instanceof Error ? error.message : String(error);
      await db.operationStep.update({
        where: { id: row.id },
        data: { outcome: 'failed', error: message, finishedAt: new Date() },
      });
      await db.event.create({
        data: { instanceId, type: 'step.failed', message: `${name} failed: ${message}`, data: { attempt } },
      });
      log.warn('step failed', { step: name, attempt, error: message });
      throw error;
    }
  };
}

type ClusterRow = {
  id: string;
  target: string;
  kubeconfigSecretId: string | null;
  databaseAdminSecretId: string | null;
  backupCredentialsSecretId: string | null;
  settings: unknown;
};

/**
 * How to reach a cluster: its target, and for a real one the admin URL of its PostgreSQL
 * server (null on the dry-run target, where no database is made) and its backup bucket (null
 * when none is configured).
 */
interface Connection {
  target: ClusterTarget;
  /** Null on the dry-run target. */
  kubeconfig: string | null;
  databaseAdminUrl: string | null;
  backups: { storage: BackupStorage; credentials: BackupCredentials } | null;
}

async function connect(deps: ReconcilerDeps, cluster: ClusterRow): Promise<Connection> {
  if (cluster.target !== 'kubernetes') {
    return {
      target: deps.targetFor?.(cluster) ?? makeDryRunTarget(deps.db),
      kubeconfig: null,
      databaseAdminUrl: null,
      backups: null,
    };
  }
  const secrets = await openClusterSecrets(deps.db, deps.box, cluster);
  const storage = parseClusterSettings(cluster.settings).backups;
  return {
    target: deps.targetFor?.(cluster) ?? kubernetesTargetFor(secrets.kubeconfig),
    kubeconfig: secrets.kubeconfig,
    databaseAdminUrl: secrets.databaseAdminUrl,
    backups:
      storage && secrets.backupCredentials ? { storage, credentials: secrets.backupCredentials } : null,
  };
}

/**
 * A step waits on the cluster (a rollout, a migration Job): not a failure. The reconcile ends
 * and is queued again shortly; the step keeps its row and its start time, and gives up once it
 * has waited longer than its limit.
 */
export class Waiting extends Error {
  override name = 'Waiting';
  readonly retryable = true;
}

/** How long a step may wait on the cluster before the instance fails. */
const WAIT_LIMIT_MS: Record<string, number> = {
  'pre-migrate': 6 * 3_600_000,
  rollout: 3_600_000,
  'post-migrate': 6 * 3_600_000,
  'owner-account': 1_800_000,
  backup: 6 * 3_600_000,
  'final-backup': 6 * 3_600_000,
};

const DEFAULT_WAIT_LIMIT_MS = 3_600_000;

/** An error no retry can mend: it fails the instance at once (see `isPermanent`). */
const permanent = (message: string) => Object.assign(new Error(message), { retryable: false });

/** What a reconcile came to: done, or waiting on the cluster and to be run again. */
export type ReconcileResult = { state: 'done' } | { state: 'waiting'; detail: string };

/**
 * Brings one instance to its desired state. Level-triggered: it reads the instance, runs the
 * steps of the current operation that have not yet succeeded, and records each. A server
 * that is suspended, or deleted and waiting out its grace period, is rendered scaled to zero.
 * When done, the instance's `observedGeneration` is the generation rendered and its status
 * follows from the spec: `running`, or `suspended`; a deleting instance stays deleting.
 */
export function reconcileInstance(deps: ReconcilerDeps, instanceId: string): Promise<ReconcileResult> {
  return untilWaiting(() => reconcile(deps, instanceId));
}

/** Runs `work` to its end, or until a step waits on the cluster. */
async function untilWaiting(work: () => Promise<void>): Promise<ReconcileResult> {
  try {
    await work();
    return { state: 'done' };
  } catch (error) {
    if (error instanceof Waiting) return { state: 'waiting', detail: error.message };
    throw error;
  }
}

/**
 * The reconcile itself. On a real cluster the objects go in phases, as Mastodon's upgrade
 * procedure asks: config and the pre-deployment migration (which must finish first), then the
 * workloads and their rollout, then the post-deployment migration, and on a new server the
 * owner's account; objects no longer rendered are pruned last. The dry-run target gets the
 * same objects in the same steps; the waits are skipped, as nothing runs there.
 */
async function reconcile(deps: ReconcilerDeps, instanceId: string): Promise<void> {
  const { db } = deps;
  const instance = await db.instance.findUnique({
    where: { id: instanceId },
    include: { plan: true, addons: { include: { addonType: true } } },
  });
  if (!instance) return;
  const log = deps.log.child({ instanceId });
  const settled =
    !RECONCILED.includes(instance.status) ||
    (['suspended', 'deleting'].includes(instance.status) &&
      instance.observedGeneration >= instance.generation);
  if (settled) {
    log.debug('reconcile: nothing to do', { status: instance.status });
    return;
  }
  const generation = instance.generation;
  const spec = (instance.spec ?? {}) as InstanceSpec;
  const scaledDown = spec.suspended === true || instance.status === 'deleting';
  // Backups run beside the spec's operations, as their own jobs.
  const operation = await currentOperation(
    db,
    instanceId,
    generation,
    instance.status === 'provisioning' ? 'provision' : 'configure',
    { not: 'backup' },
  );
  const step = await stepRunner(deps, instanceId, operation.id);

  await step('placement', async () => {
    if (instance.clusterId) return { outcome: 'skipped', detail: 'already placed' };
    const cluster = await placeInstance(db, instanceId, spec.region);
    return { outcome: 'succeeded', detail: `placed on cluster ${cluster.name}` };
  });
  const placed = await db.instance.findUniqueOrThrow({
    where: { id: instanceId },
    include: { cluster: true },
  });
  const cluster = placed.cluster;
  if (!cluster) throw new Error('instance has no cluster after placement');
  const { target, databaseAdminUrl, kubeconfig } = await connect(deps, cluster);
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
    if (!databaseAdminUrl) {
      return {
        outcome: 'skipped',
        detail: `dry-run: would create role and database ${databaseName} on ${settings.databaseHost}`,
      };
    }
    const made = await ensureInstanceDatabase(databaseAdminUrl, {
      name: databaseName,
      password: (await loadSecrets()).values.DB_PASS,
      connectionLimit: (instance.plan.limits as unknown as PlanLimits).dbConnections,
    });
    return {
      outcome: 'succeeded',
      detail: `${made.createdDatabase ? 'created' : 'kept'} database and ${made.createdRole ? 'created' : 'updated'} role ${databaseName}`,
    };
  });
  const render = async () =>
    renderInstanceManifests(
      instanceRenderInput(instance, settings, {
        generation,
        suspended: scaledDown,
        owner: instance.status === 'provisioning' ? await ownerOf(db, instance.organizationId) : null,
        addons: addonRenderInput(
          await db.addonStack.findUnique({ where: { instanceId } }),
          instance.plan.limits as unknown as PlanLimits,
        ),
      }),
    );
  await step('addons', () =>
    reconcileAddons(deps, {
      instance,
      settings,
      kubeconfig,
      ensureNamespace: async () => {
        const [namespaceObject] = await render();
        if (namespaceObject) await target.apply(instanceId, generation, [namespaceObject]);
      },
    }),
  );
  const [namespaceObject, ...rest] = await render();
  const secret = renderInstanceSecret({
    namespace,
    name: INSTANCE_SECRET_NAME,
    labels: namespaceObject?.metadata.labels ?? {},
    values: { ...(await loadSecrets()).values, ...(await addonSecretValues(db, deps.box, instanceId)) },
  });
  const rendered = namespaceObject ? [namespaceObject, secret, ...rest] : [secret, ...rest];
  const phase = (name: ApplyPhase) => rendered.filter((object) => applyPhaseOf(object) === name);

  await step('apply-config', async () => {
    const { applied } = await target.apply(instanceId, generation, phase('config'));
    return { outcome: 'succeeded', detail: `applied ${applied} objects` };
  });
  const runJob = async (name: ApplyPhase): Promise<StepResult> => {
    const [job] = phase(name);
    if (!job)
      return { outcome: 'skipped', detail: scaledDown ? 'scaled to zero: runs on resume' : 'not needed' };
    await target.apply(instanceId, generation, [job]);
    if (target.dryRun)
      return { outcome: 'skipped', detail: `dry-run: Job ${job.metadata.name} stored, nothing runs` };
    const { state, detail } = await target.jobState(instanceId, job.metadata.name);
    if (state === 'running') throw new Waiting(`Job ${job.metadata.name}: ${detail}`);
    if (state === 'failed') throw permanent(`Job ${job.metadata.name} failed: ${detail}`);
    return { outcome: 'succeeded', detail: `Job ${job.metadata.name} complete` };
  };
  await step('pre-migrate', () => runJob('pre-migrate'));
  await step('apply-workloads', async () => {
    const { applied } = await target.apply(instanceId, generation, phase('workloads'));
    return {
      outcome: 'succeeded',
      detail: `applied ${applied} objects${scaledDown ? ' scaled to zero' : ''}`,
    };
  });
  await step('rollout', async () => {
    if (target.dryRun) {
      return { outcome: 'skipped', detail: 'dry-run: no workloads run, so there is no rollout to wait for' };
    }
    const rollout = await target.rollout(instanceId);
    if (!rollout.done) throw new Waiting(`rolling out: ${rollout.waiting.join('; ')}`);
    return {
      outcome: 'succeeded',
      detail: scaledDown ? 'scaled to zero' : 'every workload runs the new spec',
    };
  });
  await step('apply-route', async () => {
    const { applied } = await target.apply(instanceId, generation, phase('route'));
    return {
      outcome: 'succeeded',
      detail: `applied ${applied} objects: traffic goes to ${scaledDown ? 'the maintenance page' : 'the server'}`,
    };
  });
  await step('post-migrate', () => runJob('post-migrate'));
  await step('search-deploy', () => runJob('search-deploy'));
  if (instance.status === 'provisioning') await step('owner-account', () => runJob('owner-account'));
  await step('prune', async () => {
    const { pruned } = await target.prune(instanceId, generation, rendered);
    return { outcome: 'succeeded', detail: `pruned ${pruned} objects no longer rendered` };
  });

  const outcome = await db.$transaction(async (tx) => {
    await tx.$queryRaw`select 1 from "Instance" where id = ${instanceId}::uuid for update`;
    const now = await tx.instance.findUniqueOrThrow({ where: { id: instanceId } });
    await tx.operation.updateMany({
      where: { instanceId, status: 'running', kind: { not: 'backup' }, generation: { lte: generation } },
      data: { status: 'succeeded', finishedAt: new Date() },
    });
    if (now.generation !== generation || now.status !== instance.status) {
      // Changed while this ran: record what was applied; the change queued its own reconcile.
      await tx.instance.update({ where: { id: instanceId }, data: { observedGeneration: generation } });
      return 'superseded' as const;
    }
    const next: InstanceStatus =
      instance.status === 'provisioning' || instance.status === 'updating'
        ? spec.suspended
          ? 'suspended'
          : 'running'
        : instance.status;
    if (next === instance.status) {
      await tx.instance.update({ where: { id: instanceId }, data: { observedGeneration: generation } });
    } else {
      const statusReason =
        next === 'suspended'
          ? `suspended${spec.suspendReason ? `: ${spec.suspendReason}` : ''}`
          : target.dryRun
            ? 'provisioned in dry-run: manifests rendered and stored, nothing runs'
            : null;
      await transition(tx, instanceId, instance.status, next, {
        observedGeneration: generation,
        statusReason,
      });
    }
    const message =
      next === 'running'
        ? target.dryRun
          ? 'Provisioned in dry-run.'
          : 'The server is running.'
        : next === 'suspended'
          ? 'The server is suspended: scaled to zero, data kept.'
          : 'The server is stopped, waiting out its deletion grace period.';
    await tx.event.create({
      data: {
        instanceId,
        type: `instance.${next === 'deleting' ? 'stopped' : next}`,
        message,
        data: { dryRun: target.dryRun, generation },
      },
    });
    return next;
  });
  log.info('reconciled', { outcome, generation, dryRun: target.dryRun });
}

/**
 * Purges a deleted instance once its grace period is over: final backup, objects, database
 * and secrets, then `deleted`. Run early, or after a restore, it does nothing.
 */
export function purgeInstance(deps: ReconcilerDeps, instanceId: string): Promise<ReconcileResult> {
  return untilWaiting(() => purge(deps, instanceId));
}

async function purge(deps: ReconcilerDeps, instanceId: string): Promise<void> {
  const { db } = deps;
  const instance = await db.instance.findUnique({ where: { id: instanceId }, include: { cluster: true } });
  if (instance?.status !== 'deleting' || !instance.deleteAfter || instance.deleteAfter > new Date()) {
    deps.log.info('purge: not due', { instanceId, status: instance?.status });
    return;
  }
  const operation = await currentOperation(db, instanceId, instance.generation, 'delete');
  const step = await stepRunner(deps, instanceId, operation.id);
  const connection = instance.cluster ? await connect(deps, instance.cluster) : null;
  const target = connection?.target ?? null;

  // The final backup's record shares the operation's id, so a retried purge finds it again.
  await db.backup.upsert({
    where: { id: operation.id },
    create: { id: operation.id, instanceId, status: 'pending' },
    update: {},
  });
  await step('final-backup', () =>
    takeBackup(deps, instanceId, operation.id, instance.generation, connection),
  );
  await step('addons', () => purgeAddons(deps, instanceId));
  await step('remove-objects', async () => {
    if (!target) return { outcome: 'skipped', detail: 'never placed on a cluster' };
    const { removed } = await target.remove(instanceId);
    return { outcome: 'succeeded', detail: `removed ${removed} objects` };
  });
  await step('database', async () => {
    if (!connection?.databaseAdminUrl)
      return { outcome: 'skipped', detail: 'dry-run: no database was created' };
    const name = namespaceFor(instanceId).replaceAll('-', '_');
    await dropInstanceDatabase(connection.databaseAdminUrl, name);
    return { outcome: 'succeeded', detail: `dropped database and role ${name}` };
  });
  await step('secrets', async () => {
    const { count } = await db.secretRecord.deleteMany({ where: { instanceId } });
    return { outcome: 'succeeded', detail: `destroyed ${count} sealed secrets` };
  });

  await db.$transaction(async (tx) => {
    await transition(tx, instanceId, 'deleting', 'deleted', {
      statusReason: 'purged after the grace period',
    });
    await tx.subscription.updateMany({
      where: { instanceId, status: { not: 'cancelled' } },
      data: { status: 'cancelled', canceledAt: new Date() },
    });
    // A purged server is billed no more: its Stripe subscription ends now.
    await enqueueSubscriptionSync(tx, instanceId);
    await tx.operation.update({
      where: { id: operation.id },
      data: { status: 'succeeded', finishedAt: new Date() },
    });
    await tx.event.create({
      data: {
        instanceId,
        type: 'instance.deleted',
        message: 'Purged: workloads, data and secrets are gone.',
      },
    });
  });
  deps.log.info('instance purged', { instanceId });
}

/**
 * The organization's first owner, as the server's Owner account: the username is the local
 * part of their e-mail address made a valid Mastodon username (`owner` when nothing is left).
 */
async function ownerOf(db: Db, organizationId: string): Promise<{ username: string; email: string } | null> {
  const membership = await db.membership.findFirst({
    where: { organizationId, role: 'owner' },
    orderBy: { createdAt: 'asc' },
    include: { user: { select: { email: true } } },
  });
  if (!membership) return null;
  const email = membership.user.email;
  const local = (email.split('@')[0] ?? '').toLowerCase().replaceAll(/[^a-z0-9_]/g, '_');
  const username = local.replaceAll(/^_+|_+$/g, '').slice(0, 30) || 'owner';
  return { username, email };
}

/**
 * Takes the backup `backupId` of an instance: on a real cluster a Job dumps its database to the
 * cluster's backup bucket (render-backup.ts), waited on like a migration; on the dry-run target
 * there is no data, so the backup is recorded as skipped. The Backup row follows the outcome.
 */
async function takeBackup(
  deps: ReconcilerDeps,
  instanceId: string,
  backupId: string,
  generation: number,
  connection: Connection | null,
): Promise<StepResult> {
  const { db } = deps;
  if (!connection || connection.target.dryRun) {
    await db.backup.update({ where: { id: backupId }, data: { status: 'skipped', completedAt: new Date() } });
    return { outcome: 'skipped', detail: 'dry-run: no data exists to back up' };
  }
  if (!connection.backups) {
    throw permanent(
      'the cluster has no backup bucket: register it with settings.backups and backup credentials',
    );
  }
  const { storage, credentials } = connection.backups;
  const objects = renderBackupObjects({ instanceId, backupId, storage, credentials });
  await connection.target.apply(instanceId, generation, objects);
  const job = objects.find((object) => object.kind === 'Job');
  if (!job) throw new Error('the backup renders no Job');
  const { state, detail } = await connection.target.jobState(instanceId, job.metadata.name);
  if (state === 'running') throw new Waiting(`Job ${job.metadata.name}: ${detail}`);
  if (state === 'failed') throw permanent(`Job ${job.metadata.name} failed: ${detail}`);
  const location = backupLocation(storage, instanceId, backupId);
  await db.backup.update({
    where: { id: backupId },
    data: { status: 'completed', location, completedAt: new Date() },
  });
  return { outcome: 'succeeded', detail: `database dumped to ${location}` };
}

/** Takes the backup `backupId` of an instance, as its own operation beside the spec's. */
export async function backupInstance(
  deps: ReconcilerDeps,
  instanceId: string,
  backupId: string,
): Promise<ReconcileResult> {
  const { db } = deps;
  const backup = await db.backup.findUnique({ where: { id: backupId } });
  if (backup?.status !== 'pending' || backup.instanceId !== instanceId) return { state: 'done' };
  const instance = await db.instance.findUniqueOrThrow({
    where: { id: instanceId },
    include: { cluster: true },
  });
  const operation = await currentOperation(db, instanceId, instance.generation, 'backup');
  const step = await stepRunner(deps, instanceId, operation.id);
  const connection = instance.cluster ? await connect(deps, instance.cluster) : null;
  const waited = await untilWaiting(() =>
    step('backup', () => takeBackup(deps, instanceId, backupId, instance.generation, connection)),
  );
  if (waited.state === 'waiting') return waited;
  const taken = await db.backup.findUniqueOrThrow({ where: { id: backupId } });
  await db.$transaction(async (tx) => {
    await tx.operation.update({
      where: { id: operation.id },
      data: { status: 'succeeded', finishedAt: new Date() },
    });
    await tx.event.create({
      data:
        taken.status === 'completed'
          ? {
              instanceId,
              type: 'backup.completed',
              message: `Backup taken: ${taken.location}.`,
              data: { backupId },
            }
          : {
              instanceId,
              type: 'backup.skipped',
              message: 'Backup skipped: on the dry-run target no data exists.',
              data: { backupId },
            },
    });
  });
  return { state: 'done' };
}

/** An error that no retry can mend (a refused manifest, a missing API kind): it fails the instance at once. */
export function isPermanent(error: unknown): boolean {
  return (error as { retryable?: unknown } | null)?.retryable === false;
}

/**
 * Marks an instance `failed` with `reason` once its reconcile or purge cannot
 * succeed (a permanent error, or retries spent): its running operations fail with the
 * reason, and an Event says so. Staff retry it through the API.
 */
export async function markInstanceFailed(
  deps: Pick<ReconcilerDeps, 'db' | 'log'>,
  instanceId: string,
  reason: string,
): Promise<void> {
  await deps.db.$transaction(async (tx) => {
    await tx.$queryRaw`select 1 from "Instance" where id = ${instanceId}::uuid for update`;
    const instance = await tx.instance.findUnique({ where: { id: instanceId }, select: { status: true } });
    if (!instance || !canTransition(instance.status, 'failed')) return;
    await transition(tx, instanceId, instance.status, 'failed', { statusReason: reason });
    await tx.operation.updateMany({
      where: { instanceId, status: 'running', kind: { not: 'backup' } },
      data: { status: 'failed', error: reason, finishedAt: new Date() },
    });
    await tx.event.create({
      data: { instanceId, type: 'instance.failed', message: `Failed: ${reason}. Staff can retry it.` },
    });
  });
  deps.log.warn('instance failed', { instanceId, reason });
}

/** Marks a backup that cannot be taken as failed, with its operation; the next one may be requested. */
export async function markBackupFailed(
  deps: Pick<ReconcilerDeps, 'db' | 'log'>,
  instanceId: string,
  backupId: string,
  reason: string,
): Promise<void> {
  await deps.db.$transaction(async (tx) => {
    await tx.backup.updateMany({ where: { id: backupId, status: 'pending' }, data: { status: 'failed' } });
    await tx.operation.updateMany({
      where: { instanceId, kind: 'backup', status: 'running' },
      data: { status: 'failed', error: reason, finishedAt: new Date() },
    });
    await tx.event.create({
      data: { instanceId, type: 'backup.failed', message: `Backup failed: ${reason}.`, data: { backupId } },
    });
  });
  deps.log.warn('backup failed', { instanceId, backupId, reason });
}

/**
 * Picks a cluster with room left in `region` (any region when undefined), fullest first so
 * clusters fill before new ones are used. Once any real cluster is registered, the dry-run
 * cluster is never chosen: a paying server must not end up rendered into a store because the
 * real clusters are full. With no room, placement fails and the job retries with backoff, so a
 * cluster added or freed meanwhile is used; the instance fails once the attempts run out.
 */
async function placeInstance(db: Db, instanceId: string, region: string | undefined) {
  return db.$transaction(async (tx) => {
    // One placement at a time, so two never both take a cluster's last place.
    await tx.$executeRaw`lock table "Cluster" in share row exclusive mode`;
    const clusters = await tx.cluster.findMany({
      include: { _count: { select: { instances: { where: { status: { not: 'deleted' } } } } } },
      orderBy: { name: 'asc' },
    });
    const real = clusters.some((cluster) => cluster.target === 'kubernetes');
    const withRoom = clusters
      .filter((cluster) => !real || cluster.target === 'kubernetes')
      .filter((cluster) => region === undefined || cluster.region === region)
      .filter((cluster) => cluster._count.instances < cluster.capacity)
      .sort((a, b) => b._count.instances - a._count.instances);
    const cluster = withRoom[0];
    if (!cluster) {
      throw new Error(
        `no cluster${region === undefined ? '' : ` in region ${region}`} has room for another instance`,
      );
    }
    await tx.instance.update({ where: { id: instanceId }, data: { clusterId: cluster.id } });
    return cluster;
  });
}
