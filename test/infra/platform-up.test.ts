/**
 * The platform stack run by the REAL `pulumi` CLI and Kubernetes provider (built by
 * test/support/pulumi/build.sh) against a REAL kube-apiserver (test/support/kube-server.ts),
 * then the cluster registered in a real PostgreSQL. No chart can be fetched here, so the stack
 * runs with `charts: null`, the ClusterIssuer CRD installed beforehand as cert-manager would.
 *
 * The test server has no controller-manager: nothing removes the `foregroundDeletion`
 * finalizer a foreground delete sets (the provider's default), and a Namespace never finishes
 * deleting. So, in this test only, a transform makes every deletion a background one and
 * marks the Namespaces `pulumi.com/skipAwait` (which the provider honours on delete for
 * Namespaces): destroy then returns, and the test checks the Namespaces are terminating.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as pulumi from '@pulumi/pulumi';
import type { Stack } from '@pulumi/pulumi/automation/index.js';
import { parse } from 'yaml';
import { makeMasterKey, makeSecretBox } from '../../core/crypto.ts';
import {
  PLATFORM_PROJECT,
  type PlatformOutputs,
  platformOutputs,
  platformProgram,
} from '../../infra/platform.ts';
import { registerPlatformCluster } from '../../infra/platform-registration.ts';
import { openStack } from '../../infra/workspace.ts';
import { openClusterSecrets } from '../../provisioner/clusters.ts';
import { makeTestDatabase, type TestDatabase } from '../support/db.ts';
import {
  installClusterIssuerCrd,
  type KubeApiServer,
  kubeRequest,
  kubeSkipReason,
  startKubeApiServer,
} from '../support/kube-server.ts';
import { pulumiSkipReason, testPulumiSettings } from '../support/pulumi.ts';

// Without the binaries, skip locally (naming the build script); under CI=true, fail.
const skip = kubeSkipReason() || pulumiSkipReason();

/** Bounds a Pulumi operation: aborted (SIGINT to the CLI) at `ms`, failed 15 s later regardless. */
async function bounded<T>(what: string, ms: number, run: (signal: AbortSignal) => Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`${what} did not finish within ${ms / 1000 + 15} s`)),
      ms + 15_000,
    );
  });
  try {
    return await Promise.race([run(AbortSignal.timeout(ms)), hung]);
  } finally {
    clearTimeout(timer);
  }
}

/** The test server cannot finish foreground deletions nor Namespace deletions (see above). */
const deletableHere: pulumi.ResourceTransform = (args) => {
  if (!args.type.startsWith('kubernetes:') || !args.props.metadata) return undefined;
  const metadata = args.props.metadata as { annotations?: Record<string, string> };
  const annotations: Record<string, string> = {
    ...metadata.annotations,
    'pulumi.com/deletionPropagationPolicy': 'background',
    ...(args.type === 'kubernetes:core/v1:Namespace' ? { 'pulumi.com/skipAwait': 'true' } : {}),
  };
  return { props: { ...args.props, metadata: { ...metadata, annotations } }, opts: args.opts };
};

