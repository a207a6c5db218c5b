/**
 * An order placed through the API, provisioned on a real cluster: a registered cluster whose
 * kubeconfig points at the tests' real kube-apiserver and whose database admin URL is the
 * tests' real PostgreSQL server. The reconciler runs here as the worker would run its job.
 * No kubelet or controller runs here, so where a Deployment controller would report a
 * finished rollout, the test writes that status itself (and says so).
 */
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { makeMasterKey, makeSecretBox } from '../../core/crypto.ts';
import { makeLogger } from '../../core/log.ts';
import { registerCluster } from '../../provisioner/clusters.ts';
import { dropInstanceDatabase } from '../../provisioner/database.ts';
import { namespaceFor } from '../../provisioner/manifests/render-instance.ts';
import {
  backupInstance,
  markInstanceFailed,
  purgeInstance,
  reconcileInstance,
} from '../../provisioner/reconciler.ts';
import { ensureInstanceSecrets } from '../../provisioner/secrets.ts';
import { call, startTestApp, type TestApp } from '../support/app.ts';
import { adminUrl, makeTestDatabase, type TestDatabase } from '../support/db.ts';
import { createOrganization, createUserWithToken } from '../support/factories.ts';
import {
  bindProvisionerRole,
  finishJob,
  finishRollouts,
  installCertificateCrd,
  jobsOf,
  type KubeApiServer,
  kubeconfigFor,
  kubeRequest,
  kubeSkipReason,
  startKubeApiServer,
} from '../support/kube-server.ts';

// Without the binaries, skip locally (naming build.sh); under CI=true, fail.
const skip = kubeSkipReason();

let server: KubeApiServer;
let database: TestDatabase;
const box = makeSecretBox([makeMasterKey('kube')]);
const log = makeLogger({ log: { level: 'error', format: 'json' } }, new PassThrough().resume());
const deps = () => ({ db: database.db, box, log });
let instanceId: string;
let app: TestApp;
let staffToken: string;
/** The provisioner's own identity: a token user bound only to the ClusterRole `woolly cluster rbac` prints. */
const PROVISIONER = 'woolly-provisioner';
const ownerEmail = 'Ada.Lovelace@example.org';
const BACKUP_BUCKET = { bucket: 'woolly-test-backups', endpoint: 'https://s3.example.net', region: 'eu-1' };
const BACKUP_KEY = { accessKeyId: 'AKIATEST', secretAccessKey: 'backup-secret-that-stays-in-the-cluster' };
// Orders get the configured default, v4.5.11; these are the upgrades.
const NEXT_VERSION = 'v4.5.12';
const LATER_VERSION = 'v4.5.13';

before(
  async () => {
    if (skip) return;
    server = await startKubeApiServer({ users: [{ name: PROVISIONER }] });
    await installCertificateCrd(server);
    await bindProvisionerRole(server, PROVISIONER);
    database = await makeTestDatabase();
    await registerCluster(database.db, box, {
      name: 'test-apiserver',
      region: 'local',
      capacity: 5,
      kubeconfig: kubeconfigFor(server, PROVISIONER),
      databaseAdminUrl: adminUrl(),
      settings: { backups: BACKUP_BUCKET },
      backupCredentials: BACKUP_KEY,
    });
    // The order comes in through the API, as a customer's would; staff orders are paid at once.
    app = await startTestApp(database);
    const { userId } = await createUserWithToken(database.db, { email: ownerEmail });
    const organizationId = await createOrganization(database.db, userId);
    staffToken = (await createUserWithToken(database.db, { staffRole: 'ops' })).token;
    const placed = await call(`${app.url}/v1/orders`, {
      token: staffToken,
      body: { organizationId, plan: 'community', domain: 'real.woolly.test' },
    });
    assert.equal(placed.status, 201, JSON.stringify(placed.body));
    instanceId = placed.body.instanceId;
  },
  { timeout: 120_000 },
);

after(async () => {
  if (instanceId) await dropInstanceDatabase(adminUrl(), namespaceFor(instanceId).replaceAll('-', '_'));
  await app?.release();
  await database?.release();
  await server?.release();
});

const steps = async () =>
  (
    await database.db.operationStep.findMany({
      where: { operation: { instanceId } },
      orderBy: [{ startedAt: 'asc' }, { id: 'asc' }],
    })
  ).map((step) => [step.name, step.outcome, step.detail ?? step.error]);

