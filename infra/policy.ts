/**
 * Woolly's infrastructure rules, as plain functions over the resources a program registers
 * (type, name and inputs), so they run over mocked programs in the tests with no Pulumi CLI;
 * the policy pack in infra/policy-pack/ wraps the same functions for
 * `pulumi preview --policy-pack`. Each rule looks at one resource at a time, with the whole
 * stack at hand for rules that relate two resources (a bucket and its encryption settings).
 */
import type { PlanLimits } from '../core/domain/catalog.ts';
import { INSTANCE_LABEL, TENANT_LABEL } from './addons/types.ts';

/** One registered resource, as the mocks (or a policy pack's stack validation) see it. */
export interface ResourceView {
  type: string;
  name: string;
  inputs: Record<string, unknown>;
}

export interface Violation {
  rule: string;
  resource: string;
  message: string;
}

/** What a rule may consult besides the resource: the plan, and every resource of the stack. */
export interface RuleContext {
  limits: PlanLimits;
  resources: readonly ResourceView[];
}

export interface Rule {
  /** What the rule asks for, as the policy pack shows it. */
  description: string;
  /** Whether the rule reads `context.limits` (the policy pack then asks for the plan). */
  usesPlan?: boolean;
  /** Why `resource` breaks the rule, or null when it does not (or the rule does not apply). */
  check: (resource: ResourceView, context: RuleContext) => string | null;
}

const BUCKET_TYPES = new Set(['aws:s3/bucket:Bucket', 'aws:s3/bucketV2:BucketV2']);
const BUCKET_ENCRYPTION_TYPES = new Set([
  'aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration',
  'aws:s3/bucketServerSideEncryptionConfigurationV2:BucketServerSideEncryptionConfigurationV2',
]);
const BUCKET_ACL_TYPES = new Set(['aws:s3/bucketAcl:BucketAcl', 'aws:s3/bucketAclV2:BucketAclV2']);
const SEARCH_DOMAIN_TYPES = new Set(['aws:opensearch/domain:Domain', 'aws:elasticsearch/domain:Domain']);
const SEARCH_POLICY_TYPES = new Set([
  'aws:opensearch/domainPolicy:DomainPolicy',
  'aws:elasticsearch/domainPolicy:DomainPolicy',
]);
/**
 * AWS resources that have no tags. Any other `aws:*` type must carry the owner tags, so a type
 * missing here fails loudly rather than slipping through untagged.
 */
const UNTAGGABLE_AWS_TYPES = new Set([
  ...BUCKET_ENCRYPTION_TYPES,
  ...BUCKET_ACL_TYPES,
  ...SEARCH_POLICY_TYPES,
  'aws:s3/bucketPolicy:BucketPolicy',
  'aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock',
  'aws:s3/bucketOwnershipControls:BucketOwnershipControls',
  'aws:s3/bucketCorsConfiguration:BucketCorsConfiguration',
  'aws:s3/bucketCorsConfigurationV2:BucketCorsConfigurationV2',
  'aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration',
  'aws:s3/bucketLifecycleConfigurationV2:BucketLifecycleConfigurationV2',
  'aws:s3/bucketVersioning:BucketVersioning',
  'aws:iam/accessKey:AccessKey',
  'aws:iam/userPolicy:UserPolicy',
  // Route 53 tags only zones and health checks; a record's name says whose it is.
  'aws:route53/record:Record',
]);
/** Grants that let anyone (or any AWS account) change a bucket. */
const PUBLIC_GRANTEES = /\/global\/(AllUsers|AuthenticatedUsers)$/;
const WRITE_PERMISSIONS = new Set(['WRITE', 'WRITE_ACP', 'FULL_CONTROL']);
/** TLS security policies of OpenSearch that refuse anything older than TLS 1.2. */
const TLS_1_2_POLICY = /^Policy-Min-TLS-1-2/;

const labelsOf = (resource: ResourceView) =>
  (resource.inputs.metadata as { labels?: Record<string, string> } | undefined)?.labels ?? {};
const tagsOf = (resource: ResourceView) => (resource.inputs.tags as Record<string, string> | undefined) ?? {};

/** Bytes in a Kubernetes quantity like `10Gi` or `512Mi` (the binary suffixes Woolly writes). */
function bytesOf(quantity: string): number {
  const match = /^(\d+)(Ki|Mi|Gi|Ti)?$/.exec(quantity);
  if (!match) return Number.NaN;
  const power = { Ki: 1, Mi: 2, Gi: 3, Ti: 4 }[match[2] ?? ''] ?? 0;
  return Number(match[1]) * 1024 ** power;
}

/** The index volume a plan's search domain may have: a quarter of its media storage, at least 10 GiB. */
export function searchVolumeCapGb(limits: PlanLimits): number {
  return Math.max(10, Math.ceil(limits.storageGb / 4));
}

