/**
 * The AWS add-on programs and the DNS program under Pulumi's mocks (no CLI, no account): the
 * resources each registers with their properties, per plan, the settings they hand Mastodon,
 * and Woolly's policy rules over them, which catch deliberately broken variants.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as pulumi from '@pulumi/pulumi';
import { PLAN_CATALOG, type PlanLimits } from '../../core/domain/catalog.ts';
import { awsProvider, objectStorageAws, searchAws } from '../../infra/addons/aws.ts';
import { dnsRecords } from '../../infra/addons/dns.ts';
import { type AwsAddonSettings, INSTANCE_LABEL, TENANT_LABEL } from '../../infra/addons/types.ts';
import { checkResources, type ResourceView } from '../../infra/policy.ts';
import {
  ACCESS_KEY_ID,
  ACCOUNT_ID,
  edited,
  find,
  owner,
  type Registered,
  run,
  SECRET_ACCESS_KEY,
  searchEndpointFor,
  sentAsSecret,
} from './mocks.ts';

const settings: AwsAddonSettings = {
  region: 'eu-central-1',
  egressCidrs: ['203.0.113.0/24', '198.51.100.7/32'],
  dns: {
    zoneId: 'Z0123456789ABCDEFGHIJ',
    zoneName: 'woolly.social',
    ingressHostname: 'lb-1.elb.example.com',
  },
};
const domains = ['chess.woolly.social', 'chess.example'];
/** Where Mastodon keeps what visitors see (lib/paperclip and Mastodon's S3 docs). */
const MEDIA_PREFIXES = ['accounts', 'cache', 'custom_emojis', 'media_attachments', 'site_uploads'];
const BUCKET = 'woolly-mastodon-3f2b9c4e1a7d';
const BUCKET_ARN = `arn:aws:s3:::${BUCKET}`;
/** Memory of the OpenSearch instance types, from AWS's instance type list. */
const SEARCH_INSTANCE_MEMORY_GIB: Record<string, number> = {
  't3.small.search': 2,
  't3.medium.search': 4,
  'm6g.large.search': 8,
  'r6g.large.search': 16,
};

const TYPES = {
  bucket: 'aws:s3/bucket:Bucket',
  bucketPolicy: 'aws:s3/bucketPolicy:BucketPolicy',
  publicAccessBlock: 'aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock',
  ownership: 'aws:s3/bucketOwnershipControls:BucketOwnershipControls',
  cors: 'aws:s3/bucketCorsConfiguration:BucketCorsConfiguration',
  lifecycle: 'aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration',
  encryption: 'aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration',
  user: 'aws:iam/user:User',
  userPolicy: 'aws:iam/userPolicy:UserPolicy',
  accessKey: 'aws:iam/accessKey:AccessKey',
  domain: 'aws:opensearch/domain:Domain',
  record: 'aws:route53/record:Record',
  provider: 'pulumi:providers:aws',
};

const credentials = { accessKeyId: 'AKIAWOOLLYPLATFORM00', secretAccessKey: 'platform-secret' };

function objectStorage(limits: PlanLimits, account: AwsAddonSettings = settings) {
  return run(() => {
    const provider = awsProvider('account', account, credentials);
    const program = objectStorageAws(owner, { domains, limits, settings: account }, { provider });
    return { resources: { provider, ...program.resources }, outputs: program.outputs };
  });
}

function search(limits: PlanLimits, account: AwsAddonSettings = settings) {
  return run(() => {
    const provider = awsProvider('account', account, credentials);
    const program = searchAws(owner, { limits, settings: account, password: 'Str0ng-pass!' }, { provider });
    return { resources: { provider, ...program.resources }, outputs: program.outputs };
  });
}

function dns(domain: string) {
  const zone = settings.dns;
  assert.ok(zone);
  return run(() => {
    const provider = awsProvider('account', settings, credentials);
    const program = dnsRecords(owner, { domain, settings: zone }, { provider });
    return { resources: { provider, ...program.resources }, outputs: program.outputs };
  });
}