const stepsOf = async () => (await steps()).map(([step, outcome]) => [step, outcome]);
const web = async () => {
  const read = await kubeRequest(
    server,
    'GET',
    `/apis/apps/v1/namespaces/${namespaceFor(instanceId)}/deployments/web`,
  );
  return read.status === 200
    ? (read.body as { spec: { replicas: number; template: { spec: { containers: { image: string }[] } } } })
    : null;
};
const instanceRow = () => database.db.instance.findUniqueOrThrow({ where: { id: instanceId } });

/** Staff ask for a Mastodon upgrade through the API, as of the current generation. */
async function upgradeTo(mastodonVersion: string): Promise<void> {
  const before = await instanceRow();
  const patched = await call(`${app.url}/v1/instances/${instanceId}`, {
    method: 'PATCH',
    token: staffToken,
    headers: { 'if-match': `"${before.generation}"` },
    body: { mastodonVersion },
  });
  assert.equal(patched.status, 202, JSON.stringify(patched.body));
}

describe('provisioning onto a real API server and database', { skip }, () => {
  it('acts as a provisioner that may manage servers and nothing else', async () => {
    const as = (method: string, path: string, body?: unknown) =>
      kubeRequest({ ...server, adminToken: server.tokens[PROVISIONER] ?? '' }, method, path, body);
    assert.equal((await as('GET', '/api/v1/namespaces')).status, 200);
    assert.equal((await as('GET', '/api/v1/pods')).status, 403, 'no pods');
    assert.equal((await as('GET', '/api/v1/nodes')).status, 403, 'no nodes');
    const escalate = await as('POST', '/apis/rbac.authorization.k8s.io/v1/clusterrolebindings', {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name: 'take-over' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'cluster-admin' },
      subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: PROVISIONER }],
    });
    assert.equal(escalate.status, 403, 'no RBAC changes');
  });

  it('applies the config and makes the database, then waits for the pre-deployment migration', async () => {
    const result = await reconcileInstance(deps(), instanceId);
    assert.equal(result.state, 'waiting');
    assert.match(result.state === 'waiting' ? result.detail : '', /Job db-migrate-[0-9a-f]{10}: 0 running/);
    const namespace = namespaceFor(instanceId);
    assert.equal(await web(), null, 'no workload before the migration has run');

    const name = namespace.replaceAll('-', '_');
    const { values } = await ensureInstanceSecrets(database.db, box, instanceId);
    const url = new URL(adminUrl(name));
    url.username = name;
    url.password = values.DB_PASS;
    const client = new pg.Client({ connectionString: url.toString() });
    await client.connect();
    const { rows } = await client.query('select current_database() as db, current_user as role');
    await client.end();
    assert.deepEqual(rows[0], { db: name, role: name });

    assert.deepEqual(await stepsOf(), [
      ['placement', 'succeeded'],
      ['secrets', 'succeeded'],
      ['database', 'succeeded'],
      ['addons', 'skipped'],
      ['apply-config', 'succeeded'],
      ['pre-migrate', 'running'],
    ]);
    const placed = await database.db.instance.findUniqueOrThrow({
      where: { id: instanceId },
      include: { cluster: true },
    });
    assert.equal(placed.status, 'provisioning');
    assert.equal(
      placed.cluster?.name,
      'test-apiserver',
      'a real cluster, though the dry-run one has room too',
    );
    // Waiting is not failing: looking again keeps the one step row, still running.
    assert.equal((await reconcileInstance(deps(), instanceId)).state, 'waiting');
    assert.deepEqual((await stepsOf()).at(-1), ['pre-migrate', 'running']);
    assert.equal((await steps()).length, 6);
  });

  it('rolls the workloads out once the migration is done, and waits for them', async () => {
    const namespace = namespaceFor(instanceId);
    // Stand-in for the Job controller, which does not run here.
    const [migration] = await jobsOf(server, namespace, 'db-migrate');
    assert.ok(migration);
    await finishJob(server, namespace, migration, 'Complete');
    const result = await reconcileInstance(deps(), instanceId);
    assert.match(result.state === 'waiting' ? result.detail : '', /rolling out: .*web 0\/2 available/);
    assert.equal((await web())?.spec.replicas, 2);
    assert.deepEqual((await stepsOf()).slice(5), [
      ['pre-migrate', 'succeeded'],
      ['apply-workloads', 'succeeded'],
      ['rollout', 'running'],
    ]);
    assert.deepEqual(
      await jobsOf(server, namespace, 'db-post-migrate'),
      [],
      'post-deployment waits for the rollout',
    );
  });

  it('runs the post-deployment migration after the rollout, then makes the owner account', async () => {
    const namespace = namespaceFor(instanceId);
    // Stand-in for the Deployment controller and kubelets.
    await finishRollouts(server, namespace);
    await reconcileInstance(deps(), instanceId);
    const [post] = await jobsOf(server, namespace, 'db-post-migrate');
    assert.ok(post);
    assert.deepEqual(await jobsOf(server, namespace, 'owner-account'), []);
    await finishJob(server, namespace, post, 'Complete');
    await reconcileInstance(deps(), instanceId);
    const [owner] = await jobsOf(server, namespace, 'owner-account');
    assert.ok(owner);
    const job = await kubeRequest(server, 'GET', `/apis/batch/v1/namespaces/${namespace}/jobs/${owner}`);
    const env = Object.fromEntries(
      (
        job.body as {
          spec: { template: { spec: { containers: { env: { name: string; value: string }[] }[] } } };
        }
      ).spec.template.spec.containers[0]?.env.map((entry) => [entry.name, entry.value]) ?? [],
    );
    assert.equal(env.OWNER_EMAIL, ownerEmail);
    assert.equal(env.OWNER_USERNAME, 'ada_lovelace');
    assert.equal((await instanceRow()).status, 'provisioning', 'not running before the owner exists');
  });

  it('goes running once the owner account exists', async () => {
    const namespace = namespaceFor(instanceId);
    const [owner] = await jobsOf(server, namespace, 'owner-account');
    await finishJob(server, namespace, owner ?? '', 'Complete');
    assert.deepEqual(await reconcileInstance(deps(), instanceId), { state: 'done' });
    const { body: instance } = await call(`${app.url}/v1/instances/${instanceId}`, { token: staffToken });
    assert.equal(instance.status, 'running');
    assert.equal(instance.dryRun, false);
    assert.equal(instance.statusReason, null, 'really running, not in dry-run');
    assert.equal(instance.cluster.name, 'test-apiserver');
    assert.equal(instance.observedGeneration, instance.generation);
    // Routed, with its certificate, only once the workloads run.
    const certificate = await kubeRequest(
      server,
      'GET',
      `/apis/cert-manager.io/v1/namespaces/${namespace}/certificates`,
    );
    assert.equal((certificate.body.items as unknown[]).length, 1);
    assert.deepEqual((await stepsOf()).slice(-6), [
      ['rollout', 'succeeded'],
      ['apply-route', 'succeeded'],
      ['post-migrate', 'succeeded'],
      ['search-deploy', 'skipped'],
      ['owner-account', 'succeeded'],
      ['prune', 'succeeded'],
    ]);
  });

  it('upgrades Mastodon in order: migration before the new image, post-deployment migration after', async () => {
    const namespace = namespaceFor(instanceId);
    await upgradeTo(NEXT_VERSION);
    const oldImage = (await web())?.spec.template.spec.containers[0]?.image;
    assert.equal((await reconcileInstance(deps(), instanceId)).state, 'waiting');
    const migrations = await jobsOf(server, namespace, 'db-migrate');
    assert.equal(migrations.length, 2, 'a new migration Job for the new version');
    assert.equal(
      (await web())?.spec.template.spec.containers[0]?.image,
      oldImage,
      'old image while migrating',
    );
    await finishJob(server, namespace, migrations[1] ?? '', 'Complete');
    assert.equal((await reconcileInstance(deps(), instanceId)).state, 'waiting');
    assert.equal(
      (await web())?.spec.template.spec.containers[0]?.image,
      `ghcr.io/mastodon/mastodon:${NEXT_VERSION}`,
    );
    assert.equal(
      (await jobsOf(server, namespace, 'db-post-migrate')).length,
      1,
      'no post-deployment migration yet',
    );
    await finishRollouts(server, namespace);
    assert.equal((await reconcileInstance(deps(), instanceId)).state, 'waiting');
    const posts = await jobsOf(server, namespace, 'db-post-migrate');
    assert.equal(posts.length, 2);
    await finishJob(server, namespace, posts[1] ?? '', 'Complete');
    assert.deepEqual(await reconcileInstance(deps(), instanceId), { state: 'done' });
    const after = await instanceRow();
    assert.equal(after.status, 'running');
    assert.equal(after.mastodonVersion, NEXT_VERSION);
    assert.equal(after.observedGeneration, after.generation);
    assert.deepEqual(
      await jobsOf(server, namespace, 'owner-account'),
      [(await jobsOf(server, namespace, 'owner-account'))[0]],
      'the owner is made once',
    );
  });

  it('suspends to the maintenance page and resumes behind a finished rollout', async () => {
    const namespace = namespaceFor(instanceId);
    const ingressBackend = async () => {
      const ingress = await kubeRequest(
        server,
        'GET',
        `/apis/networking.k8s.io/v1/namespaces/${namespace}/ingresses/mastodon`,
      );
      return (
        ingress.body as {
          spec: { rules: { http: { paths: { backend: { service: { name: string } } }[] } }[] };
        }
      ).spec.rules[0]?.http.paths.map((path) => path.backend.service.name);
    };
    const replicas = async (name: string) => {
      const read = await kubeRequest(
        server,
        'GET',
        `/apis/apps/v1/namespaces/${namespace}/deployments/${name}`,
      );
      return read.status === 200 ? (read.body as { spec: { replicas: number } }).spec.replicas : null;
    };
    const suspended = await call(`${app.url}/v1/instances/${instanceId}/suspend`, {
      token: staffToken,
      body: { reason: 'unpaid' },
    });
    assert.equal(suspended.status, 202, JSON.stringify(suspended.body));
    assert.equal((await reconcileInstance(deps(), instanceId)).state, 'waiting', 'for the pods to stop');
    // Stand-in for the Deployment controller and kubelets.
    await finishRollouts(server, namespace);
    assert.deepEqual(await reconcileInstance(deps(), instanceId), { state: 'done' });
    assert.equal((await instanceRow()).status, 'suspended');
    assert.equal(await replicas('web'), 0);
    assert.equal(await replicas('maintenance'), 1);
    assert.deepEqual(await ingressBackend(), ['maintenance']);

    const resumed = await call(`${app.url}/v1/instances/${instanceId}/resume`, {
      method: 'POST',
      token: staffToken,
    });
    assert.equal(resumed.status, 202, JSON.stringify(resumed.body));
    assert.equal((await reconcileInstance(deps(), instanceId)).state, 'waiting');
    assert.equal(await replicas('web'), 2);
    assert.deepEqual(
      await ingressBackend(),
      ['maintenance'],
      'visitors keep the page until the pods are ready',
    );
    // Stand-in for the Deployment controller and kubelets.
    await finishRollouts(server, namespace);
    assert.deepEqual(await reconcileInstance(deps(), instanceId), { state: 'done' });
    assert.equal((await instanceRow()).status, 'running');
    assert.deepEqual(await ingressBackend(), ['streaming', 'web']);
    assert.equal(await replicas('maintenance'), null, 'the page is pruned');
  });

  it('a backup dumps the database in a Job and copies it to the cluster’s bucket', async () => {
    const namespace = namespaceFor(instanceId);
    const requested = await call(`${app.url}/v1/instances/${instanceId}/backups`, {
      method: 'POST',
      token: staffToken,
    });
    assert.equal(requested.status, 202, JSON.stringify(requested.body));
    const backupId = requested.body.id as string;
    assert.equal((await backupInstance(deps(), instanceId, backupId)).state, 'waiting');
    const [jobName] = await jobsOf(server, namespace, 'backup');
    assert.ok(jobName);
    const job = (await kubeRequest(server, 'GET', `/apis/batch/v1/namespaces/${namespace}/jobs/${jobName}`))
      .body as {
      spec: {
        template: { spec: { initContainers: { args: string[] }[]; containers: { args: string[] }[] } };
      };
    };
    assert.deepEqual(job.spec.template.spec.initContainers[0]?.args.slice(0, 2), [
      'pg_dump',
      '--format=custom',
    ]);
    const key = `woolly-backups/${instanceId}/${backupId}.dump`;
    assert.deepEqual(job.spec.template.spec.containers[0]?.args.slice(0, 4), [
      's3',
      'cp',
      '/backup/db.dump',
      `s3://woolly-test-backups/${key}`,
    ]);
    const credentials = await kubeRequest(
      server,
      'GET',
      `/api/v1/namespaces/${namespace}/secrets/backup-credentials`,
    );
    assert.equal(
      Buffer.from(
        (credentials.body as { data: Record<string, string> }).data.AWS_SECRET_ACCESS_KEY ?? '',
        'base64',
      ).toString(),
      BACKUP_KEY.secretAccessKey,
    );
    // Stand-in for the Job controller.
    await finishJob(server, namespace, jobName, 'Complete');
    assert.deepEqual(await backupInstance(deps(), instanceId, backupId), { state: 'done' });
    const listed = await call(`${app.url}/v1/instances/${instanceId}/backups`, { token: staffToken });
    const backup = listed.body.data.find((row: { id: string }) => row.id === backupId);
    assert.equal(backup.status, 'completed');
    assert.equal(backup.location, `s3://woolly-test-backups/${key}`);
    assert.ok(!JSON.stringify(listed.body).includes(BACKUP_KEY.secretAccessKey));
    // A reconcile meanwhile leaves the backup's objects alone.
    assert.equal((await instanceRow()).status, 'running');
  });

  it('a failed migration fails the server at once, and a staff retry runs it afresh', async () => {
    const namespace = namespaceFor(instanceId);
    await upgradeTo(LATER_VERSION);
    const earlier = await jobsOf(server, namespace, 'db-migrate');
    await reconcileInstance(deps(), instanceId);
    const [migration = ''] = (await jobsOf(server, namespace, 'db-migrate')).filter(
      (name) => !earlier.includes(name),
    );
    await finishJob(server, namespace, migration, 'Failed');
    await assert.rejects(reconcileInstance(deps(), instanceId), (error: Error & { retryable?: boolean }) => {
      assert.match(error.message, /Job db-migrate-[0-9a-f]{10} failed: BackoffLimitExceeded/);
      assert.equal(error.retryable, false);
      return true;
    });
    await markInstanceFailed(deps(), instanceId, 'pre-migrate failed');
    const retried = await call(`${app.url}/v1/instances/${instanceId}/retry`, {
      method: 'POST',
      token: staffToken,
    });
    assert.equal(retried.status, 202, JSON.stringify(retried.body));
    assert.equal((await reconcileInstance(deps(), instanceId)).state, 'waiting');
    const rerun = await kubeRequest(
      server,
      'GET',
      `/apis/batch/v1/namespaces/${namespace}/jobs/${migration}`,
    );
    assert.equal(rerun.status, 200, 'the same migration Job exists again');
    assert.equal(
      (rerun.body as { status?: { conditions?: unknown[] } }).status?.conditions,
      undefined,
      'and runs afresh',
    );
  });

  it('purges after the grace period: final backup, then namespace, database and secrets', async () => {
    const namespace = namespaceFor(instanceId);
    await database.db.instance.update({
      where: { id: instanceId },
      data: { status: 'deleting', deleteAfter: new Date(Date.now() - 1000) },
    });
    const before = await jobsOf(server, namespace, 'backup');
    assert.equal((await purgeInstance(deps(), instanceId)).state, 'waiting', 'for the final backup');
    assert.equal(
      (await kubeRequest(server, 'GET', `/api/v1/namespaces/${namespace}`)).status,
      200,
      'nothing removed yet',
    );
    const [finalBackup = ''] = (await jobsOf(server, namespace, 'backup')).filter(
      (name) => !before.includes(name),
    );
    await finishJob(server, namespace, finalBackup, 'Complete');
    assert.deepEqual(await purgeInstance(deps(), instanceId), { state: 'done' });

    const instance = await instanceRow();
    assert.equal(instance.status, 'deleted');
    const final = await database.db.backup.findFirstOrThrow({
      where: { instanceId, location: { contains: finalBackup.replace('backup-', '') } },
    });
    assert.equal(final.status, 'completed');
    const stored = await kubeRequest(server, 'GET', `/api/v1/namespaces/${namespace}`);
    assert.ok(
      stored.status === 404 ||
        (stored.body as { metadata: { deletionTimestamp?: string } }).metadata.deletionTimestamp,
      'the namespace is gone or terminating',
    );
    const name = namespace.replaceAll('-', '_');
    const admin = new pg.Client({ connectionString: adminUrl() });
    await admin.connect();
    const left = await admin.query(
      'select (select count(*)::int from pg_database where datname = $1) as databases, (select count(*)::int from pg_roles where rolname = $1) as roles',
      [name],
    );
    await admin.end();
    assert.deepEqual(left.rows[0], { databases: 0, roles: 0 });
    assert.equal(await database.db.secretRecord.count({ where: { instanceId } }), 0);
  });
});
