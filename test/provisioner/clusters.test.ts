import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { makeMasterKey, makeSecretBox } from '../../core/crypto.ts';
import {
  ClusterRegistrationError,
  listClusters,
  openClusterSecrets,
  registerCluster,
} from '../../provisioner/clusters.ts';
import { makeTestDatabase, type TestDatabase } from '../support/db.ts';

let database: TestDatabase;
const box = makeSecretBox([makeMasterKey('clusters')]);

before(async () => {
  database = await makeTestDatabase();
});
after(async () => {
  await database.release();
});

const KUBECONFIG = `apiVersion: v1
kind: Config
current-context: woolly
clusters:
  - name: fra1
    cluster: { server: "https://10.0.0.1:6443", certificate-authority-data: Q0EK }
users:
  - name: woolly-provisioner
    user: { token: "kube-token-that-must-stay-sealed" }
contexts:
  - name: woolly
    context: { cluster: fra1, user: woolly-provisioner }
`;
const ADMIN_URL = 'postgresql://woolly_admin:db-password-that-must-stay-sealed@10.0.0.5:5432/postgres';
const input = (overrides: Record<string, unknown> = {}) => ({
  name: 'fra1',
  region: 'eu-central',
  capacity: 40,
  kubeconfig: KUBECONFIG,
  databaseAdminUrl: ADMIN_URL,
  settings: { databaseHost: 'pg.internal', ingressClassName: 'traefik' },
  ...overrides,
});

test('a registered cluster keeps its secrets sealed, and opens them for the provisioner only', async () => {
  const { id } = await registerCluster(database.db, box, input());
  const cluster = await database.db.cluster.findUniqueOrThrow({ where: { id } });
  assert.equal(cluster.target, 'kubernetes');
  assert.deepEqual(
    [cluster.region, cluster.capacity, (cluster.settings as { ingressClassName: string }).ingressClassName],
    ['eu-central', 40, 'traefik'],
  );
  const stored = JSON.stringify(await database.db.secretRecord.findMany({ where: { instanceId: null } }));
  assert.ok(
    !stored.includes('kube-token-that-must-stay-sealed') &&
      !stored.includes('db-password-that-must-stay-sealed'),
  );
  assert.deepEqual(await openClusterSecrets(database.db, box, cluster), {
    kubeconfig: KUBECONFIG,
    databaseAdminUrl: ADMIN_URL,
    backupCredentials: null,
  });
  // A sealed value moved to another cluster's row does not open there.
  await assert.rejects(
    openClusterSecrets(database.db, box, { ...cluster, id: '00000000-0000-4000-8000-000000000000' }),
  );
  assert.deepEqual(
    (await listClusters(database.db)).find((row) => row.name === 'fra1'),
    { name: 'fra1', target: 'kubernetes', region: 'eu-central', capacity: 40, servers: 0 },
  );
});

const BACKUPS = { bucket: 'woolly-backups', endpoint: 'https://s3.example.net', region: 'eu-central-1' };
const CREDENTIALS = { accessKeyId: 'AKIAEXAMPLE', secretAccessKey: 'must-stay-sealed-too' };

test('a cluster with a backup bucket keeps its access key sealed and opens it for the provisioner', async () => {
  const { id } = await registerCluster(
    database.db,
    box,
    input({ name: 'with-backups', settings: { backups: BACKUPS }, backupCredentials: CREDENTIALS }),
  );
  const cluster = await database.db.cluster.findUniqueOrThrow({ where: { id } });
  const sealed = JSON.stringify(await database.db.secretRecord.findMany());
  assert.ok(!sealed.includes(CREDENTIALS.secretAccessKey), 'not stored in clear');
  assert.deepEqual((await openClusterSecrets(database.db, box, cluster)).backupCredentials, CREDENTIALS);
  assert.deepEqual((cluster.settings as { backups: unknown }).backups, {
    ...BACKUPS,
    prefix: 'woolly-backups',
  });
});

test('bad registrations are refused with what to fix, and write nothing', async () => {
  const before = [await database.db.cluster.count(), await database.db.secretRecord.count()];
  const refusals: [Record<string, unknown>, RegExp][] = [
    [{ name: 'FRA_1' }, /must be a DNS label/],
    [{ name: 'fra1' }, /a cluster named "fra1" exists/],
    [{ name: 'x', capacity: 0 }, /capacity must be a whole number/],
    [{ name: 'x', region: ' ' }, /a region is required/],
    [{ name: 'x', kubeconfig: 'clusters: [' }, /not valid YAML/],
    [{ name: 'x', kubeconfig: 'current-context: nowhere' }, /no current-context/],
    [{ name: 'x', kubeconfig: KUBECONFIG.replace('https://', 'http://') }, /no https:\/\/ server/],
    [{ name: 'x', databaseAdminUrl: 'mysql://root@db' }, /postgres:\/\/ URL/],
    [{ name: 'x', settings: { databasePort: 'five' } }, /settings are invalid: databasePort/],
    [{ name: 'x', settings: { backups: BACKUPS } }, /both a bucket .* and its access key/],
    [
      { name: 'x', backupCredentials: { accessKeyId: 'AKIA', secretAccessKey: 'must-stay-sealed' } },
      /both a bucket/,
    ],
    [
      { name: 'x', settings: { backups: BACKUPS }, backupCredentials: { accessKeyId: 'AKIA' } },
      /need an accessKeyId and a secretAccessKey/,
    ],
    [
      {
        name: 'x',
        settings: { backups: { ...BACKUPS, endpoint: 'http://minio:9000' } },
        backupCredentials: CREDENTIALS,
      },
      /settings are invalid: backups\.endpoint/,
    ],
  ];
  for (const [overrides, message] of refusals) {
    await assert.rejects(registerCluster(database.db, box, input(overrides)), (error: Error) => {
      assert.ok(error instanceof ClusterRegistrationError, String(error));
      assert.match(error.message, message);
      assert.ok(!error.message.includes('must-stay-sealed'));
      return true;
    });
  }
  assert.deepEqual([await database.db.cluster.count(), await database.db.secretRecord.count()], before);
});
