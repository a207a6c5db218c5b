/**
 * Downloading a backup against a real PostgreSQL and a real S3 server, gofakes3: the API
 * answers 302 with a SigV4 presigned GET of the backup object in the cluster's backup bucket,
 * opened with the cluster's sealed access key, and a plain fetch of that link gets the bytes.
 *
 * gofakes3 checks no signature (neither a tampered one nor an expired one is refused there;
 * the first test shows it), so the presigner is also checked against AWS's published
 * query-string example, and the link the API gives against the signature of the cluster's
 * own key.
 */
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { makeMasterKey, makeSecretBox } from '../../core/crypto.ts';
import { presignS3Get } from '../../core/s3-signing.ts';
import { registerCluster } from '../../provisioner/clusters.ts';
import { type BackupStorage, backupKey, backupLocation } from '../../provisioner/manifests/render-backup.ts';
import { call, startTestApp, type TestApp } from '../support/app.ts';
import { makeTestDatabase, type TestDatabase } from '../support/db.ts';
import { createOrganization, createUserWithToken } from '../support/factories.ts';
import { type S3Server, s3ServerSkipReason, startS3Server } from '../support/s3-server.ts';

const KUBECONFIG = `apiVersion: v1
kind: Config
current-context: woolly
clusters:
  - name: fra1
    cluster: { server: "https://10.0.0.1:6443" }
users:
  - name: woolly-provisioner
    user: { token: "kube-token" }
contexts:
  - name: woolly
    context: { cluster: fra1, user: woolly-provisioner }
`;
const CREDENTIALS = {
  accessKeyId: 'AKIABACKUPSEXAMPLE',
  secretAccessKey: 'backup-secret-that-must-never-leave-the-box',
};

describe('AWS SigV4 query-string signing (presignS3Get)', () => {
  it("presigns AWS's own example: GET /test.txt, 2013-05-24, expiring in 86400 s", () => {
    const url = presignS3Get(
      new URL('https://examplebucket.s3.amazonaws.com/test.txt'),
      {
        region: 'us-east-1',
        accessKeyId: 'AKIAIOSFODNN7EXAMPLE',
        secretAccessKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
      },
      new Date('2013-05-24T00:00:00Z'),
      86_400,
    );
    assert.equal(
      url.href,
      'https://examplebucket.s3.amazonaws.com/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256' +
        '&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request' +
        '&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host' +
        '&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404',
    );
  });
});

