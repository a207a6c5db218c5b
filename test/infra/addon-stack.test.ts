/**
 * The add-on driver running the REAL `pulumi` CLI and Kubernetes provider (built by
 * test/support/pulumi/build.sh) against a REAL kube-apiserver, with a real PostgreSQL for the
 * stack locks: the in-cluster object store and search go up, a second `up` changes nothing,
 * two operations on one stack take turns, a failure says what failed, a worker that died
 * mid-operation is recovered from, `destroy` removes everything, and with no CLI the driver
 * says it is blocked.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { PLAN_CATALOG } from '../../core/domain/catalog.ts';
import {
  ADDON_PROJECT,
  addonStackName,
  applyAddonStack,
  destroyAddonStack,
  planAddonStack,
} from '../../infra/driver.ts';
import type { AddonStackSpec } from '../../infra/program.ts';
import { type PulumiSettings, PulumiUnavailable } from '../../infra/workspace.ts';
import { makeTestDatabase, type TestDatabase } from '../support/db.ts';
import {
  type KubeApiServer,
  kubeRequest,
  kubeSkipReason,
  startKubeApiServer,
} from '../support/kube-server.ts';
import { pulumiSkipReason, testPulumiSettings } from '../support/pulumi.ts';

const skip = kubeSkipReason() || pulumiSkipReason();
const community = PLAN_CATALOG.find((candidate) => candidate.code === 'community');
assert.ok(community);
const plan = community;

const INSTANCE_ID = '3f2b9c4e-1a7d-4e0b-9c2f-5d6e7f8a9b0c';
const NAMESPACE = 'mastodon-3f2b9c4e1a7d';

function specFor(server: KubeApiServer, changes: Partial<AddonStackSpec> = {}): AddonStackSpec {
  return {
    owner: {
      instanceId: INSTANCE_ID,
      organizationId: '0b7e2f1c-5a4d-4c3b-8e2a-1f0e9d8c7b6a',
      namespace: NAMESPACE,
    },
    domain: 'chess.example.org',
    limits: plan.limits,
    objectStorage: true,
    search: true,
    provider: { kind: 'in-cluster', kubeconfig: server.kubeconfigYaml },
    credentials: {
      objectStorageAccessKey: 'woolly-media',
      objectStorageSecretKey: 'media-secret-1234567890',
      searchPassword: 'Search-pass-1234567890',
    },
    ...changes,
  };
}

const locksOf = (settings: PulumiSettings) =>
  path.join(
    fileURLToPath(settings.backendUrl),
    '.pulumi',
    'locks',
    'organization',
    ADDON_PROJECT,
    addonStackName(INSTANCE_ID),
  );

/** Every file under `dir`, concatenated. */
async function readTree(dir: string): Promise<string> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  const files = entries
    .filter((entry) => entry.isFile())
    .map((entry) => path.join(entry.parentPath, entry.name));
  return (await Promise.all(files.map((file) => readFile(file, 'utf8')))).join('\n');
}

const exists = async (server: KubeApiServer, urlPath: string) =>
  (await kubeRequest(server, 'GET', urlPath)).status;
const objectPaths = [
  `/apis/apps/v1/namespaces/${NAMESPACE}/statefulsets/object-storage`,
  `/apis/apps/v1/namespaces/${NAMESPACE}/statefulsets/search`,
  `/api/v1/namespaces/${NAMESPACE}/services/object-storage`,
  `/api/v1/namespaces/${NAMESPACE}/secrets/search-credentials`,
  `/apis/batch/v1/namespaces/${NAMESPACE}/jobs/object-storage-bucket`,
  `/apis/networking.k8s.io/v1/namespaces/${NAMESPACE}/networkpolicies/allow-ingress-to-search`,
];

