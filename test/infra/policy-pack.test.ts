/**
 * The `woolly` policy pack's policies, run as the Pulumi CLI would run them (each policy's
 * `validateStack` with the stack's resources and a violation collector) but without the CLI,
 * over the AWS programs registered under Pulumi's mocks.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { PolicyResource, StackValidationArgs, StackValidationPolicy } from '@pulumi/policy';
import { PLAN_CATALOG, type PlanLimits } from '../../core/domain/catalog.ts';
import { awsProvider, objectStorageAws, searchAws } from '../../infra/addons/aws.ts';
import type { AwsAddonSettings } from '../../infra/addons/types.ts';
import type { ResourceView } from '../../infra/policy.ts';
import { woollyPolicies } from '../../infra/policy-pack/woolly-policies.ts';
import { edited, owner, run } from './mocks.ts';

const settings: AwsAddonSettings = { region: 'eu-central-1', egressCidrs: ['203.0.113.0/24'] };
const credentials = { accessKeyId: 'AKIAWOOLLYPLATFORM00', secretAccessKey: 'platform-secret' };
const planLimits = (code: string) => {
  const plan = PLAN_CATALOG.find((candidate) => candidate.code === code);
  assert.ok(plan, code);
  return plan.limits;
};
const urnOf = (resource: ResourceView) => `urn:pulumi:test::woolly::${resource.type}::${resource.name}`;

/** Both AWS add-ons of an instance on `limits`, as one stack. */
async function stack(limits: PlanLimits): Promise<ResourceView[]> {
  const { resources } = await run(() => {
    const provider = awsProvider('account', settings, credentials);
    const storage = objectStorageAws(owner, { domains: ['chess.example'], limits, settings }, { provider });
    const search = searchAws(owner, { limits, settings, password: 'Str0ng-pass!' }, { provider });
    return { resources: { provider, ...storage.resources, ...search.resources }, outputs: {} };
  });
  return resources.map(({ type, name, inputs }) => ({ type, name, inputs }));
}

/** Every policy's violations over `resources`, as `[policy, message, urn]`. */
async function validate(
  policies: StackValidationPolicy[],
  resources: readonly ResourceView[],
  config: object = {},
): Promise<[string, string, string | undefined][]> {
  const reported: [string, string, string | undefined][] = [];
  for (const policy of policies) {
    const args = {
      resources: resources.map(
        (resource) =>
          ({
            type: resource.type,
            name: resource.name,
            urn: urnOf(resource),
            props: resource.inputs,
          }) as unknown as PolicyResource,
      ),
      stackTags: new Map(),
      getConfig: () => config,
      notApplicable: () => {
        throw new Error('not applicable');
      },
    } as unknown as StackValidationArgs;
    await policy.validateStack(args, (message, urn) => reported.push([policy.name, message, urn]));
  }
  return reported;
}

describe('the woolly policy pack', () => {
  it('holds one mandatory stack policy per rule, each described', () => {
    const policies = woollyPolicies(planLimits('starter'));
    assert.deepEqual(policies.map((policy) => policy.name).sort(), [
      'encryption-on',
      'no-public-write',
      'not-exposed',
      'search-not-open',
      'storage-within-plan',
      'tagged-with-tenant-and-instance',
    ]);
    for (const policy of policies) {
      assert.equal(policy.enforcementLevel, 'mandatory', policy.name);
      assert.ok(policy.description.length > 20, policy.name);
    }
  });

  for (const plan of PLAN_CATALOG) {
    it(`reports nothing for the compliant add-ons of a ${plan.code} server`, async () => {
      const resources = await stack(plan.limits);
      assert.ok(resources.length > 5);
      assert.deepEqual(await validate(woollyPolicies(plan.limits), resources), []);
    });
  }

  it('reports a public upload grant, a missing tag and an open search domain, on the resources at fault', async () => {
    const limits = planLimits('community');
    let broken = await stack(limits);
    broken = edited(broken, 'aws:s3/bucketPolicy:BucketPolicy', (inputs) => {
      inputs.policy = JSON.stringify({
        Statement: [{ Effect: 'Allow', Principal: '*', Action: 's3:PutObject', Resource: '*' }],
      });
    });
    broken = edited(broken, 'aws:iam/user:User', (inputs) => {
      inputs.tags = { 'app.kubernetes.io/part-of': 'woolly' };
    });
    broken = edited(broken, 'aws:opensearch/domain:Domain', (inputs) => {
      inputs.accessPolicies = JSON.stringify({
        Statement: [{ Effect: 'Allow', Principal: '*', Action: 'es:*', Resource: '*' }],
      });
    });
    const reported = await validate(woollyPolicies(limits), broken);
    assert.deepEqual(
      reported.sort(),
      [
        [
          'no-public-write',
          'aws:s3/bucketPolicy:BucketPolicy media: its policy lets anyone s3:PutObject',
          'urn:pulumi:test::woolly::aws:s3/bucketPolicy:BucketPolicy::media',
        ],
        [
          'search-not-open',
          'aws:opensearch/domain:Domain search: its access policy lets anyone in (Principal *) with no condition',
          'urn:pulumi:test::woolly::aws:opensearch/domain:Domain::search',
        ],
        [
          'tagged-with-tenant-and-instance',
          'aws:iam/user:User media: missing the woolly.dev/tenant-id and woolly.dev/instance-id tags',
          'urn:pulumi:test::woolly::aws:iam/user:User::media',
        ],
      ].sort(),
    );
  });

  it("without fixed limits, sizes by the plan named in the policy's config, and insists on one", async () => {
    const resources = await stack(planLimits('large'));
    const policies = woollyPolicies();
    const sizing = policies.find((policy) => policy.name === 'storage-within-plan');
    assert.deepEqual(sizing?.configSchema?.required, ['plan']);
    assert.equal(
      policies.filter((policy) => policy.configSchema).length,
      1,
      'only the sizing policy asks for the plan',
    );

    assert.deepEqual(await validate(policies, resources, { plan: 'large' }), []);
    const tooBig = await validate(policies, resources, { plan: 'starter' });
    assert.deepEqual(
      tooBig.map(([policy, , urn]) => [policy, urn]),
      [['storage-within-plan', 'urn:pulumi:test::woolly::aws:opensearch/domain:Domain::search']],
    );
    await assert.rejects(validate(policies, resources), /needs the stack's plan/);
  });
});
