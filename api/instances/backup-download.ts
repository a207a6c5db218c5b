/**
 * Downloading a backup: the API never streams the dump itself. It answers with a link to the
 * object in the cluster's backup bucket, presigned (SigV4 in the query string) with the
 * bucket's access key for a few minutes, so the bytes go straight from the bucket to the
 * caller and the link carries a signature, never the key.
 */
import { makeSecretBox } from '../../core/crypto.ts';
import { AppError } from '../../core/errors.ts';
import { presignS3Get, s3ObjectUrl } from '../../core/s3-signing.ts';
import { parseClusterSettings } from '../../provisioner/cluster-settings.ts';
import { openBackupCredentials } from '../../provisioner/clusters.ts';
import { audit } from '../audit.ts';
import type { ApiDeps, RequestContext } from '../context.ts';
import { assertInstanceRole, SERVER_ROLES } from '../policy.ts';

/** How long a download link works: long enough to start the download, short enough not to share. */
export const BACKUP_LINK_SECONDS = 300;

/** Why a backup of each unfinished status has nothing to download. */
const NOT_DOWNLOADABLE: Record<string, string> = {
  pending: 'is still being taken; download it once it has completed',
  failed: 'failed, so there is nothing to download; request a new one',
  skipped: 'was skipped: on the dry-run target no data exists, so there is nothing to download',
};

/** `s3://bucket/key` (render-backup.ts `backupLocation`) as its bucket and key. */
function parseLocation(location: string | null): { bucket: string; key: string } | null {
  const match = /^s3:\/\/([^/]+)\/(.+)$/.exec(location ?? '');
  return match?.[1] && match[2] ? { bucket: match[1], key: match[2] } : null;
}

/**
 * A presigned GET of backup `backupId` of an instance, valid for `BACKUP_LINK_SECONDS`, for
 * those who may request backups (owners, admins, staff); the download is audited. A stranger
 * gets 404, a viewer 403; a backup that is not completed, or whose bucket is not the cluster's
 * backup bucket, 409.
 */
export async function makeBackupDownloadUrl(
  deps: Pick<ApiDeps, 'db' | 'config' | 'backupEndpointOf'>,
  ctx: RequestContext,
  instanceId: string,
  backupId: string,
  now: Date = new Date(),
): Promise<URL> {
  const instance = await deps.db.instance.findUnique({
    where: { id: instanceId },
    select: {
      id: true,
      organizationId: true,
      cluster: { select: { id: true, settings: true, backupCredentialsSecretId: true } },
    },
  });
  if (!instance) throw new AppError('not_found', `No instance ${instanceId}.`);
  await assertInstanceRole(deps.db, ctx.actor, instance, SERVER_ROLES);
  const backup = await deps.db.backup.findFirst({ where: { id: backupId, instanceId } });
  if (!backup) throw new AppError('not_found', `No backup ${backupId} of instance ${instanceId}.`);
  if (backup.status !== 'completed') {
    throw new AppError(
      'conflict',
      `Backup ${backupId} ${NOT_DOWNLOADABLE[backup.status] ?? `is ${backup.status}, not completed`}.`,
    );
  }
  const cluster = instance.cluster;
  const storage = cluster ? parseClusterSettings(cluster.settings).backups : undefined;
  if (!cluster || !storage || !cluster.backupCredentialsSecretId) {
    throw new AppError(
      'conflict',
      `The server's cluster has no backup bucket to download backup ${backupId} from.`,
    );
  }
  const stored = parseLocation(backup.location);
  if (stored?.bucket !== storage.bucket) {
    throw new AppError(
      'conflict',
      `Backup ${backupId} is not in the cluster's backup bucket (${storage.bucket}), so it cannot be downloaded here.`,
    );
  }
  // Without a master key no sealed secret opens; bin/woolly.ts always passes the keys in force.
  if (deps.config.masterKeys.length === 0) throw new Error('no master key to open the backup credentials');
  const credentials = await openBackupCredentials(deps.db, makeSecretBox(deps.config.masterKeys), cluster);
  if (!credentials) throw new Error(`cluster ${cluster.id} lost its backup credentials`);
  const endpoint = deps.backupEndpointOf?.(storage) ?? storage.endpoint;
  const url = presignS3Get(
    s3ObjectUrl(endpoint, storage.bucket, stored.key),
    { region: storage.region, ...credentials },
    now,
    BACKUP_LINK_SECONDS,
  );
  await audit(deps.db, ctx, {
    action: 'backup.download',
    targetType: 'instance',
    targetId: instanceId,
    organizationId: instance.organizationId,
    data: { backupId },
  });
  return url;
}