const cloudResources = (resources: Registered[]) =>
  resources.filter((resource) => resource.type !== TYPES.provider);

const statementsOf = (policy: string) =>
  (JSON.parse(policy) as { Statement: Record<string, unknown>[] }).Statement;

const listOf = (value: unknown) => (Array.isArray(value) ? value : [value]);

const rulesBroken = (resources: readonly ResourceView[], limits: PlanLimits) =>
  checkResources(resources, limits).map((violation) => [violation.rule, violation.resource]);

const ownerTags = {
  [TENANT_LABEL]: owner.organizationId,
  [INSTANCE_LABEL]: owner.instanceId,
  'app.kubernetes.io/part-of': 'woolly',
};

describe('object storage on AWS', () => {
  for (const plan of PLAN_CATALOG) {
    it(`registers a private bucket with public read of media only, and a key pair for it alone, for ${plan.code}`, async () => {
      const { resources } = await objectStorage(plan.limits);
      const cloud = cloudResources(resources);
      assert.deepEqual(
        cloud.map((resource) => resource.type).sort(),
        [
          TYPES.accessKey,
          TYPES.userPolicy,
          TYPES.user,
          TYPES.bucket,
          TYPES.cors,
          TYPES.lifecycle,
          TYPES.ownership,
          TYPES.bucketPolicy,
          TYPES.publicAccessBlock,
          TYPES.encryption,
        ].sort(),
      );
      for (const resource of cloud) {
        assert.match(
          resource.provider ?? '',
          /::pulumi:providers:aws::account::/,
          `${resource.type} provider`,
        );
      }

      const bucket = find(resources, TYPES.bucket, 'media');
      assert.equal(bucket.bucket, BUCKET);
      assert.match(bucket.bucket, /^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$/);
      for (const type of [TYPES.bucket, TYPES.user]) {
        assert.deepEqual(
          Object.fromEntries(
            Object.keys(ownerTags).map((key) => [key, find(resources, type, 'media').tags?.[key]]),
          ),
          ownerTags,
          `${type} tags`,
        );
      }
      for (const type of [
        TYPES.bucketPolicy,
        TYPES.cors,
        TYPES.lifecycle,
        TYPES.encryption,
        TYPES.ownership,
      ]) {
        assert.equal(find(resources, type, 'media').bucket, BUCKET, `${type} is for the media bucket`);
      }

      const publicStatements = statementsOf(find(resources, TYPES.bucketPolicy, 'media').policy);
      assert.ok(publicStatements.length > 0);
      const readable: string[] = [];
      for (const statement of publicStatements) {
        assert.equal(statement.Effect, 'Allow');
        assert.equal(statement.Principal, '*');
        assert.deepEqual(listOf(statement.Action), ['s3:GetObject']);
        readable.push(...listOf(statement.Resource));
      }
      assert.deepEqual(
        readable.sort(),
        MEDIA_PREFIXES.map((prefix) => `${BUCKET_ARN}/${prefix}/*`),
      );

      const block = find(resources, TYPES.publicAccessBlock, 'media');
      assert.equal(block.ignorePublicAcls, true, 'object ACLs never make anything public');
      assert.equal(block.blockPublicPolicy, false, 'the public-read policy can be set');

      const [corsRule, ...otherCorsRules] = find(resources, TYPES.cors, 'media').corsRules;
      assert.deepEqual(otherCorsRules, []);
      assert.deepEqual(corsRule.allowedOrigins, ['https://chess.woolly.social', 'https://chess.example']);
      assert.deepEqual([...corsRule.allowedMethods].sort(), ['GET', 'HEAD']);

      const lifecycle: {
        status: string;
        filter?: { prefix?: string };
        expiration?: { days: number };
        abortIncompleteMultipartUpload?: { daysAfterInitiation: number };
      }[] = find(resources, TYPES.lifecycle, 'media').rules;
      const cacheRule = lifecycle.find((rule) => rule.filter?.prefix === 'cache/');
      assert.ok(cacheRule, 'a rule for cache/');
      assert.equal(cacheRule.status, 'Enabled');
      const cacheDays = cacheRule.expiration?.days ?? 0;
      assert.ok(cacheDays > 0 && cacheDays <= 30, `cache/ expires after ${cacheDays} days`);
      const abortRule = lifecycle.find((rule) => rule.abortIncompleteMultipartUpload);
      assert.ok(abortRule, 'a rule aborting incomplete uploads');
      assert.equal(abortRule.filter?.prefix, undefined, 'for the whole bucket');

      const [sse] = find(resources, TYPES.encryption, 'media').rules;
      assert.equal(sse.applyServerSideEncryptionByDefault.sseAlgorithm, 'AES256');

      const userName = find(resources, TYPES.user, 'media').name;
      assert.equal(find(resources, TYPES.userPolicy, 'media').user, userName);
      assert.equal(find(resources, TYPES.accessKey, 'media').user, userName);
      const granted = statementsOf(find(resources, TYPES.userPolicy, 'media').policy).flatMap((statement) => {
        assert.equal(statement.Effect, 'Allow');
        return listOf(statement.Action).flatMap((action) =>
          listOf(statement.Resource).map((resource) => `${action} ${resource}`),
        );
      });
      assert.deepEqual(granted.sort(), [
        `s3:DeleteObject ${BUCKET_ARN}/*`,
        `s3:GetObject ${BUCKET_ARN}/*`,
        `s3:ListBucket ${BUCKET_ARN}`,
        `s3:PutObject ${BUCKET_ARN}/*`,
        `s3:PutObjectAcl ${BUCKET_ARN}/*`,
      ]);

      assert.deepEqual(checkResources(resources, plan.limits), []);
    });
  }

  it("hands Mastodon the bucket, AWS's regional endpoint, the CDN host and the key pair, its secret kept secret", async () => {
    let secretKept: Promise<boolean> = Promise.resolve(false);
    const { outputs } = await run(() => {
      const provider = awsProvider('account', { ...settings, cdnHost: 'media.chess.example' }, credentials);
      const program = objectStorageAws(
        owner,
        {
          domains,
          limits: PLAN_CATALOG[0]?.limits as PlanLimits,
          settings: { ...settings, cdnHost: 'media.chess.example' },
        },
        { provider },
      );
      secretKept = pulumi.isSecret(pulumi.output(program.outputs.secretAccessKey));
      return { resources: { provider, ...program.resources }, outputs: program.outputs };
    });
    assert.deepEqual(outputs, {
      bucket: BUCKET,
      endpoint: 'https://s3.eu-central-1.amazonaws.com',
      region: 'eu-central-1',
      aliasHost: 'media.chess.example',
      accessKeyId: ACCESS_KEY_ID,
      secretAccessKey: SECRET_ACCESS_KEY,
    });
    assert.equal(await secretKept, true);
  });

  it('on an S3-compatible provider, talks path-style to its endpoint and skips the checks only AWS answers', async () => {
    const compatible = { ...settings, s3Endpoint: 'https://fsn1.your-objectstorage.com' };
    const { resources, outputs } = await objectStorage(PLAN_CATALOG[0]?.limits as PlanLimits, compatible);
    assert.equal(outputs.endpoint, 'https://fsn1.your-objectstorage.com');
    assert.equal('aliasHost' in outputs, false);
    const provider = find(resources, TYPES.provider, 'account');
    // Provider configuration travels as strings (JSON for anything not a string).
    assert.deepEqual(JSON.parse(provider.endpoints), [{ s3: 'https://fsn1.your-objectstorage.com' }]);
    for (const flag of [
      's3UsePathStyle',
      'skipCredentialsValidation',
      'skipRequestingAccountId',
      'skipMetadataApiCheck',
      'skipRegionValidation',
    ]) {
      assert.equal(provider[flag], 'true', flag);
    }
    assert.equal(provider.region, 'eu-central-1');
  });

  it('on AWS itself, keeps the default endpoints and every check', async () => {
    const { resources } = await objectStorage(PLAN_CATALOG[0]?.limits as PlanLimits);
    const provider = find(resources, TYPES.provider, 'account');
    assert.equal(provider.endpoints, undefined);
    // The SDK fills in some defaults ('false'); none of the checks may be skipped.
    for (const flag of ['s3UsePathStyle', 'skipCredentialsValidation', 'skipRequestingAccountId']) {
      assert.notEqual(provider[flag], 'true', flag);
    }
  });
});

