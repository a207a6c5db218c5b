/**
 * The cloud variants of the add-ons, for a cluster with an AWS account: an S3 bucket (or one
 * on an S3-compatible provider) with a key pair scoped to it, and a single-node OpenSearch
 * domain, sized by the plan. Pulumi programs (@pulumi/aws) that take an explicit provider, so
 * the account they run against is always the one the caller chose; tested with mocks in
 * test/infra/. Their outputs are the same Mastodon settings as the in-cluster variants'.
 */
import * as aws from '@pulumi/aws';
import * as pulumi from '@pulumi/pulumi';
import type { PlanLimits } from '../../core/domain/catalog.ts';
import { AppError } from '../../core/errors.ts';
import {
  type AddonOwner,
  type AwsAddonSettings,
  INSTANCE_LABEL,
  type ObjectStorageOutputs,
  type SearchOutputs,
  TENANT_LABEL,
  type Wired,
} from './types.ts';

/** The prefixes under Mastodon's bucket that visitors may read; everything else is private. */
export const PUBLIC_PREFIXES = ['accounts', 'media_attachments', 'custom_emojis', 'site_uploads', 'cache'];
/** Remote media Mastodon caches; it refetches what it still needs, so old copies can go. */
const CACHE_DAYS = 14;
/** Woolly runs in AWS's commercial partition; ARNs are spelled out so previews can check them. */
const PARTITION = 'aws';
const OPENSEARCH_VERSION = 'OpenSearch_2.19';
const SEARCH_USER = 'mastodon';

/** What every program passes to each resource: the account it runs against. */
export interface AwsResourceOptions {
  provider: aws.Provider;
}

/** Tags naming the owner, on every resource AWS lets us tag. */
export function tagsFor(owner: AddonOwner, component: string): Record<string, string> {
  return {
    'app.kubernetes.io/part-of': 'woolly',
    'app.kubernetes.io/component': component,
    [TENANT_LABEL]: owner.organizationId,
    [INSTANCE_LABEL]: owner.instanceId,
  };
}

/**
 * The account the add-ons are made in. With `s3Endpoint` set the bucket lives on an
 * S3-compatible provider: requests go there with path-style addressing, and the checks that
 * only AWS answers (STS credentials, account id, instance metadata, region names) are skipped.
 */
export function awsProvider(
  name: string,
  settings: AwsAddonSettings,
  /** Null: the worker's own AWS credential chain (environment, profile, IAM role). */
  credentials: { accessKeyId: pulumi.Input<string>; secretAccessKey: pulumi.Input<string> } | null,
) {
  return new aws.Provider(name, {
    region: settings.region,
    ...(credentials
      ? { accessKey: credentials.accessKeyId, secretKey: pulumi.secret(credentials.secretAccessKey) }
      : {}),
    ...(settings.s3Endpoint
      ? {
          endpoints: [{ s3: settings.s3Endpoint }],
          s3UsePathStyle: true,
          skipCredentialsValidation: true,
          skipRequestingAccountId: true,
          skipMetadataApiCheck: true,
          skipRegionValidation: true,
        }
      : {}),
  });
}

/**
 * Mastodon's media bucket: anonymous read on the media prefixes only, through the bucket
 * policy; writes only with the instance's own key pair, whose user may touch this bucket and
 * nothing else. Mastodon uploads with `x-amz-acl: public-read` (S3_PERMISSION), so object ACLs
 * are accepted (ownership stays with the bucket owner) but ignored: what is public is decided
 * by the policy alone. SSE-S3 rather than KMS: S3 refuses anonymous reads of KMS-encrypted
 * objects, and media must be readable without signing.
 */