interface PolicyStatement {
  Effect?: string;
  Principal?: unknown;
  NotPrincipal?: unknown;
  Action?: string | string[];
  NotAction?: string | string[];
  Condition?: Record<string, unknown>;
}

/** The statements of an IAM-style policy document, given as JSON text or as an object. */
function statementsOf(document: unknown): PolicyStatement[] {
  if (document === undefined || document === null || document === '') return [];
  const parsed = typeof document === 'string' ? JSON.parse(document) : document;
  const statement = (parsed as { Statement?: PolicyStatement | PolicyStatement[] }).Statement ?? [];
  return Array.isArray(statement) ? statement : [statement];
}

const listOf = <T>(value: T | T[] | undefined): T[] =>
  value === undefined ? [] : Array.isArray(value) ? value : [value];

/** An Allow statement anyone may use: Principal `*`, `{AWS: '*'}`, or everyone but some. */
function isPublicAllow(statement: PolicyStatement): boolean {
  if (statement.Effect !== 'Allow') return false;
  if (statement.NotPrincipal !== undefined) return true;
  const principal = statement.Principal;
  if (principal === '*') return true;
  const aws = (principal as { AWS?: string | string[] } | undefined)?.AWS;
  return listOf(aws).includes('*');
}

/** `s3:Get…` and `s3:List…` only read; anything else (or `NotAction`) may write. */
const isReadOnly = (statement: PolicyStatement) =>
  statement.NotAction === undefined &&
  listOf(statement.Action).every((action) => /^s3:(get|list)[a-z]*\*?$/i.test(action));

const hasCondition = (statement: PolicyStatement) =>
  statement.Condition !== undefined && Object.keys(statement.Condition).length > 0;

function publicWriteIn(resource: ResourceView): string | null {
  const acl = resource.inputs.acl;
  if (acl === 'public-read-write' || acl === 'authenticated-read-write') {
    return `its ${acl} ACL lets anyone write`;
  }
  const grants =
    (
      resource.inputs.accessControlPolicy as
        | { grants?: { grantee?: { uri?: string }; permission?: string }[] }
        | undefined
    )?.grants ?? [];
  if (
    grants.some(
      (grant) =>
        PUBLIC_GRANTEES.test(grant.grantee?.uri ?? '') && WRITE_PERMISSIONS.has(grant.permission ?? ''),
    )
  ) {
    return 'its ACL grants write to all users';
  }
  const writable = statementsOf(resource.inputs.policy).find(
    (statement) => isPublicAllow(statement) && !isReadOnly(statement),
  );
  return writable
    ? `its policy lets anyone ${listOf(writable.Action ?? writable.NotAction).join(', ')}`
    : null;
}

/** What is missing from a search domain's encryption, or an empty list. */
function unencryptedParts(inputs: Record<string, unknown>): string[] {
  const enabled = (key: string) => (inputs[key] as { enabled?: boolean } | undefined)?.enabled === true;
  const endpoint = inputs.domainEndpointOptions as
    | { enforceHttps?: boolean; tlsSecurityPolicy?: string }
    | undefined;
  return [
    enabled('encryptAtRest') ? null : 'encryption at rest',
    enabled('nodeToNodeEncryption') ? null : 'node-to-node encryption',
    endpoint?.enforceHttps === true ? null : 'enforced HTTPS',
    TLS_1_2_POLICY.test(endpoint?.tlsSecurityPolicy ?? '') ? null : 'TLS 1.2 at least',
  ].filter((part) => part !== null);
}

/** Whether the stack holds a default-encryption configuration for the bucket named `bucket`. */
function hasEncryptionFor(bucket: string, resources: readonly ResourceView[]): boolean {
  return resources.some((resource) => {
    if (!BUCKET_ENCRYPTION_TYPES.has(resource.type) || resource.inputs.bucket !== bucket) return false;
    const rules =
      (resource.inputs.rules as { applyServerSideEncryptionByDefault?: { sseAlgorithm?: string } }[]) ?? [];
    return rules.some((rule) => Boolean(rule.applyServerSideEncryptionByDefault?.sseAlgorithm));
  });
}

