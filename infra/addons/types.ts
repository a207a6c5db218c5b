/**
 * What an instance's add-on stack is made from, and what it gives back: the settings Mastodon
 * needs for each add-on. Both variants (in the cluster, or a cloud account) return the same
 * shapes, so the provisioner never knows which one ran.
 */
import type { Input } from '@pulumi/pulumi';

/** Who an add-on belongs to: every resource is labelled (or tagged) with both ids. */
export interface AddonOwner {
  instanceId: string;
  organizationId: string;
  /** The server's namespace (`namespaceFor(instanceId)`). */
  namespace: string;
}

/** Kubernetes label / cloud tag keys naming the owner; the policy rules require both. */
export const TENANT_LABEL = 'woolly.dev/tenant-id';
export const INSTANCE_LABEL = 'woolly.dev/instance-id';

/** Mastodon's `S3_*` settings and the key pair it signs with, scoped to this bucket only. */
export interface ObjectStorageOutputs {
  bucket: string;
  /** `https://…` (or `http://…` inside the cluster). */
  endpoint: string;
  region: string;
  /** Host media URLs are served from (a CDN in front of the bucket), when there is one. */
  aliasHost?: string;
  accessKeyId: string;
  secretAccessKey: string;
  /**
   * In the cluster only: visitors reach the bucket through the server's own Ingress, on
   * `path` of its domain, served by `service`:`port` in its namespace.
   */
  route?: { path: string; service: string; port: number };
}

/** Mastodon's `ES_*` settings. */
export interface SearchOutputs {
  /** Host name only; `scheme` says whether to speak TLS. */
  host: string;
  port: number;
  scheme: 'http' | 'https';
  user: string;
  password: string;
}

/** DNS records the stack keeps for the instance, and what a custom domain should point at. */
export interface DnsOutputs {
  /** `<fqdn> <type> <value>` of each record. */
  records: string[];
  /** The name a customer's own domain should CNAME to, when the domain is not in our zone. */
  target: string | null;
}

/** A cloud account on AWS (or an S3-compatible provider for the bucket). */
export interface AwsAddonSettings {
  region: string;
  /** An S3-compatible endpoint instead of AWS's (path-style addressing is used then). */
  s3Endpoint?: string;
  /** A CDN host serving the media bucket, `S3_ALIAS_HOST`. */
  cdnHost?: string;
  /**
   * The CIDRs the cluster's traffic leaves from (its NAT gateways): the only sources an
   * OpenSearch domain's access policy lets in. Required by `searchAws`.
   */
  egressCidrs?: string[];
  /** Route 53 zone the instances' records go in, and the ingress they point at. */
  dns?: { zoneId: string; zoneName: string; ingressHostname: string };
}

/** What a program returns for an add-on: each setting may still be a Pulumi output. */
export type Wired<T> = { [K in keyof T]: Input<T[K]> };