describe('search on AWS', () => {
  for (const plan of PLAN_CATALOG) {
    it(`registers one encrypted OpenSearch node behind a password, reachable from the cluster only, for ${plan.code}`, async () => {
      const { resources } = await search(plan.limits);
      const cloud = cloudResources(resources);
      assert.deepEqual(
        cloud.map((resource) => resource.type),
        [TYPES.domain],
      );
      assert.match(cloud[0]?.provider ?? '', /::pulumi:providers:aws::account::/);
      const domain = find(resources, TYPES.domain, 'search');
      assert.equal(domain.clusterConfig.instanceCount, 1);
      assert.ok(
        domain.clusterConfig.instanceType in SEARCH_INSTANCE_MEMORY_GIB,
        domain.clusterConfig.instanceType,
      );
      assert.equal(domain.ebsOptions.ebsEnabled, true);
      assert.equal(domain.encryptAtRest.enabled, true);
      assert.equal(domain.nodeToNodeEncryption.enabled, true);
      assert.equal(domain.domainEndpointOptions.enforceHttps, true);
      assert.match(domain.domainEndpointOptions.tlsSecurityPolicy, /^Policy-Min-TLS-1-2/);
      assert.equal(domain.advancedSecurityOptions.enabled, true);
      assert.equal(domain.advancedSecurityOptions.anonymousAuthEnabled, false);
      assert.equal(domain.advancedSecurityOptions.internalUserDatabaseEnabled, true);
      assert.deepEqual(domain.advancedSecurityOptions.masterUserOptions, {
        masterUserName: 'mastodon',
        masterUserPassword: 'Str0ng-pass!',
      });
      assert.ok(
        sentAsSecret(cloud[0]?.raw.advancedSecurityOptions),
        'the master password is sent as a secret',
      );
      for (const statement of statementsOf(domain.accessPolicies)) {
        assert.equal(statement.Effect, 'Allow');
        assert.deepEqual(statement.Condition, {
          IpAddress: { 'aws:SourceIp': ['203.0.113.0/24', '198.51.100.7/32'] },
        });
        assert.equal(
          statement.Resource,
          `arn:aws:es:eu-central-1:${ACCOUNT_ID}:domain/${domain.domainName}/*`,
        );
      }
      assert.match(domain.domainName, /^[a-z][a-z0-9-]{2,27}$/);
      assert.deepEqual(
        Object.fromEntries(Object.keys(ownerTags).map((key) => [key, domain.tags?.[key]])),
        ownerTags,
      );
      assert.deepEqual(checkResources(resources, plan.limits), []);
    });
  }

  it('grows the instance with the plan memory and the index volume with its storage', async () => {
    const plans = [...PLAN_CATALOG].sort((a, b) => a.limits.memoryMib - b.limits.memoryMib);
    const sizes = [];
    for (const plan of plans) {
      const domain = find((await search(plan.limits)).resources, TYPES.domain, 'search');
      sizes.push({
        memoryGib: SEARCH_INSTANCE_MEMORY_GIB[domain.clusterConfig.instanceType] ?? Number.NaN,
        volumeGb: domain.ebsOptions.volumeSize as number,
        storageGb: plan.limits.storageGb,
      });
    }
    for (const [index, size] of sizes.entries()) {
      const previous = sizes[index - 1];
      if (!previous) continue;
      assert.ok(size.memoryGib >= previous.memoryGib, 'instance memory never shrinks as plans grow');
      assert.ok(size.storageGb > previous.storageGb && size.volumeGb > previous.volumeGb, 'volume grows');
    }
    assert.ok(
      (sizes.at(-1)?.memoryGib ?? 0) > (sizes[0]?.memoryGib ?? 0),
      'the largest plan has a bigger node',
    );
    assert.ok(
      sizes.every((size) => size.volumeGb >= 10),
      "OpenSearch's smallest gp3 volume is 10 GiB",
    );
  });

  it("hands Mastodon the domain's endpoint over HTTPS with its user and password, kept secret", async () => {
    let secretKept: Promise<boolean> = Promise.resolve(false);
    const { outputs } = await run(() => {
      const provider = awsProvider('account', settings, credentials);
      const program = searchAws(
        owner,
        { limits: PLAN_CATALOG[1]?.limits as PlanLimits, settings, password: 'Str0ng-pass!' },
        { provider },
      );
      secretKept = pulumi.isSecret(pulumi.output(program.outputs.password));
      return { resources: { provider, ...program.resources }, outputs: program.outputs };
    });
    assert.deepEqual(outputs, {
      host: searchEndpointFor(owner.namespace),
      port: 443,
      scheme: 'https',
      user: 'mastodon',
      password: 'Str0ng-pass!',
    });
    assert.equal(await secretKept, true);
  });

  it('refuses to make a domain when the cluster egress addresses are not configured', () => {
    const provider = awsProvider('account', settings, credentials);
    assert.throws(
      () =>
        searchAws(
          owner,
          {
            limits: PLAN_CATALOG[1]?.limits as PlanLimits,
            settings: { region: 'eu-central-1' },
            password: 'x',
          },
          { provider },
        ),
      (error: Error & { code?: string }) => error.code === 'internal' && /egressCidrs/.test(error.message),
    );
  });
});