export const RULES: Record<string, Rule> = {
  'tagged-with-tenant-and-instance': {
    description:
      'Every resource says whose it is: Kubernetes labels, or AWS tags, naming the tenant (organization) and the instance.',
    check: (resource) => {
      if (resource.type.startsWith('pulumi:')) return null;
      if (resource.type.startsWith('aws:')) {
        if (UNTAGGABLE_AWS_TYPES.has(resource.type)) return null;
        const tags = tagsOf(resource);
        return tags[TENANT_LABEL] && tags[INSTANCE_LABEL]
          ? null
          : `missing the ${TENANT_LABEL} and ${INSTANCE_LABEL} tags`;
      }
      const labels = labelsOf(resource);
      return labels[TENANT_LABEL] && labels[INSTANCE_LABEL]
        ? null
        : `missing the ${TENANT_LABEL} and ${INSTANCE_LABEL} labels`;
    },
  },
  'not-exposed': {
    description: 'Nothing in an add-on is reachable from outside the cluster through Kubernetes.',
    check: (resource) => {
      if (resource.type === 'kubernetes:core/v1:Service') {
        const type = (resource.inputs.spec as { type?: string } | undefined)?.type ?? 'ClusterIP';
        return type === 'ClusterIP' ? null : `a ${type} Service exposes it outside the cluster`;
      }
      return resource.type === 'kubernetes:networking.k8s.io/v1:Ingress' ? 'an Ingress exposes it' : null;
    },
  },
  'no-public-write': {
    description:
      'Anonymous access to a bucket is read-only ("download"): no policy statement or ACL lets anyone write.',
    check: (resource) => {
      if (resource.type === 'kubernetes:batch/v1:Job') {
        const text = JSON.stringify(resource.inputs);
        return /mc anonymous set (upload|public)/.test(text) ? 'grants anonymous write to a bucket' : null;
      }
      if (
        BUCKET_TYPES.has(resource.type) ||
        BUCKET_ACL_TYPES.has(resource.type) ||
        resource.type === 'aws:s3/bucketPolicy:BucketPolicy'
      ) {
        return publicWriteIn(resource);
      }
      return null;
    },
  },
  'encryption-on': {
    description:
      'Data is encrypted at rest and in transit: every bucket has default encryption, every search domain encrypts at rest, between nodes, and over TLS 1.2 only.',
    check: (resource, { resources }) => {
      if (BUCKET_TYPES.has(resource.type)) {
        if (resource.inputs.serverSideEncryptionConfiguration) return null;
        const bucket = resource.inputs.bucket;
        // S3 encrypts new objects by default, but S3-compatible providers need asking.
        if (typeof bucket !== 'string') return 'has no explicit name, so its encryption cannot be checked';
        return hasEncryptionFor(bucket, resources) ? null : 'has no server-side encryption configuration';
      }
      if (SEARCH_DOMAIN_TYPES.has(resource.type)) {
        const missing = unencryptedParts(resource.inputs);
        return missing.length === 0 ? null : `lacks ${missing.join(', ')}`;
      }
      return null;
    },
  },
  'search-not-open': {
    description:
      "A search domain's access policy never lets anyone in without a condition, and anonymous access is off.",
    check: (resource) => {
      if (!SEARCH_DOMAIN_TYPES.has(resource.type) && !SEARCH_POLICY_TYPES.has(resource.type)) return null;
      const security = resource.inputs.advancedSecurityOptions as
        | { anonymousAuthEnabled?: boolean }
        | undefined;
      if (security?.anonymousAuthEnabled === true) return 'anonymous access is enabled';
      const open = statementsOf(resource.inputs.accessPolicies).some(
        (statement) => isPublicAllow(statement) && !hasCondition(statement),
      );
      return open ? 'its access policy lets anyone in (Principal *) with no condition' : null;
    },
  },
  'storage-within-plan': {
    usesPlan: true,
    description:
      "Volumes stay within what the plan includes: the media store within its storage, a search domain's index volume within a quarter of it (10 GiB at least).",
    check: (resource, { limits }) => {
      if (SEARCH_DOMAIN_TYPES.has(resource.type)) {
        const size = (resource.inputs.ebsOptions as { volumeSize?: number } | undefined)?.volumeSize ?? 0;
        const cap = searchVolumeCapGb(limits);
        return size <= cap ? null : `asks for a ${size} GiB index volume, the plan allows ${cap}`;
      }
      if (resource.type !== 'kubernetes:apps/v1:StatefulSet') return null;
      // Search keeps a fixed index volume; the media store is what the plan's storage sizes.
      if (labelsOf(resource)['app.kubernetes.io/component'] !== 'object-storage') return null;
      const templates =
        (
          resource.inputs.spec as {
            volumeClaimTemplates?: { spec?: { resources?: { requests?: { storage?: string } } } }[];
          }
        )?.volumeClaimTemplates ?? [];
      const asked = templates.reduce(
        (sum, template) => sum + bytesOf(template.spec?.resources?.requests?.storage ?? '0'),
        0,
      );
      const allowed = limits.storageGb * 1024 ** 3;
      return asked <= allowed
        ? null
        : `asks for ${asked / 1024 ** 3} GiB, the plan allows ${allowed / 1024 ** 3}`;
    },
  },
};

/** Every rule over every resource, with the whole stack as context; an empty list is compliant. */
export function checkResources(resources: readonly ResourceView[], limits: PlanLimits): Violation[] {
  const context = { limits, resources };
  return resources.flatMap((resource) =>
    Object.entries(RULES).flatMap(([rule, { check }]) => {
      const message = check(resource, context);
      return message ? [{ rule, resource: `${resource.type} ${resource.name}`, message }] : [];
    }),
  );
}