describe('GET /v1/instances/{id}/backups/{backupId}/download (PostgreSQL, gofakes3)', {
  skip: s3ServerSkipReason(),
}, () => {
  let database: TestDatabase;
  let s3: S3Server;
  let app: TestApp;
  let storage: BackupStorage;
  let planId: string;
  let organizationId: string;
  let foreignOrganizationId: string;
  let bucketClusterId: string;
  let bareClusterId: string;
  let dryRunClusterId: string;
  const tokens = { owner: '', admin: '', viewer: '', billing: '', outsider: '', staff: '' };

  before(async () => {
    const masterKey = makeMasterKey('test');
    const box = makeSecretBox([masterKey]);
    [database, s3] = await Promise.all([makeTestDatabase(), startS3Server('woolly-backups')]);
    // The cluster's bucket is on an https endpoint, as the settings require; download links
    // are pointed at gofakes3 instead, which serves the same path-style bucket over HTTP.
    app = await startTestApp(
      database,
      { WOOLLY_MASTER_KEYS: `${masterKey.id}:${masterKey.key.toString('base64')}` },
      { backupEndpointOf: () => s3.url },
    );
    storage = {
      bucket: s3.bucket,
      endpoint: 'https://s3.eu-central-1.example.test',
      region: 'eu-central-1',
      prefix: 'woolly-backups',
    };
    const cluster = { region: 'eu-central', capacity: 10, kubeconfig: KUBECONFIG };
    const adminUrl = 'postgresql://admin:pw@10.0.0.5:5432/postgres';
    bucketClusterId = (
      await registerCluster(database.db, box, {
        ...cluster,
        name: 'with-bucket',
        databaseAdminUrl: adminUrl,
        settings: { backups: storage },
        backupCredentials: CREDENTIALS,
      })
    ).id;
    bareClusterId = (
      await registerCluster(database.db, box, { ...cluster, name: 'no-bucket', databaseAdminUrl: adminUrl })
    ).id;
    dryRunClusterId = (
      await database.db.cluster.create({
        data: { name: 'dry-run-backups', target: 'dry_run', region: 'local', capacity: 10 },
      })
    ).id;
    planId = (await database.db.plan.findUniqueOrThrow({ where: { code: 'starter' } })).id;
    const owner = await createUserWithToken(database.db);
    tokens.owner = owner.token;
    organizationId = await createOrganization(database.db, owner.userId);
    for (const role of ['admin', 'viewer', 'billing'] as const) {
      const user = await createUserWithToken(database.db);
      await database.db.membership.create({ data: { organizationId, userId: user.userId, role } });
      tokens[role] = user.token;
    }
    const outsider = await createUserWithToken(database.db);
    tokens.outsider = outsider.token;
    foreignOrganizationId = await createOrganization(database.db, outsider.userId);
    tokens.staff = (await createUserWithToken(database.db, { staffRole: 'ops' })).token;
  });
  after(async () => {
    await app?.release();
    await Promise.all([database?.release(), s3?.release()]);
  });

  /** A running server of `organization` on `clusterId`. */
  const makeInstance = async (clusterId: string, organization = organizationId) =>
    (
      await database.db.instance.create({
        data: {
          organizationId: organization,
          planId,
          clusterId,
          domain: `backup-${randomUUID().slice(0, 8)}.woolly.test`,
          mastodonVersion: 'v4.5.11',
          status: 'running',
          spec: {},
        },
      })
    ).id;
  /** A backup of `instanceId` in `status`, at its place in the bucket as the backup Job puts it. */
  const makeBackup = async (instanceId: string, status: 'completed' | 'pending' | 'failed' | 'skipped') => {
    const id = randomUUID();
    await database.db.backup.create({
      data: {
        id,
        instanceId,
        status,
        location: status === 'completed' ? backupLocation(storage, instanceId, id) : null,
        completedAt: status === 'pending' ? null : new Date(),
      },
    });
    return id;
  };
  const download = (instanceId: string, backupId: string, token: string) =>
    call(`${app.url}/v1/instances/${instanceId}/backups/${backupId}/download`, { token, redirect: 'manual' });
  const downloadsAudited = (backupId: string) =>
    database.db.auditLog.count({
      where: { action: 'backup.download', data: { path: ['backupId'], equals: backupId } },
    });

  it('owners, admins and staff get a 302 to a 5-minute presigned GET; a plain fetch of it gets the bytes (gofakes3 checks no signature: a tampered link is served too)', async () => {
    const instanceId = await makeInstance(bucketClusterId);
    const backupId = await makeBackup(instanceId, 'completed');
    const dump = randomBytes(200_000);
    // gofakes3 checks no signature, so the object is put unsigned, where the backup Job puts it.
    await s3.put(backupKey(storage, instanceId, backupId), dump);

    for (const caller of ['owner', 'admin', 'staff'] as const) {
      const asked = new Date();
      const response = await download(instanceId, backupId, tokens[caller]);
      assert.equal(response.status, 302, `${caller}: ${JSON.stringify(response.body)}`);
      assert.equal(response.headers.get('cache-control'), 'no-store');
      const link = new URL(response.headers.get('location') ?? '');
      assert.equal(
        `${link.origin}${link.pathname}`,
        `${s3.url}/${s3.bucket}/${backupKey(storage, instanceId, backupId)}`,
      );
      const query = Object.fromEntries(link.searchParams);
      const amzDate = query['X-Amz-Date'] ?? '';
      assert.deepEqual(Object.keys(query).sort(), [
        'X-Amz-Algorithm',
        'X-Amz-Credential',
        'X-Amz-Date',
        'X-Amz-Expires',
        'X-Amz-Signature',
        'X-Amz-SignedHeaders',
      ]);
      assert.equal(query['X-Amz-Algorithm'], 'AWS4-HMAC-SHA256');
      assert.equal(
        query['X-Amz-Credential'],
        `${CREDENTIALS.accessKeyId}/${amzDate.slice(0, 8)}/eu-central-1/s3/aws4_request`,
      );
      assert.equal(query['X-Amz-Expires'], '300');
      assert.equal(query['X-Amz-SignedHeaders'], 'host');
      const signedAt = new Date(
        amzDate.replace(/^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/, '$1-$2-$3T$4:$5:$6Z'),
      );
      assert.ok(Math.abs(signedAt.getTime() - asked.getTime()) < 5_000, `signed now, not at ${amzDate}`);
      // The signature is the cluster's key's, for this object, at that time.
      const unsigned = new URL(link.href);
      unsigned.search = '';
      const expected = presignS3Get(unsigned, { region: storage.region, ...CREDENTIALS }, signedAt, 300);
      assert.equal(query['X-Amz-Signature'], expected.searchParams.get('X-Amz-Signature'));
      assert.ok(!link.href.includes(CREDENTIALS.secretAccessKey), 'the link carries no secret');

      const fetched = await fetch(link);
      assert.equal(fetched.status, 200);
      assert.deepEqual(Buffer.from(await fetched.arrayBuffer()), dump, `${caller}: the bytes of the backup`);
    }
    assert.equal(await downloadsAudited(backupId), 3, 'each download is audited as backup.download');
    assert.ok(!app.logs().includes(CREDENTIALS.secretAccessKey), 'the secret never reaches a log line');

    // gofakes3 checks no signature: a tampered link is served as well. A real S3 refuses it
    // (SignatureDoesNotMatch), which the fixed AWS example above stands in for.
    const response = await download(instanceId, backupId, tokens.owner);
    const tampered = new URL(response.headers.get('location') ?? '');
    tampered.searchParams.set('X-Amz-Signature', '0'.repeat(64));
    assert.equal(
      (await fetch(tampered)).status,
      200,
      'gofakes3 began checking signatures: assert refusal here',
    );
  });

  it('a backup that is not completed answers 409: skipped on the dry-run target, pending, failed', async () => {
    const dryRun = await makeInstance(dryRunClusterId);
    const skipped = await makeBackup(dryRun, 'skipped');
    const response = await download(dryRun, skipped, tokens.owner);
    assert.equal(response.status, 409);
    assert.match(response.body.detail, /skipped: on the dry-run target no data exists/);

    const instanceId = await makeInstance(bucketClusterId);
    for (const [status, detail] of [
      ['pending', /still being taken/],
      ['failed', /failed, so there is nothing to download/],
    ] as const) {
      const backupId = await makeBackup(instanceId, status);
      const refused = await download(instanceId, backupId, tokens.owner);
      assert.equal(refused.status, 409, status);
      assert.match(refused.body.detail, detail);
      assert.equal(await downloadsAudited(backupId), 0);
    }
    assert.equal(await downloadsAudited(skipped), 0, 'a refused download is not audited');
  });

  it('a completed backup on a cluster with no backup bucket answers 409', async () => {
    const instanceId = await makeInstance(bareClusterId);
    const backupId = await makeBackup(instanceId, 'completed');
    const response = await download(instanceId, backupId, tokens.owner);
    assert.equal(response.status, 409);
    assert.match(response.body.detail, /no backup bucket/);
  });

  it('a viewer or a billing member cannot download a backup of their own organization (403)', async () => {
    const instanceId = await makeInstance(bucketClusterId);
    const backupId = await makeBackup(instanceId, 'completed');
    for (const caller of ['viewer', 'billing'] as const) {
      const response = await download(instanceId, backupId, tokens[caller]);
      assert.equal(response.status, 403, caller);
      assert.equal(response.headers.get('location'), null);
    }
    assert.equal(await downloadsAudited(backupId), 0);
  });

  it("another organization's backup is not found (404), through its server or through one's own", async () => {
    const foreignInstance = await makeInstance(bucketClusterId, foreignOrganizationId);
    const foreignBackup = await makeBackup(foreignInstance, 'completed');
    const ownInstance = await makeInstance(bucketClusterId);
    const ownBackup = await makeBackup(ownInstance, 'completed');

    assert.equal((await download(foreignInstance, foreignBackup, tokens.owner)).status, 404);
    assert.equal((await download(ownInstance, foreignBackup, tokens.owner)).status, 404);
    assert.equal((await download(ownInstance, ownBackup, tokens.outsider)).status, 404);
    assert.equal((await download(ownInstance, randomUUID(), tokens.owner)).status, 404);
    assert.equal(await downloadsAudited(foreignBackup), 0);
  });
});