export function objectStorageAws(
  owner: AddonOwner,
  input: { domains: string[]; limits: PlanLimits; settings: AwsAddonSettings },
  opts: AwsResourceOptions,
) {
  const tags = tagsFor(owner, 'object-storage');
  const options = { provider: opts.provider };
  // Derived from the namespace: unique per instance, lower-case and at most 28 characters.
  const bucketName = `woolly-${owner.namespace}`;
  const bucketArn = `arn:${PARTITION}:s3:::${bucketName}`;

  const bucket = new aws.s3.Bucket('media', { bucket: bucketName, tags }, options);
  const ownership = new aws.s3.BucketOwnershipControls(
    'media',
    { bucket: bucket.bucket, rule: { objectOwnership: 'BucketOwnerPreferred' } },
    options,
  );
  const publicAccessBlock = new aws.s3.BucketPublicAccessBlock(
    'media',
    {
      bucket: bucket.bucket,
      // A public-read ACL on upload is accepted but has no effect...
      blockPublicAcls: false,
      ignorePublicAcls: true,
      // ...while the bucket policy below, the one public grant, is allowed.
      blockPublicPolicy: false,
      restrictPublicBuckets: false,
    },
    options,
  );
  const bucketPolicy = new aws.s3.BucketPolicy(
    'media',
    {
      bucket: bucket.bucket,
      policy: JSON.stringify({
        Version: '2012-10-17',
        Statement: [
          {
            Sid: 'PublicReadOfMedia',
            Effect: 'Allow',
            Principal: '*',
            Action: 's3:GetObject',
            Resource: PUBLIC_PREFIXES.map((prefix) => `${bucketArn}/${prefix}/*`),
          },
        ],
      }),
    },
    // S3 rejects a public policy until the public access block allows one.
    { ...options, dependsOn: [publicAccessBlock] },
  );
  const cors = new aws.s3.BucketCorsConfiguration(
    'media',
    {
      bucket: bucket.bucket,
      corsRules: [
        {
          allowedMethods: ['GET', 'HEAD'],
          allowedOrigins: input.domains.map((domain) => `https://${domain}`),
          maxAgeSeconds: 3600,
        },
      ],
    },
    options,
  );
  const lifecycle = new aws.s3.BucketLifecycleConfiguration(
    'media',
    {
      bucket: bucket.bucket,
      rules: [
        {
          id: 'expire-cached-remote-media',
          status: 'Enabled',
          filter: { prefix: 'cache/' },
          expiration: { days: CACHE_DAYS },
        },
        {
          id: 'abort-incomplete-uploads',
          status: 'Enabled',
          filter: {},
          abortIncompleteMultipartUpload: { daysAfterInitiation: 2 },
        },
      ],
    },
    options,
  );
  const encryption = new aws.s3.BucketServerSideEncryptionConfiguration(
    'media',
    {
      bucket: bucket.bucket,
      rules: [{ applyServerSideEncryptionByDefault: { sseAlgorithm: 'AES256' } }],
    },
    options,
  );

  const user = new aws.iam.User(
    'media',
    { name: `woolly-${owner.namespace}`, path: '/woolly/', tags },
    options,
  );
  const userPolicy = new aws.iam.UserPolicy(
    'media',
    {
      user: user.name,
      name: 'media-bucket',
      policy: JSON.stringify({
        Version: '2012-10-17',
        Statement: [
          { Effect: 'Allow', Action: 's3:ListBucket', Resource: bucketArn },
          {
            Effect: 'Allow',
            Action: ['s3:GetObject', 's3:PutObject', 's3:DeleteObject', 's3:PutObjectAcl'],
            Resource: `${bucketArn}/*`,
          },
        ],
      }),
    },
    options,
  );
  const accessKey = new aws.iam.AccessKey('media', { user: user.name }, options);

  const outputs: Wired<ObjectStorageOutputs> = {
    bucket: bucket.bucket,
    endpoint: input.settings.s3Endpoint ?? `https://s3.${input.settings.region}.amazonaws.com`,
    region: input.settings.region,
    ...(input.settings.cdnHost ? { aliasHost: input.settings.cdnHost } : {}),
    accessKeyId: accessKey.id,
    secretAccessKey: pulumi.secret(accessKey.secret),
  };
  return {
    resources: {
      bucket,
      ownership,
      publicAccessBlock,
      bucketPolicy,
      cors,
      lifecycle,
      encryption,
      user,
      userPolicy,
      accessKey,
    },
    outputs,
  };
}

