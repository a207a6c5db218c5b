/**
 * Woolly's infrastructure rules, as plain functions over the resources a program registers
 * (type, name and inputs), so they run over mocked programs in the tests with no Pulumi CLI;
 * a @pulumi/policy pack can wrap the same functions for `pulumi preview --policy-pack`.
 */
import type { PlanLimits } from '../core/domain/catalog.ts';
import { INSTANCE_LABEL, TENANT_LABEL } from './addons/in-cluster.ts';

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

type Rule = (resource: ResourceView, context: { limits: PlanLimits }) => string | null;

const labelsOf = (resource: ResourceView) =>
  (resource.inputs.metadata as { labels?: Record<string, string> } | undefined)?.labels ?? {};

/** Bytes in a Kubernetes quantity like `10Gi` or `512Mi` (the binary suffixes Woolly writes). */
function bytesOf(quantity: string): number {
  const match = /^(\d+)(Ki|Mi|Gi|Ti)?$/.exec(quantity);
  if (!match) return Number.NaN;
  const power = { Ki: 1, Mi: 2, Gi: 3, Ti: 4 }[match[2] ?? ''] ?? 0;
  return Number(match[1]) * 1024 ** power;
}

export const RULES: Record<string, Rule> = {
  /** Every resource says whose it is: the tenant (organization) and the instance. */
  'tagged-with-tenant-and-instance': (resource) => {
    const labels = labelsOf(resource);
    return labels[TENANT_LABEL] && labels[INSTANCE_LABEL]
      ? null
      : `missing the ${TENANT_LABEL} and ${INSTANCE_LABEL} labels`;
  },
  /** Nothing in an add-on is reachable from outside the cluster. */
  'not-exposed': (resource) => {
    if (resource.type === 'kubernetes:core/v1:Service') {
      const type = (resource.inputs.spec as { type?: string } | undefined)?.type ?? 'ClusterIP';
      return type === 'ClusterIP' ? null : `a ${type} Service exposes it outside the cluster`;
    }
    return resource.type === 'kubernetes:networking.k8s.io/v1:Ingress' ? 'an Ingress exposes it' : null;
  },
  /** Anonymous access to a bucket is read-only ("download"), never upload or public. */
  'no-public-write': (resource) => {
    if (resource.type !== 'kubernetes:batch/v1:Job') return null;
    const text = JSON.stringify(resource.inputs);
    return /mc anonymous set (upload|public)/.test(text) ? 'grants anonymous write to a bucket' : null;
  },
  /** Volumes stay within what the plan includes. */
  'storage-within-plan': (resource, { limits }) => {
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
};

/** Every rule over every resource; an empty list is a compliant program. */
export function checkResources(resources: readonly ResourceView[], limits: PlanLimits): Violation[] {
  return resources.flatMap((resource) =>
    Object.entries(RULES).flatMap(([rule, check]) => {
      const message = check(resource, { limits });
      return message ? [{ rule, resource: `${resource.type} ${resource.name}`, message }] : [];
    }),
  );
}
