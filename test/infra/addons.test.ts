/**
 * The in-cluster add-on programs under Pulumi's mocks (pulumi.runtime.setMocks: no CLI, no
 * cluster): the resources each registers with their properties, per plan, and Woolly's policy
 * rules over them, which catch deliberately broken variants.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PLAN_CATALOG } from '../../core/domain/catalog.ts';
import { objectStorageInCluster, searchInCluster } from '../../infra/addons/in-cluster.ts';
import { checkResources } from '../../infra/policy.ts';
import { find, owner, run } from './mocks.ts';

/** What a program registered. */
const resourcesOf = async (program: Parameters<typeof run>[0]) => (await run(program)).resources;

describe('object storage in the cluster', () => {
  for (const plan of PLAN_CATALOG) {
    it(`registers a MinIO StatefulSet, Service, Secret and bucket Job, sized for ${plan.code}, that pass every rule`, async () => {
      const resources = await resourcesOf(() =>
        objectStorageInCluster(owner, {
          domain: 'social.example.org',
          limits: plan.limits,
          credentials: { accessKey: 'woolly', secretKey: 's3cr3t-value' },
        }),
      );
      assert.deepEqual(resources.map((resource) => resource.type).sort(), [
        'kubernetes:apps/v1:StatefulSet',
        'kubernetes:batch/v1:Job',
        'kubernetes:core/v1:Secret',
        'kubernetes:core/v1:Service',
        'kubernetes:networking.k8s.io/v1:NetworkPolicy',
        'kubernetes:networking.k8s.io/v1:NetworkPolicy',
      ]);
      const set = find(resources, 'kubernetes:apps/v1:StatefulSet', 'object-storage');
      assert.equal(
        set.spec.volumeClaimTemplates[0].spec.resources.requests.storage,
        `${plan.limits.storageGb}Gi`,
      );
      assert.equal(set.metadata.namespace, owner.namespace);
      const job = JSON.stringify(find(resources, 'kubernetes:batch/v1:Job', 'object-storage-bucket'));
      assert.match(job, /mc mb --ignore-existing \\"woolly\/mastodon\\"/);
      assert.match(job, /mc anonymous set download \\"woolly\/mastodon\/media_attachments\\"/);
      assert.deepEqual(checkResources(resources, plan.limits), []);
    });
  }
});

describe('search in the cluster', () => {
  it('registers a single-node OpenSearch reachable only inside the cluster, heap half its memory', async () => {
    const large = PLAN_CATALOG.find((plan) => plan.code === 'large');
    assert.ok(large);
    const resources = await resourcesOf(() =>
      searchInCluster(owner, { limits: large.limits, password: 'Str0ng-pass!' }),
    );
    const container = find(resources, 'kubernetes:apps/v1:StatefulSet', 'search').spec.template.spec
      .containers[0];
    const env = Object.fromEntries(
      container.env.map((entry: { name: string; value: string }) => [entry.name, entry.value]),
    );
    assert.equal(env['discovery.type'], 'single-node');
    const memory = Number.parseInt(container.resources.limits.memory, 10);
    assert.equal(env.OPENSEARCH_JAVA_OPTS, `-Xms${memory / 2}m -Xmx${memory / 2}m`);
    assert.equal(find(resources, 'kubernetes:core/v1:Service', 'search').spec.type, 'ClusterIP');
    assert.deepEqual(checkResources(resources, large.limits), []);
  });
});

describe('the policy rules catch broken variants', () => {
  const limits = PLAN_CATALOG[0]?.limits;
  assert.ok(limits);
  const compliant = async () =>
    resourcesOf(() =>
      objectStorageInCluster(owner, {
        domain: 'social.example.org',
        limits,
        credentials: { accessKey: 'a', secretKey: 'b' },
      }),
    );

  it('a bucket anyone may write to', async () => {
    const resources = await compliant();
    const broken = resources.map((resource) =>
      resource.type === 'kubernetes:batch/v1:Job'
        ? {
            ...resource,
            inputs: JSON.parse(JSON.stringify(resource.inputs).replaceAll('set download', 'set public')),
          }
        : resource,
    );
    assert.deepEqual(
      checkResources(broken, limits).map((violation) => violation.rule),
      ['no-public-write'],
    );
  });

  it('a resource without its tenant and instance labels', async () => {
    const resources = await compliant();
    const broken = resources.map((resource) =>
      resource.type === 'kubernetes:core/v1:Secret'
        ? { ...resource, inputs: { ...resource.inputs, metadata: { name: 'x', labels: {} } } }
        : resource,
    );
    const violations = checkResources(broken, limits);
    assert.deepEqual(
      violations.map((violation) => [violation.rule, violation.resource]),
      [['tagged-with-tenant-and-instance', 'kubernetes:core/v1:Secret object-storage-credentials']],
    );
  });

  it('a Service opened to the internet, and a volume beyond the plan', async () => {
    const resources = await compliant();
    const broken = resources.map((resource) => {
      if (resource.type === 'kubernetes:core/v1:Service') {
        return { ...resource, inputs: { ...resource.inputs, spec: { type: 'LoadBalancer' } } };
      }
      if (resource.type === 'kubernetes:apps/v1:StatefulSet') {
        // biome-ignore lint/suspicious/noExplicitAny: a deliberate edit deep in the registered inputs.
        const inputs = structuredClone(resource.inputs) as Record<string, any>;
        inputs.spec.volumeClaimTemplates[0].spec.resources.requests.storage = `${limits.storageGb + 1}Gi`;
        return { ...resource, inputs };
      }
      return resource;
    });
    assert.deepEqual(
      checkResources(broken, limits)
        .map((violation) => violation.rule)
        .sort(),
      ['not-exposed', 'storage-within-plan'],
    );
  });
});