describe('DNS records in the zone', () => {
  it('a domain in the zone gets its own CNAME to the ingress, and no target', async () => {
    const { resources, outputs } = await dns('chess.woolly.social');
    const records = cloudResources(resources);
    assert.equal(records.length, 1);
    assert.deepEqual(
      {
        ...records[0]?.inputs,
        provider: records[0]?.provider?.includes('::pulumi:providers:aws::account::'),
      },
      {
        zoneId: 'Z0123456789ABCDEFGHIJ',
        name: 'chess.woolly.social',
        type: 'CNAME',
        ttl: 300,
        records: ['lb-1.elb.example.com'],
        provider: true,
      },
    );
    assert.deepEqual(outputs, { records: ['chess.woolly.social CNAME lb-1.elb.example.com'], target: null });
    assert.deepEqual(checkResources(resources, PLAN_CATALOG[0]?.limits as PlanLimits), []);
  });

  it("a community's own domain gets a target name in the zone for it to point at", async () => {
    const { resources, outputs } = await dns('Social.Chess.Example.');
    const target = `${owner.namespace}.woolly.social`;
    const record = find(resources, TYPES.record, 'custom-domain-target');
    assert.equal(record.name, target);
    assert.equal(record.type, 'CNAME');
    assert.deepEqual(record.records, ['lb-1.elb.example.com']);
    assert.deepEqual(outputs, { records: [`${target} CNAME lb-1.elb.example.com`], target });
    assert.deepEqual(checkResources(resources, PLAN_CATALOG[0]?.limits as PlanLimits), []);
  });

  it('a domain that only ends like the zone is a custom domain', async () => {
    const { outputs } = await dns('notwoolly.social');
    assert.equal(outputs.target, `${owner.namespace}.woolly.social`);
  });

  it('the zone apex is refused: a CNAME cannot live there', () => {
    const zone = settings.dns;
    assert.ok(zone);
    const provider = awsProvider('account', settings, credentials);
    assert.throws(
      () => dnsRecords(owner, { domain: 'woolly.social', settings: zone }, { provider }),
      (error: Error & { code?: string }) => error.code === 'unprocessable',
    );
  });
});