/** The plan memory (MiB) from which a bigger search instance is used, largest first. */
const SEARCH_INSTANCE_TIERS = [
  { minMemoryMib: 16384, instanceType: 'm6g.large.search' },
  { minMemoryMib: 6144, instanceType: 't3.medium.search' },
];
const SMALLEST_SEARCH_INSTANCE = 't3.small.search';

/**
 * How big a plan's search domain is: the instance grows with the server's memory, the index
 * volume with its media storage (a fifth of it; OpenSearch's gp3 floor is 10 GiB).
 */
export function searchSizeFor(limits: PlanLimits): { instanceType: string; volumeGb: number } {
  const tier = SEARCH_INSTANCE_TIERS.find((candidate) => limits.memoryMib >= candidate.minMemoryMib);
  return {
    instanceType: tier?.instanceType ?? SMALLEST_SEARCH_INSTANCE,
    volumeGb: Math.max(10, Math.round(limits.storageGb / 5)),
  };
}

/**
 * A single-node OpenSearch domain on AWS's public endpoint. Mastodon signs nothing, it sends
 * a user and password, so the resource policy lets any principal in, but only from the
 * cluster's egress addresses, and fine-grained access control checks the password behind it.
 */
export function searchAws(
  owner: AddonOwner,
  input: { limits: PlanLimits; settings: AwsAddonSettings; password: pulumi.Input<string> },
  opts: AwsResourceOptions,
) {
  const egressCidrs = input.settings.egressCidrs ?? [];
  if (egressCidrs.length === 0) {
    throw new AppError(
      'internal',
      'searchAws needs settings.egressCidrs: without them the domain would be open to anyone',
    );
  }
  const options = { provider: opts.provider };
  const { instanceType, volumeGb } = searchSizeFor(input.limits);
  // Unique per instance within the account; 21 characters, under OpenSearch's 28.
  const domainName = owner.namespace;
  const account = aws.getCallerIdentityOutput({}, options);

  const domain = new aws.opensearch.Domain(
    'search',
    {
      domainName,
      engineVersion: OPENSEARCH_VERSION,
      clusterConfig: { instanceType, instanceCount: 1, zoneAwarenessEnabled: false },
      ebsOptions: { ebsEnabled: true, volumeType: 'gp3', volumeSize: volumeGb },
      encryptAtRest: { enabled: true },
      nodeToNodeEncryption: { enabled: true },
      domainEndpointOptions: { enforceHttps: true, tlsSecurityPolicy: 'Policy-Min-TLS-1-2-2019-07' },
      advancedSecurityOptions: {
        enabled: true,
        anonymousAuthEnabled: false,
        internalUserDatabaseEnabled: true,
        masterUserOptions: {
          masterUserName: SEARCH_USER,
          masterUserPassword: pulumi.secret(input.password),
        },
      },
      accessPolicies: account.accountId.apply((accountId) =>
        JSON.stringify({
          Version: '2012-10-17',
          Statement: [
            {
              Effect: 'Allow',
              Principal: { AWS: '*' },
              Action: 'es:ESHttp*',
              Resource: `arn:${PARTITION}:es:${input.settings.region}:${accountId}:domain/${domainName}/*`,
              Condition: { IpAddress: { 'aws:SourceIp': egressCidrs } },
            },
          ],
        }),
      ),
      tags: tagsFor(owner, 'search'),
    },
    options,
  );

  const outputs: Wired<SearchOutputs> = {
    host: domain.endpoint,
    port: 443,
    scheme: 'https',
    user: SEARCH_USER,
    password: pulumi.secret(input.password),
  };
  return { resources: { domain }, outputs };
}
