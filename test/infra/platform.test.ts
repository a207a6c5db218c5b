/**
 * The platform stack's program under Pulumi's mocks (pulumi.runtime.setMocks: no CLI, no
 * cluster): what it registers with and without charts, and with which properties.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, it } from 'node:test';
import { DEFAULT_CHARTS, type PlatformInput, platformProgram } from '../../infra/platform.ts';
import type { ResourceView } from '../../infra/policy.ts';
import { provisionerRbac } from '../../provisioner/rbac.ts';
import { find, runProgram } from './mocks.ts';

const KUBECONFIG = 'apiVersion: v1\nkind: Config\n';
const input = (overrides: Partial<PlatformInput> = {}): PlatformInput => ({
  adminKubeconfig: KUBECONFIG,
  acme: { email: 'ops@example.net', server: 'production' },
  charts: DEFAULT_CHARTS,
  ...overrides,
});

const run = (platform: PlatformInput) => runProgram(platformProgram(platform));

const KUBERNETES_OBJECTS = [
  'kubernetes:core/v1:Namespace cert-manager',
  'kubernetes:core/v1:Namespace ingress-nginx',
  'kubernetes:core/v1:Namespace woolly-system',
  'kubernetes:core/v1:ServiceAccount woolly-provisioner',
  'kubernetes:cert-manager.io/v1:ClusterIssuer cluster-issuer',
  'kubernetes:rbac.authorization.k8s.io/v1:ClusterRole woolly-provisioner',
  'kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding woolly-provisioner',
];
const RELEASES = [
  'kubernetes:helm.sh/v3:Release cert-manager',
  'kubernetes:helm.sh/v3:Release ingress-nginx',
  'kubernetes:helm.sh/v3:Release metrics-server',
];
const names = (resources: ResourceView[]) =>
  resources.map((resource) => `${resource.type} ${resource.name}`).sort();

describe('the platform program', () => {
  it('registers the namespaces, charts, ClusterIssuer and the provisioner’s identity through the admin provider', async () => {
    const { resources, outputs } = await run(input());
    assert.deepEqual(
      names(resources),
      ['pulumi:providers:kubernetes admin', ...KUBERNETES_OBJECTS, ...RELEASES].sort(),
    );
    const provider = find(resources, 'pulumi:providers:kubernetes', 'admin');
    assert.equal(provider.enableServerSideApply, 'true');
    const certManager = find(resources, 'kubernetes:helm.sh/v3:Release', 'cert-manager');
    assert.deepEqual(
      [certManager.repositoryOpts.repo, certManager.version, certManager.namespace],
      [DEFAULT_CHARTS.certManager.repo, DEFAULT_CHARTS.certManager.version, 'cert-manager'],
    );
    assert.equal(certManager.values.crds.enabled, true);
    const ingress = find(resources, 'kubernetes:helm.sh/v3:Release', 'ingress-nginx');
    assert.equal(ingress.values.controller.ingressClassResource.name, 'nginx');
    assert.deepEqual(outputs, {
      serviceAccount: { name: 'woolly-provisioner', namespace: 'woolly-system' },
      ingressClassName: 'nginx',
      clusterIssuer: 'letsencrypt',
    });
  });

  it('installs no chart when charts is null, and keeps everything else', async () => {
    const { resources } = await run(input({ charts: null }));
    assert.deepEqual(names(resources), ['pulumi:providers:kubernetes admin', ...KUBERNETES_OBJECTS].sort());
  });

  it('binds the ServiceAccount to exactly the rules of provisionerRbac', async () => {
    const { resources } = await run(input({ charts: null }));
    const [role, binding] = provisionerRbac({
      kind: 'ServiceAccount',
      name: 'woolly-provisioner',
      namespace: 'woolly-system',
    });
    const registeredRole = find(
      resources,
      'kubernetes:rbac.authorization.k8s.io/v1:ClusterRole',
      'woolly-provisioner',
    );
    assert.deepEqual(registeredRole.rules, role?.rules);
    const registeredBinding = find(
      resources,
      'kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding',
      'woolly-provisioner',
    );
    assert.deepEqual(
      [registeredBinding.roleRef, registeredBinding.subjects],
      [binding?.roleRef, binding?.subjects],
    );
    const account = find(resources, 'kubernetes:core/v1:ServiceAccount', 'woolly-provisioner');
    assert.deepEqual(
      [account.metadata.namespace, account.automountServiceAccountToken],
      ['woolly-system', false],
    );
  });

  it('issues through ACME HTTP-01 on the ingress class, with the operator’s e-mail', async () => {
    const { resources, outputs } = await run(
      input({ acme: { email: 'certs@example.org', server: 'staging' }, ingressClassName: 'public' }),
    );
    const issuer = find(resources, 'kubernetes:cert-manager.io/v1:ClusterIssuer', 'cluster-issuer');
    assert.equal(issuer.metadata.name, 'letsencrypt-staging');
    assert.equal(issuer.spec.acme.email, 'certs@example.org');
    assert.equal(issuer.spec.acme.server, 'https://acme-staging-v02.api.letsencrypt.org/directory');
    assert.deepEqual(issuer.spec.acme.solvers, [{ http01: { ingress: { ingressClassName: 'public' } } }]);
    const ingress = find(resources, 'kubernetes:helm.sh/v3:Release', 'ingress-nginx');
    assert.equal(ingress.values.controller.ingressClassResource.name, 'public');
    assert.deepEqual(outputs, {
      serviceAccount: { name: 'woolly-provisioner', namespace: 'woolly-system' },
      ingressClassName: 'public',
      clusterIssuer: 'letsencrypt-staging',
    });
  });

  it('labels every object it creates as part of woolly, the charts’ objects included', async () => {
    const { resources } = await run(input());
    for (const resource of resources) {
      // biome-ignore lint/suspicious/noExplicitAny: reading labels off registered inputs.
      const inputs = resource.inputs as Record<string, any>;
      if (resource.type === 'pulumi:providers:kubernetes') continue;
      const labels =
        resource.type === 'kubernetes:helm.sh/v3:Release'
          ? (inputs.values.commonLabels ?? inputs.values.global.commonLabels)
          : inputs.metadata.labels;
      assert.equal(labels?.['app.kubernetes.io/part-of'], 'woolly', `${resource.type} ${resource.name}`);
    }
  });
});

describe('woolly cluster bootstrap', () => {
  it('refuses a file it cannot read with one line, before touching the cluster', () => {
    const args = [
      'cluster',
      'bootstrap',
      '--name',
      'fra1',
      '--region',
      'eu-central',
      '--kubeconfig',
      '/nonexistent/kubeconfig',
      '--database-admin-url-file',
      '/nonexistent/url',
      '--acme-email',
      'ops@example.net',
    ];
    const result = spawnSync(process.execPath, ['--import', 'tsx', 'bin/woolly.ts', ...args], {
      cwd: path.resolve(import.meta.dirname, '..', '..'),
      env: { PATH: process.env.PATH },
      encoding: 'utf8',
    });
    assert.deepEqual(
      [result.status, result.stdout, result.stderr],
      [2, '', 'woolly: cannot read /nonexistent/kubeconfig: ENOENT\n'],
    );
  });
});
