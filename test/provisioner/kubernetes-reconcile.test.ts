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
import { purgeInstance, reconcileInstance } from '../../provisioner/reconciler.ts';
import { ensureInstanceSecrets } from '../../provisioner/secrets.ts';
import { call, startTestApp, type TestApp } from '../support/app.ts';
import { adminUrl, makeTestDatabase, type TestDatabase } from '../support/db.ts';
import { createOrganization, createUserWithToken } from '../support/factories.ts';
import {
  installCertificateCrd,
  type KubeApiServer,
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

before(
  async () => {
    if (skip) return;
    server = await startKubeApiServer();
    await installCertificateCrd(server);
    database = await makeTestDatabase();
    await registerCluster(database.db, box, {
      name: 'test-apiserver',
      region: 'local',
      capacity: 5,
      kubeconfig: server.kubeconfigYaml,
      databaseAdminUrl: adminUrl(),
    });
    // The order comes in through the API, as a customer's would; staff orders are paid at once.
    app = await startTestApp(database);
    const { userId } = await createUserWithToken(database.db);
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

describe('provisioning onto a real API server and database', { skip }, () => {
  it('applies the objects and makes the database, then waits for the rollout', async () => {
    await assert.rejects(reconcileInstance(deps(), instanceId), /rolling out: .*web 0\/2 available/);
    const namespace = namespaceFor(instanceId);
    const web = await kubeRequest(server, 'GET', `/apis/apps/v1/namespaces/${namespace}/deployments/web`);
    assert.equal(web.status, 200);
    assert.equal((web.body.spec as { replicas: number }).replicas, 2);
    const certificate = await kubeRequest(
      server,
      'GET',
      `/apis/cert-manager.io/v1/namespaces/${namespace}/certificates`,
    );
    assert.equal((certificate.body.items as unknown[]).length, 1);

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

    const recorded = await steps();
    assert.deepEqual(
      recorded.map(([step, outcome]) => [step, outcome]),
      [
        ['placement', 'succeeded'],
        ['secrets', 'succeeded'],
        ['database', 'succeeded'],
        ['apply-manifests', 'succeeded'],
        ['rollout', 'failed'],
      ],
    );
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
  });

  it('goes running once every Deployment reports the new spec available', async () => {
    const namespace = namespaceFor(instanceId);
    const list = await kubeRequest(server, 'GET', `/apis/apps/v1/namespaces/${namespace}/deployments`);
    // Stand-in for the Deployment controller and kubelets, which do not run here.
    for (const item of list.body.items as {
      metadata: { name: string; generation: number };
      spec: { replicas: number };
    }[]) {
      const patched = await kubeRequest(
        server,
        'PATCH',
        `/apis/apps/v1/namespaces/${namespace}/deployments/${item.metadata.name}/status`,
        {
          status: {
            observedGeneration: item.metadata.generation,
            replicas: item.spec.replicas,
            updatedReplicas: item.spec.replicas,
            readyReplicas: item.spec.replicas,
            availableReplicas: item.spec.replicas,
          },
        },
        'application/merge-patch+json',
      );
      assert.equal(patched.status, 200, JSON.stringify(patched.body));
    }
    await reconcileInstance(deps(), instanceId);
    const { body: instance } = await call(`${app.url}/v1/instances/${instanceId}`, { token: staffToken });
    assert.equal(instance.status, 'running');
    assert.equal(instance.dryRun, false);
    assert.equal(instance.statusReason, null, 'really running, not in dry-run');
    assert.equal(instance.cluster.name, 'test-apiserver');
    assert.equal(instance.observedGeneration, instance.generation);
    const recorded = await steps();
    assert.deepEqual(recorded.at(-1)?.slice(0, 2), ['rollout', 'succeeded']);
    assert.equal(
      recorded.filter(([step]) => step === 'apply-manifests').length,
      1,
      'applied once, not again',
    );
  });

  it('will not purge a real server without its final backup, which is not built yet', async () => {
    await database.db.instance.update({
      where: { id: instanceId },
      data: { status: 'deleting', deleteAfter: new Date(Date.now() - 1000) },
    });
    await assert.rejects(purgeInstance(deps(), instanceId), (error: Error & { retryable?: boolean }) => {
      assert.match(error.message, /backups on a real cluster are not built yet/);
      assert.equal(error.retryable, false);
      return true;
    });
    const namespace = await kubeRequest(server, 'GET', `/api/v1/namespaces/${namespaceFor(instanceId)}`);
    assert.equal(namespace.status, 200, 'nothing was removed');
    assert.equal(
      (await database.db.instance.findUniqueOrThrow({ where: { id: instanceId } })).status,
      'deleting',
    );
  });
});