describe('the policy rules catch broken AWS variants', () => {
  const limits = PLAN_CATALOG[1]?.limits as PlanLimits;

  it('a bucket policy that lets anyone upload', async () => {
    const { resources } = await objectStorage(limits);
    const broken = edited(resources, TYPES.bucketPolicy, (inputs) => {
      const policy = JSON.parse(inputs.policy);
      policy.Statement.push({
        Effect: 'Allow',
        Principal: { AWS: '*' },
        Action: ['s3:PutObject'],
        Resource: `${BUCKET_ARN}/*`,
      });
      inputs.policy = JSON.stringify(policy);
    });
    assert.deepEqual(rulesBroken(broken, limits), [['no-public-write', `${TYPES.bucketPolicy} media`]]);
  });

  it('a public write is caught even with a condition, and a public-read-write ACL too', async () => {
    const { resources } = await objectStorage(limits);
    const conditioned = edited(resources, TYPES.bucketPolicy, (inputs) => {
      inputs.policy = JSON.stringify({
        Statement: [
          {
            Effect: 'Allow',
            Principal: '*',
            Action: 's3:*',
            Resource: '*',
            Condition: { Bool: { 'aws:SecureTransport': 'true' } },
          },
        ],
      });
    });
    assert.deepEqual(rulesBroken(conditioned, limits), [['no-public-write', `${TYPES.bucketPolicy} media`]]);
    const acl = edited(resources, TYPES.bucket, (inputs) => {
      inputs.acl = 'public-read-write';
    });
    assert.deepEqual(rulesBroken(acl, limits), [['no-public-write', `${TYPES.bucket} media`]]);
  });

  it('a bucket without its tenant and instance tags', async () => {
    const { resources } = await objectStorage(limits);
    const broken = edited(resources, TYPES.bucket, (inputs) => {
      delete inputs.tags;
    });
    assert.deepEqual(rulesBroken(broken, limits), [
      ['tagged-with-tenant-and-instance', `${TYPES.bucket} media`],
    ]);
  });

  it('a bucket without server-side encryption', async () => {
    const { resources } = await objectStorage(limits);
    const broken = resources.filter((resource) => resource.type !== TYPES.encryption);
    assert.deepEqual(rulesBroken(broken, limits), [['encryption-on', `${TYPES.bucket} media`]]);
    const forAnother = edited(resources, TYPES.encryption, (inputs) => {
      inputs.bucket = 'someone-elses-bucket';
    });
    assert.deepEqual(rulesBroken(forAnother, limits), [['encryption-on', `${TYPES.bucket} media`]]);
  });

  it('a search domain open to anyone, or unencrypted', async () => {
    const { resources } = await search(limits);
    const open = edited(resources, TYPES.domain, (inputs) => {
      inputs.accessPolicies = JSON.stringify({
        Statement: [{ Effect: 'Allow', Principal: { AWS: '*' }, Action: 'es:*', Resource: '*' }],
      });
    });
    assert.deepEqual(rulesBroken(open, limits), [['search-not-open', `${TYPES.domain} search`]]);
    const unencrypted = edited(resources, TYPES.domain, (inputs) => {
      inputs.encryptAtRest = { enabled: false };
      inputs.domainEndpointOptions = { enforceHttps: true, tlsSecurityPolicy: 'Policy-Min-TLS-1-0-2019-07' };
    });
    const [violation, ...others] = checkResources(unencrypted, limits);
    assert.deepEqual(others, []);
    assert.equal(violation?.rule, 'encryption-on');
    assert.match(violation?.message ?? '', /encryption at rest/);
    assert.match(violation?.message ?? '', /TLS 1\.2/);
  });

  it('a search volume beyond the plan', async () => {
    const starter = PLAN_CATALOG.find((plan) => plan.code === 'starter')?.limits as PlanLimits;
    const large = PLAN_CATALOG.find((plan) => plan.code === 'large')?.limits as PlanLimits;
    const { resources } = await search(large);
    // The large plan's volume, checked against the starter plan.
    assert.deepEqual(rulesBroken(resources, starter), [['storage-within-plan', `${TYPES.domain} search`]]);
    const oversized = edited(resources, TYPES.domain, (inputs) => {
      inputs.ebsOptions.volumeSize = large.storageGb;
    });
    assert.deepEqual(rulesBroken(oversized, large), [['storage-within-plan', `${TYPES.domain} search`]]);
  });
});