/** A call to the API server with the credentials of `kubeconfig` (a token user). */
function requestAs(
  kubeconfig: string,
  method: string,
  urlPath: string,
  body?: unknown,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const config = parse(kubeconfig) as {
    clusters: { cluster: { server: string; 'certificate-authority-data': string } }[];
    users: { user: { token: string } }[];
  };
  const [cluster] = config.clusters;
  const [user] = config.users;
  assert.ok(cluster && user);
  return new Promise((resolve, reject) => {
    const request = https.request(
      `${cluster.cluster.server}${urlPath}`,
      {
        method,
        ca: Buffer.from(cluster.cluster['certificate-authority-data'], 'base64'),
        headers: {
          authorization: `Bearer ${user.user.token}`,
          accept: 'application/json',
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
      },
      (response) => {
        let text = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => {
          text += chunk;
        });
        response.on('end', () =>
          resolve({ status: response.statusCode ?? 0, body: JSON.parse(text || '{}') }),
        );
      },
    );
    request.on('error', reject);
    request.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

const UP_TIMEOUT_MS = 120_000;

describe('the platform stack, run by the real pulumi CLI against a real kube-apiserver', { skip }, () => {
  let server: KubeApiServer;
  let database: TestDatabase;
  let dir: string;
  let stack: Stack;
  let outputs: PlatformOutputs;
  const box = makeSecretBox([makeMasterKey('platform')]);
  const log: string[] = [];
  const onOutput = (line: string) => log.push(line);

  before(async () => {
    [server, database, dir] = await Promise.all([
      startKubeApiServer(),
      makeTestDatabase(),
      mkdtemp(path.join(os.tmpdir(), 'woolly-platform-')),
    ]);
    await installClusterIssuerCrd(server);
    const program = platformProgram({
      adminKubeconfig: server.kubeconfigYaml,
      acme: { email: 'ops@example.net', server: 'staging' },
      charts: null,
    });
    stack = await openStack(testPulumiSettings(dir), {
      project: PLATFORM_PROJECT,
      stack: 'fra1',
      program: async () => {
        pulumi.runtime.registerResourceTransform(deletableHere);
        return program();
      },
    });
  });
  after(async () => {
    await Promise.all([server?.release(), database?.release()]);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('up creates the namespaces, the provisioner’s ServiceAccount and RBAC, and the ClusterIssuer', async () => {
    const result = await bounded('up', UP_TIMEOUT_MS, (signal) => stack.up({ onOutput, signal }));
    assert.equal(result.summary.result, 'succeeded', log.join(''));
    outputs = platformOutputs(result.outputs);
    assert.deepEqual(outputs, {
      serviceAccount: { name: 'woolly-provisioner', namespace: 'woolly-system' },
      ingressClassName: 'nginx',
      clusterIssuer: 'letsencrypt-staging',
    });
    for (const namespace of ['woolly-system', 'ingress-nginx', 'cert-manager']) {
      const found = await kubeRequest(server, 'GET', `/api/v1/namespaces/${namespace}`);
      assert.equal(found.status, 200, namespace);
      const metadata = found.body.metadata as { labels: Record<string, string> };
      assert.equal(metadata.labels['app.kubernetes.io/part-of'], 'woolly');
    }
    for (const objectPath of [
      '/api/v1/namespaces/woolly-system/serviceaccounts/woolly-provisioner',
      '/apis/rbac.authorization.k8s.io/v1/clusterroles/woolly-provisioner',
      '/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/woolly-provisioner',
    ]) {
      assert.equal((await kubeRequest(server, 'GET', objectPath)).status, 200, objectPath);
    }
    const issuer = await kubeRequest(
      server,
      'GET',
      '/apis/cert-manager.io/v1/clusterissuers/letsencrypt-staging',
    );
    assert.equal(issuer.status, 200);
    const acme = (issuer.body.spec as { acme: Record<string, unknown> }).acme;
    assert.equal(acme.email, 'ops@example.net');
    assert.deepEqual(acme.solvers, [{ http01: { ingress: { ingressClassName: 'nginx' } } }]);
  });

  it('a second up finds everything as it left it', async () => {
    const result = await bounded('second up', UP_TIMEOUT_MS, (signal) => stack.up({ onOutput, signal }));
    const changes = result.summary.resourceChanges ?? {};
    assert.deepEqual(Object.keys(changes), ['same'], JSON.stringify(changes));
  });

  it('the registered kubeconfig acts as the ServiceAccount, within the provisioner’s role; bootstrapping again updates it', async () => {
    const registration = {
      name: 'fra1',
      region: 'eu-central',
      capacity: 30,
      adminKubeconfig: server.kubeconfigYaml,
      databaseAdminUrl: 'postgresql://woolly_admin:secret@10.0.0.5:5432/postgres',
      outputs,
    };
    const first = await registerPlatformCluster(database.db, box, registration);
    assert.equal(first.created, true);
    // The TokenRequest's expiry: a year, which this server does not cap.
    const days = (first.tokenExpiresAt.getTime() - Date.now()) / 86_400_000;
    assert.ok(days > 364 && days <= 365, `token lasts ${days} days`);
    const again = await registerPlatformCluster(database.db, box, { ...registration, capacity: 45 });
    assert.deepEqual([again.id, again.created], [first.id, false]);
    const rows = await database.db.cluster.findMany({ where: { name: 'fra1' } });
    assert.equal(rows.length, 1);
    const [cluster] = rows;
    assert.ok(cluster);
    assert.deepEqual(
      [cluster.region, cluster.capacity, cluster.settings],
      [
        'eu-central',
        45,
        {
          databaseHost: 'postgres.woolly-system.svc.cluster.local',
          databasePort: 5432,
          smtpServer: 'smtp.woolly-system.svc.cluster.local',
          smtpPort: 587,
          ingressClassName: 'nginx',
          clusterIssuer: 'letsencrypt-staging',
          addons: { provider: 'in-cluster' },
        },
      ],
    );
    const { kubeconfig } = await openClusterSecrets(database.db, box, cluster);

    const review = await requestAs(kubeconfig, 'POST', '/apis/authentication.k8s.io/v1/selfsubjectreviews', {
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'SelfSubjectReview',
    });
    assert.equal(review.status, 201, JSON.stringify(review.body));
    assert.equal(
      (review.body.status as { userInfo: { username: string } }).userInfo.username,
      'system:serviceaccount:woolly-system:woolly-provisioner',
    );
    const created = await requestAs(kubeconfig, 'POST', '/api/v1/namespaces', {
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name: 'mastodon-test', labels: { 'app.kubernetes.io/part-of': 'woolly' } },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const secret = await requestAs(kubeconfig, 'POST', '/api/v1/namespaces/mastodon-test/secrets', {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'mastodon' },
      stringData: { SECRET_KEY_BASE: 'x' },
    });
    assert.equal(secret.status, 201, JSON.stringify(secret.body));
    for (const [method, forbidden] of [
      ['GET', '/api/v1/nodes'],
      ['GET', '/api/v1/namespaces/kube-system/pods'],
      ['GET', '/api/v1/namespaces/kube-system/serviceaccounts'],
      ['GET', '/apis/rbac.authorization.k8s.io/v1/clusterroles'],
      ['POST', '/apis/rbac.authorization.k8s.io/v1/clusterrolebindings'],
    ] as const) {
      const answer = await requestAs(
        kubeconfig,
        method,
        forbidden,
        method === 'POST'
          ? {
              apiVersion: 'rbac.authorization.k8s.io/v1',
              kind: 'ClusterRoleBinding',
              metadata: { name: 'escalate' },
              roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'cluster-admin' },
              subjects: [{ kind: 'ServiceAccount', name: 'woolly-provisioner', namespace: 'woolly-system' }],
            }
          : undefined,
      );
      assert.equal(answer.status, 403, `${method} ${forbidden}: ${JSON.stringify(answer.body)}`);
    }
  });

  it('destroy removes the stack’s objects, leaves its namespaces terminating, and revokes the token', async () => {
    const cluster = await database.db.cluster.findUniqueOrThrow({ where: { name: 'fra1' } });
    const { kubeconfig } = await openClusterSecrets(database.db, box, cluster);
    const result = await bounded('destroy', UP_TIMEOUT_MS, (signal) => stack.destroy({ onOutput, signal }));
    assert.equal(result.summary.result, 'succeeded', log.join(''));
    for (const objectPath of [
      '/api/v1/namespaces/woolly-system/serviceaccounts/woolly-provisioner',
      '/apis/rbac.authorization.k8s.io/v1/clusterroles/woolly-provisioner',
      '/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/woolly-provisioner',
      '/apis/cert-manager.io/v1/clusterissuers/letsencrypt-staging',
    ]) {
      assert.equal((await kubeRequest(server, 'GET', objectPath)).status, 404, objectPath);
    }
    // No namespace controller here to empty and remove them; a real cluster finishes the job.
    for (const namespace of ['woolly-system', 'ingress-nginx', 'cert-manager']) {
      const found = await kubeRequest(server, 'GET', `/api/v1/namespaces/${namespace}`);
      const metadata = found.body.metadata as { deletionTimestamp?: string };
      assert.ok(found.status === 404 || metadata.deletionTimestamp, `${namespace} is being deleted`);
    }
    // The token was bound to the deleted ServiceAccount: it stops authenticating once
    // kube-apiserver's token cache (10 s for a success) forgets it.
    const deadline = Date.now() + 30_000;
    for (;;) {
      const { status } = await requestAs(kubeconfig, 'GET', '/api/v1/namespaces');
      if (status === 401) break;
      assert.ok(Date.now() < deadline, `the token still answers ${status} 30 s after destroy`);
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  });
});
