import { parse as parseYaml } from 'yaml';
import type { SecretBox } from '../core/crypto.ts';
import { type Db, isUniqueViolation } from '../core/db.ts';
import { clusterSettingsSchema } from './cluster-settings.ts';

/**
 * The cluster registry: Kubernetes clusters Woolly places servers on, with their region,
 * capacity and shared services. The kubeconfig and the database admin URL are sealed in
 * SecretRecord (instance-less rows) and referenced from the Cluster row.
 */

/** A cluster's name: a DNS label (it also names its platform stack). */
export const CLUSTER_NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

export interface ClusterRegistration {
  name: string;
  region: string;
  capacity: number;
  kubeconfig: string;
  databaseAdminUrl: string;
  /** Shared services (cluster-settings.ts); defaults where left out. */
  settings?: unknown;
  /** Access key of the backup bucket named in `settings.backups`. */
  backupCredentials?: BackupCredentials;
}

export interface BackupCredentials {
  accessKeyId: string;
  secretAccessKey: string;
}

/** A refusal that names what to fix; the CLI prints it as its one line. */
export class ClusterRegistrationError extends Error {}

const secretContext = (clusterId: string, name: string) => `cluster:${clusterId}:${name}`;

/** Checks that `text` is a kubeconfig with a current context that names a cluster and a user. */
function checkKubeconfig(text: string): void {
  let config: {
    'current-context'?: string;
    contexts?: { name?: string; context?: { cluster?: string; user?: string } }[];
    clusters?: { name?: string; cluster?: { server?: string } }[];
  };
  try {
    config = parseYaml(text) ?? {};
  } catch {
    throw new ClusterRegistrationError('the kubeconfig is not valid YAML');
  }
  const current = config.contexts?.find((context) => context.name === config['current-context']);
  if (!current?.context?.cluster || !current.context.user) {
    throw new ClusterRegistrationError('the kubeconfig has no current-context naming a cluster and a user');
  }
  const server = config.clusters?.find((cluster) => cluster.name === current.context?.cluster)?.cluster
    ?.server;
  if (!server?.startsWith('https://')) {
    throw new ClusterRegistrationError('the kubeconfig’s current cluster has no https:// server');
  }
}

/** Checks `settings` and that backups have both a bucket and an access key, or neither. */
function checkSettings(value: unknown, hasBackupCredentials: boolean) {
  const settings = clusterSettingsSchema.safeParse(value ?? {});
  if (!settings.success) {
    throw new ClusterRegistrationError(
      `cluster settings are invalid: ${settings.error.issues.map((issue) => `${issue.path.join('.')} ${issue.message}`).join('; ')}`,
    );
  }
  if (Boolean(settings.data.backups) !== hasBackupCredentials) {
    throw new ClusterRegistrationError(
      'backups need both a bucket (settings.backups) and its access key (backup credentials), or neither',
    );
  }
  return settings.data;
}

/**
 * Registers a Kubernetes cluster; its secrets are sealed before they are stored. A cluster of
 * the same name is refused, unless `ifExists` is `update` (`woolly cluster bootstrap` run
 * again): then its region, capacity and secrets are replaced, the settings given are laid over
 * the stored ones, and its backup access key is kept unless a new one is given.
 */
