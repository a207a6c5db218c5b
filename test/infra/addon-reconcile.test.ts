/**
 * Add-ons end to end on a real cluster: a server ordered with object storage and search through
 * the API, provisioned by the reconciler onto the tests' REAL kube-apiserver as the provisioner's
 * restricted identity, its add-on stack brought up by the REAL `pulumi` CLI, its outputs wired
 * into the server's configuration and Secret, and search indexed by its Job. No kubelet or
 * controller runs here: where they would finish a Job or a rollout, the test writes that status
 * itself (finishJob, finishRollouts).
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { makeMasterKey, makeSecretBox } from '../../core/crypto.ts';
import { makeLogger } from '../../core/log.ts';
import type { PulumiSettings } from '../../infra/workspace.ts';
import { registerCluster } from '../../provisioner/clusters.ts';
import { dropInstanceDatabase } from '../../provisioner/database.ts';
import { namespaceFor } from '../../provisioner/manifests/render-instance.ts';
import { reconcileInstance } from '../../provisioner/reconciler.ts';
import { call, startTestApp, type TestApp } from '../support/app.ts';
import { adminUrl, makeTestDatabase, type TestDatabase } from '../support/db.ts';
import { createOrganization, createUserWithToken } from '../support/factories.ts';
import {
  bindProvisionerRole,
  finishJob,
  finishRollouts,
  installCertificateCrd,
  type KubeApiServer,
  kubeconfigFor,
  kubeRequest,
  kubeSkipReason,
  startKubeApiServer,
} from '../support/kube-server.ts';
import { pulumiSkipReason, testPulumiSettings } from '../support/pulumi.ts';

const skip = kubeSkipReason() || pulumiSkipReason();
const PROVISIONER = 'woolly-provisioner';
const box = makeSecretBox([makeMasterKey('addons')]);
const log = makeLogger({ log: { level: 'error', format: 'json' } }, new PassThrough().resume());

describe('add-ons on a real cluster, made by the real pulumi CLI', { skip }, () => {
  let server: KubeApiServer;
  let database: TestDatabase;
  let app: TestApp;
  let dir: string;
  let pulumi: PulumiSettings;
  let instanceId: string;
  let owner: string;
  const deps = () => ({ db: database.db, box, log, pulumi });
  const namespace = () => namespaceFor(instanceId);

  before(
    async () => {
      [server, database] = await Promise.all([
        startKubeApiServer({ users: [{ name: PROVISIONER }] }),
        makeTestDatabase(),
      ]);
      await installCertificateCrd(server);
      await bindProvisionerRole(server, PROVISIONER);
      dir = await mkdtemp(path.join(os.tmpdir(), 'woolly-addon-reconcile-'));
      pulumi = testPulumiSettings(dir);
      await registerCluster(database.db, box, {
        name: 'test-apiserver',
        region: 'local',
        capacity: 5,
        kubeconfig: kubeconfigFor(server, PROVISIONER),
        databaseAdminUrl: adminUrl(),
      });
      app = await startTestApp(database);
      const user = await createUserWithToken(database.db);
      owner = user.token;
      const organizationId = await createOrganization(database.db, user.userId, 'owner');
      const staff = (await createUserWithToken(database.db, { staffRole: 'ops' })).token;
      const placed = await call(`${app.url}/v1/orders`, {
        token: staff,
        body: {
          organizationId,
          plan: 'community',
          domain: 'addons.woolly.test',
          addons: ['object_storage', 'elasticsearch'],
        },
      });
      assert.equal(placed.status, 201, JSON.stringify(placed.body));
      instanceId = placed.body.instanceId;
    },
    { timeout: 120_000 },
  );
  after(async () => {
    if (instanceId) await dropInstanceDatabase(adminUrl(), namespaceFor(instanceId).replaceAll('-', '_'));
    await app?.release();
    await Promise.all([database?.release(), server?.release()]);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** Reconciles until done, finishing each Job and rollout it waits on as the cluster would. */
  async function reconcileToDone(): Promise<string[]> {
    const finished: string[] = [];
    for (let round = 0; round < 12; round++) {
      const result = await reconcileInstance(deps(), instanceId);
      if (result.state === 'done') return finished;
      const jobs = await kubeRequest(server, 'GET', `/apis/batch/v1/namespaces/${namespace()}/jobs`);
      for (const job of jobs.body.items as {
        metadata: { name: string };
        status?: { conditions?: unknown[] };
      }[]) {
        if (job.status?.conditions?.length) continue;
        await finishJob(server, namespace(), job.metadata.name, 'Complete');
        finished.push(job.metadata.name);
      }
      await finishRollouts(server, namespace());
    }
    assert.fail('the reconcile did not finish in 12 rounds');
  }

  const read = async (urlPath: string) => kubeRequest(server, 'GET', urlPath);
  const env = async () =>
    (await read(`/api/v1/namespaces/${namespace()}/configmaps/mastodon-env`)).body.data as Record<
      string,
      string
    >;
  const secretOf = async () => {
    const data = (await read(`/api/v1/namespaces/${namespace()}/secrets/mastodon-secrets`)).body
      .data as Record<string, string>;
    return Object.fromEntries(
      Object.entries(data).map(([key, value]) => [key, Buffer.from(value, 'base64').toString()]),
    );
  };

  it('provisions the stack before the configuration, wires its settings and credentials in, and indexes search once', async () => {
    const finished = await reconcileToDone();
    assert.ok(
      finished.some((job) => job.startsWith('search-deploy-')),
      `search deployed by its Job (${finished.join(', ')})`,
    );
    const instance = await call(`${app.url}/v1/instances/${instanceId}`, { token: owner });
    assert.equal(instance.body.status, 'running');

    const stack = await call(`${app.url}/v1/instances/${instanceId}/addon-stack`, { token: owner });
    assert.equal(stack.body.state, 'up');
    assert.ok((stack.body.changes.create ?? 0) >= 11, JSON.stringify(stack.body.changes));
    // Made by Pulumi as the provisioner's restricted identity, and kept by the prune step.
    for (const name of ['object-storage', 'search']) {
      assert.equal(
        (await read(`/apis/apps/v1/namespaces/${namespace()}/statefulsets/${name}`)).status,
        200,
        name,
      );
    }
    const settings = await env();
    assert.equal(settings.S3_ENABLED, 'true');
    assert.equal(settings.S3_ENDPOINT, `http://object-storage.${namespace()}.svc.cluster.local:9000`);
    assert.equal(settings.ES_HOST, `https://search.${namespace()}.svc.cluster.local`);
    const credentials = await database.db.secretRecord.findFirstOrThrow({
      where: { instanceId, name: 'ADDON_CREDENTIALS' },
    });
    const made = JSON.parse(box.open(credentials, `instance:${instanceId}:ADDON_CREDENTIALS`)) as Record<
      string,
      string
    >;
    const secret = await secretOf();
    assert.equal(secret.AWS_ACCESS_KEY_ID, made.objectStorageAccessKey);
    assert.equal(secret.AWS_SECRET_ACCESS_KEY, made.objectStorageSecretKey);
    assert.equal(secret.ES_PASS, made.searchPassword);
    const minio = await read(`/api/v1/namespaces/${namespace()}/secrets/object-storage-credentials`);
    const minioPassword = (minio.body.data as Record<string, string>).MINIO_ROOT_PASSWORD ?? '';
    assert.equal(Buffer.from(minioPassword, 'base64').toString(), made.objectStorageSecretKey);
    const quota = await read(`/api/v1/namespaces/${namespace()}/resourcequotas/mastodon`);
    assert.equal((quota.body.spec as { hard: Record<string, string> }).hard.persistentvolumeclaims, '2');
  });

  it('search removed through the API: its resources go, its settings leave the configuration', async () => {
    const before = await call(`${app.url}/v1/instances/${instanceId}`, { token: owner });
    const removed = await call(`${app.url}/v1/instances/${instanceId}/addons/elasticsearch`, {
      method: 'DELETE',
      token: owner,
      headers: { 'if-match': `"${before.body.generation}"` },
    });
    assert.equal(removed.status, 202, JSON.stringify(removed.body));
    await reconcileToDone();
    assert.equal((await read(`/apis/apps/v1/namespaces/${namespace()}/statefulsets/search`)).status, 404);
    assert.equal(
      (await read(`/apis/apps/v1/namespaces/${namespace()}/statefulsets/object-storage`)).status,
      200,
    );
    const settings = await env();
    assert.equal(settings.ES_ENABLED, undefined);
    assert.equal(settings.S3_ENABLED, 'true');
    assert.equal((await secretOf()).ES_PASS, undefined);
  });
});