describe('the add-on driver with the real pulumi CLI against a real API server', { skip }, () => {
  let server: KubeApiServer;
  let database: TestDatabase;
  let dir: string;
  let settings: PulumiSettings;

  before(async () => {
    [server, database] = await Promise.all([startKubeApiServer(), makeTestDatabase()]);
    dir = await mkdtemp(path.join(os.tmpdir(), 'woolly-addon-stack-'));
    settings = testPulumiSettings(dir);
    const created = await kubeRequest(server, 'POST', '/api/v1/namespaces', {
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name: NAMESPACE },
    });
    assert.equal(created.status, 201);
  });
  after(async () => {
    await Promise.all([server?.release(), database?.release()]);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('brings the in-cluster object store and search up, with the settings Mastodon needs as outputs', async () => {
    const applied = await applyAddonStack({ db: database.db, settings }, specFor(server));
    assert.ok((applied.changes.create ?? 0) >= 11, JSON.stringify(applied.changes));
    for (const objectPath of objectPaths) assert.equal(await exists(server, objectPath), 200, objectPath);
    const secret = await kubeRequest(
      server,
      'GET',
      `/api/v1/namespaces/${NAMESPACE}/secrets/object-storage-credentials`,
    );
    const data = secret.body.data as Record<string, string>;
    assert.equal(Buffer.from(data.MINIO_ROOT_PASSWORD ?? '', 'base64').toString(), 'media-secret-1234567890');
    assert.deepEqual(applied.outputs.objectStorage, {
      bucket: 'mastodon',
      endpoint: `http://object-storage.${NAMESPACE}.svc.cluster.local:9000`,
      region: 'us-east-1',
      aliasHost: 'chess.example.org/mastodon',
      accessKeyId: 'woolly-media',
      secretAccessKey: 'media-secret-1234567890',
      route: { path: '/mastodon/', service: 'object-storage', port: 9000 },
    });
    assert.equal(applied.outputs.search?.password, 'Search-pass-1234567890');
    // The stack's state holds the credentials and the kubeconfig encrypted, never in the clear.
    const state = await readTree(fileURLToPath(settings.backendUrl));
    assert.ok(state.includes('object-storage-credentials'), 'the state was read');
    for (const secret of ['media-secret-1234567890', 'Search-pass-1234567890', server.adminToken]) {
      assert.ok(!state.includes(secret), 'a secret in the stack state');
    }
    assert.equal(applied.outputs.dns, null);
    assert.ok(applied.resources.some((resource) => resource.type === 'kubernetes:apps/v1:StatefulSet'));
  });

  it('a second up finds nothing to change, and two operations on one stack take turns instead of failing', async () => {
    // Where the file backend keeps the stack's lock while an operation runs (the recovery below
    // clears it there).
    let lockSeen = false;
    const watching = setInterval(async () => {
      if ((await readdir(locksOf(settings)).catch(() => [])).length > 0) lockSeen = true;
    }, 100);
    try {
      const [first, second] = await Promise.all([
        applyAddonStack({ db: database.db, settings }, specFor(server)),
        applyAddonStack({ db: database.db, settings }, specFor(server)),
      ]);
      for (const result of [first, second]) {
        assert.deepEqual(Object.keys(result.changes), ['same'], JSON.stringify(result.changes));
      }
    } finally {
      clearInterval(watching);
    }
    assert.ok(lockSeen, `no lock file appeared in ${locksOf(settings)} during the operations`);
  });

  it('turning search off deletes its resources and keeps the object store', async () => {
    const applied = await applyAddonStack({ db: database.db, settings }, specFor(server, { search: false }));
    assert.ok((applied.changes.delete ?? 0) >= 4, JSON.stringify(applied.changes));
    assert.equal(applied.outputs.search, null);
    assert.equal(await exists(server, `/apis/apps/v1/namespaces/${NAMESPACE}/statefulsets/search`), 404);
    assert.equal(
      await exists(server, `/apis/apps/v1/namespaces/${NAMESPACE}/statefulsets/object-storage`),
      200,
    );
  });

  it('recovers a stack whose worker died mid-operation (its lock file left behind)', async () => {
    const locks = locksOf(settings);
    await mkdir(locks, { recursive: true });
    await writeFile(
      path.join(locks, 'dead-worker.json'),
      JSON.stringify({
        pid: 999999,
        username: 'woolly',
        hostname: 'gone',
        timestamp: new Date().toISOString(),
      }),
    );
    const applied = await applyAddonStack({ db: database.db, settings }, specFor(server, { search: false }));
    assert.deepEqual(Object.keys(applied.changes), ['same']);
    assert.deepEqual(await readdir(locks), []);
  });

  it('says what failed when the cluster refuses', async () => {
    const wrongToken = server.kubeconfigYaml.replace(server.adminToken, 'not-a-token-the-server-knows');
    assert.notEqual(wrongToken, server.kubeconfigYaml);
    const refused = specFor(server, {
      owner: { ...specFor(server).owner, instanceId: 'ffffffff-0000-4000-8000-000000000000' },
      provider: { kind: 'in-cluster', kubeconfig: wrongToken },
    });
    await assert.rejects(applyAddonStack({ db: database.db, settings }, refused), (error: Error) => {
      assert.match(error.message, /^pulumi up failed: /);
      assert.match(
        error.message,
        /^pulumi up failed: configured Kubernetes cluster is unreachable: .*the server has asked for the client to provide credentials; update failed$/,
      );
      assert.doesNotMatch(error.message, /media-secret-1234567890|Search-pass|not-a-token/);
      return true;
    });
  });

  it('destroy removes every resource and the stack; destroying a stack that is gone does nothing', async () => {
    const destroyed = await destroyAddonStack({ db: database.db, settings }, INSTANCE_ID);
    assert.ok((destroyed?.changes.delete ?? 0) >= 7, JSON.stringify(destroyed));
    for (const objectPath of objectPaths) assert.equal(await exists(server, objectPath), 404, objectPath);
    assert.equal(await destroyAddonStack({ db: database.db, settings }, INSTANCE_ID), null);
  });
});

describe('the add-on driver without the pulumi CLI', () => {
  it('reports the add-on step blocked, naming where it looked', async () => {
    const database = await makeTestDatabase();
    try {
      const settings: PulumiSettings = {
        root: '/nonexistent/pulumi',
        backendUrl: 'file:///tmp/woolly-never-used',
        secretsProvider: 'passphrase',
        passphrase: 'never-used-passphrase',
        concurrency: 1,
      };
      const spec: AddonStackSpec = {
        owner: { instanceId: INSTANCE_ID, organizationId: INSTANCE_ID, namespace: NAMESPACE },
        domain: 'chess.example.org',
        limits: plan.limits,
        objectStorage: true,
        search: false,
        provider: { kind: 'in-cluster', kubeconfig: 'unused' },
        credentials: { objectStorageAccessKey: 'a', objectStorageSecretKey: 'b', searchPassword: 'c' },
      };
      await assert.rejects(applyAddonStack({ db: database.db, settings }, spec), (error: Error) => {
        assert.ok(error instanceof PulumiUnavailable);
        assert.match(error.message, /^blocked: no pulumi CLI at \/nonexistent\/pulumi\/bin\/pulumi/);
        return true;
      });
      // The plan needs no CLI.
      const planned = await planAddonStack(spec);
      assert.deepEqual(planned.violations, []);
      assert.ok(planned.resources.some((resource) => resource.name === 'object-storage'));
      assert.ok(!planned.resources.some((resource) => resource.name === 'search'));
    } finally {
      await database.release();
    }
  });
});