export async function registerCluster(
  db: Db,
  box: SecretBox,
  input: ClusterRegistration,
  options: { ifExists?: 'refuse' | 'update' } = {},
): Promise<{ id: string; created: boolean }> {
  if (!CLUSTER_NAME.test(input.name)) {
    throw new ClusterRegistrationError(`cluster name "${input.name}" must be a DNS label (a-z, 0-9, -)`);
  }
  if (!input.region.trim()) throw new ClusterRegistrationError('a region is required');
  if (!Number.isInteger(input.capacity) || input.capacity < 1) {
    throw new ClusterRegistrationError(`capacity must be a whole number of servers, at least 1`);
  }
  checkKubeconfig(input.kubeconfig);
  if (!/^postgres(ql)?:\/\//.test(input.databaseAdminUrl)) {
    throw new ClusterRegistrationError('the database admin URL must be a postgres:// URL');
  }
  const update = options.ifExists === 'update';
  // A new cluster's settings are checked before the transaction; an update's once merged.
  if (!update) checkSettings(input.settings, Boolean(input.backupCredentials));
  const filled = (value: unknown) => typeof value === 'string' && value.trim() !== '';
  if (
    input.backupCredentials &&
    !(filled(input.backupCredentials.accessKeyId) && filled(input.backupCredentials.secretAccessKey))
  ) {
    throw new ClusterRegistrationError('backup credentials need an accessKeyId and a secretAccessKey');
  }
  try {
    return await db.$transaction(async (tx) => {
      const existing = update ? await tx.cluster.findUnique({ where: { name: input.name } }) : null;
      if (existing && existing.target !== 'kubernetes') {
        throw new ClusterRegistrationError(`cluster "${input.name}" exists as a ${existing.target} cluster`);
      }
      const settings = existing
        ? checkSettings(
            { ...(existing.settings as object), ...(input.settings as object | undefined) },
            Boolean(input.backupCredentials ?? existing.backupCredentialsSecretId),
          )
        : checkSettings(input.settings, Boolean(input.backupCredentials));
      const fields = { region: input.region.trim(), capacity: input.capacity, settings };
      const cluster = existing
        ? await tx.cluster.update({ where: { id: existing.id }, data: fields })
        : await tx.cluster.create({ data: { name: input.name, target: 'kubernetes', ...fields } });
      // An update re-seals into the same records, so the Cluster row keeps pointing at them.
      const seal = (name: string, value: string, secretId: string | null = null) => {
        const sealed = box.seal(value, secretContext(cluster.id, name));
        return secretId
          ? tx.secretRecord.update({ where: { id: secretId }, data: sealed })
          : tx.secretRecord.create({ data: { name: `cluster:${name}`, ...sealed } });
      };
      const kubeconfig = await seal('kubeconfig', input.kubeconfig, existing?.kubeconfigSecretId);
      const databaseAdmin = await seal(
        'database-admin-url',
        input.databaseAdminUrl,
        existing?.databaseAdminSecretId,
      );
      const backupCredentials = input.backupCredentials
        ? await seal(
            'backup-credentials',
            JSON.stringify(input.backupCredentials),
            existing?.backupCredentialsSecretId,
          )
        : null;
      await tx.cluster.update({
        where: { id: cluster.id },
        data: {
          kubeconfigSecretId: kubeconfig.id,
          databaseAdminSecretId: databaseAdmin.id,
          backupCredentialsSecretId: backupCredentials?.id ?? existing?.backupCredentialsSecretId ?? null,
        },
      });
      return { id: cluster.id, created: !existing };
    });
  } catch (error) {
    if (isUniqueViolation(error))
      throw new ClusterRegistrationError(`a cluster named "${input.name}" exists`);
    throw error;
  }
}

/** The opened secrets of a registered cluster, for its target and database steps. */
export async function openClusterSecrets(
  db: Db,
  box: SecretBox,
  cluster: {
    id: string;
    kubeconfigSecretId: string | null;
    databaseAdminSecretId: string | null;
    backupCredentialsSecretId: string | null;
  },
): Promise<{ kubeconfig: string; databaseAdminUrl: string; backupCredentials: BackupCredentials | null }> {
  const open = async (secretId: string | null, name: string) => {
    if (!secretId) throw new Error(`cluster ${cluster.id} has no ${name}`);
    const record = await db.secretRecord.findUniqueOrThrow({ where: { id: secretId } });
    return box.open(record, secretContext(cluster.id, name));
  };
  return {
    kubeconfig: await open(cluster.kubeconfigSecretId, 'kubeconfig'),
    databaseAdminUrl: await open(cluster.databaseAdminSecretId, 'database-admin-url'),
    backupCredentials: await openBackupCredentials(db, box, cluster),
  };
}

/**
 * The opened access key of a cluster's backup bucket, or null when it has none; only this
 * secret, for callers (backup downloads) that need nothing else of the cluster.
 */
export async function openBackupCredentials(
  db: Db,
  box: SecretBox,
  cluster: { id: string; backupCredentialsSecretId: string | null },
): Promise<BackupCredentials | null> {
  if (!cluster.backupCredentialsSecretId) return null;
  const record = await db.secretRecord.findUniqueOrThrow({
    where: { id: cluster.backupCredentialsSecretId },
  });
  return JSON.parse(box.open(record, secretContext(cluster.id, 'backup-credentials'))) as BackupCredentials;
}

/** Every cluster with the servers on it (deleted ones do not count against capacity). */
export async function listClusters(db: Db) {
  const clusters = await db.cluster.findMany({
    include: { _count: { select: { instances: { where: { status: { not: 'deleted' } } } } } },
    orderBy: { name: 'asc' },
  });
  return clusters.map((cluster) => ({
    name: cluster.name,
    target: cluster.target,
    region: cluster.region,
    capacity: cluster.capacity,
    servers: cluster._count.instances,
  }));
}
