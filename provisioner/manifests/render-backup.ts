import { type KubeObject, namespaceFor } from './render-instance.ts';

/** Where a cluster's backups go: an S3-compatible bucket (cluster settings `backups`). */
export interface BackupStorage {
  bucket: string;
  /** e.g. `https://s3.eu-central-1.amazonaws.com`, or an S3-compatible provider's endpoint. */
  endpoint: string;
  region: string;
  /** Key prefix inside the bucket. */
  prefix: string;
}

const POSTGRES_IMAGE = 'docker.io/library/postgres:17-alpine';
const AWS_CLI_IMAGE = 'docker.io/amazon/aws-cli:2.22.35';
const CREDENTIALS_SECRET = 'backup-credentials';
const DUMP_DIR = '/backup';
// Same user as Mastodon's pods: PodSecurity "restricted" wants non-root, and the dump's
// emptyDir is group-writable to it.
const UID = 991;

/** The object key of a backup in its bucket. */
export function backupKey(storage: BackupStorage, instanceId: string, backupId: string): string {
  return `${storage.prefix.replace(/\/+$/, '')}/${instanceId}/${backupId}.dump`;
}

/** The backup's location as shown to people: `s3://bucket/key`. */
export function backupLocation(storage: BackupStorage, instanceId: string, backupId: string): string {
  return `s3://${storage.bucket}/${backupKey(storage, instanceId, backupId)}`;
}

const fromConfig = (name: string, key: string) => ({
  name,
  valueFrom: { configMapKeyRef: { name: 'mastodon-env', key } },
});
const fromSecret = (name: string, secret: string, key: string) => ({
  name,
  valueFrom: { secretKeyRef: { name: secret, key } },
});

const restricted = {
  allowPrivilegeEscalation: false,
  capabilities: { drop: ['ALL'] },
  runAsNonRoot: true,
  readOnlyRootFilesystem: true,
};

/**
 * One backup of a server's database, run in its namespace: `pg_dump` in custom format (the one
 * `pg_restore` reads selectively) into a memory-less emptyDir, then the AWS CLI copies it to the
 * cluster's backup bucket. The database credentials come from the server's own ConfigMap and
 * Secret, the bucket's from a Secret applied beside the Job. The pod is labelled as Mastodon's,
 * so the namespace's NetworkPolicy lets it reach the database and HTTPS, and nothing else.
 */
export function renderBackupObjects(input: {
  instanceId: string;
  backupId: string;
  storage: BackupStorage;
  credentials: { accessKeyId: string; secretAccessKey: string };
}): KubeObject[] {
  const namespace = namespaceFor(input.instanceId);
  const labels = {
    'app.kubernetes.io/part-of': 'woolly',
    'app.kubernetes.io/instance': namespace,
    'woolly.dev/instance-id': input.instanceId,
    'app.kubernetes.io/component': 'backup',
  };
  const dump = `${DUMP_DIR}/db.dump`;
  return [
    {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: CREDENTIALS_SECRET, namespace, labels },
      type: 'Opaque',
      stringData: {
        AWS_ACCESS_KEY_ID: input.credentials.accessKeyId,
        AWS_SECRET_ACCESS_KEY: input.credentials.secretAccessKey,
      },
    },
    {
      apiVersion: 'batch/v1',
      kind: 'Job',
      metadata: { name: `backup-${input.backupId.slice(0, 8)}`, namespace, labels },
      spec: {
        backoffLimit: 2,
        ttlSecondsAfterFinished: 86_400,
        template: {
          metadata: { labels: { ...labels, 'app.kubernetes.io/name': 'mastodon' } },
          spec: {
            automountServiceAccountToken: false,
            enableServiceLinks: false,
            restartPolicy: 'Never',
            securityContext: {
              runAsNonRoot: true,
              runAsUser: UID,
              runAsGroup: UID,
              fsGroup: UID,
              seccompProfile: { type: 'RuntimeDefault' },
            },
            initContainers: [
              {
                name: 'pg-dump',
                image: POSTGRES_IMAGE,
                args: ['pg_dump', '--format=custom', '--no-owner', `--file=${dump}`],
                env: [
                  fromConfig('PGHOST', 'DB_HOST'),
                  fromConfig('PGPORT', 'DB_PORT'),
                  fromConfig('PGDATABASE', 'DB_NAME'),
                  fromConfig('PGUSER', 'DB_USER'),
                  fromSecret('PGPASSWORD', 'mastodon-secrets', 'DB_PASS'),
                ],
                resources: {
                  requests: { cpu: '100m', memory: '128Mi' },
                  limits: { cpu: '500m', memory: '512Mi' },
                },
                securityContext: restricted,
                volumeMounts: [{ name: 'dump', mountPath: DUMP_DIR }],
              },
            ],
            containers: [
              {
                name: 'upload',
                image: AWS_CLI_IMAGE,
                args: [
                  's3',
                  'cp',
                  dump,
                  `s3://${input.storage.bucket}/${backupKey(input.storage, input.instanceId, input.backupId)}`,
                  '--endpoint-url',
                  input.storage.endpoint,
                  '--only-show-errors',
                ],
                env: [
                  { name: 'AWS_REGION', value: input.storage.region },
                  // The CLI writes its cache under HOME; the root filesystem is read-only.
                  { name: 'HOME', value: '/tmp' },
                  fromSecret('AWS_ACCESS_KEY_ID', CREDENTIALS_SECRET, 'AWS_ACCESS_KEY_ID'),
                  fromSecret('AWS_SECRET_ACCESS_KEY', CREDENTIALS_SECRET, 'AWS_SECRET_ACCESS_KEY'),
                ],
                resources: {
                  requests: { cpu: '50m', memory: '128Mi' },
                  limits: { cpu: '500m', memory: '256Mi' },
                },
                securityContext: restricted,
                volumeMounts: [
                  { name: 'dump', mountPath: DUMP_DIR, readOnly: true },
                  { name: 'tmp', mountPath: '/tmp' },
                ],
              },
            ],
            volumes: [
              { name: 'dump', emptyDir: {} },
              { name: 'tmp', emptyDir: { medium: 'Memory', sizeLimit: '16Mi' } },
            ],
          },
        },
      },
    },
  ];
}
