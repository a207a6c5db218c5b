/**
 * One instance's add-on stack as a Pulumi program: the add-ons it has, in the variant its
 * cluster offers (in the cluster, or a cloud account), and the settings Mastodon needs as the
 * stack's outputs. Nothing for an add-on that is off.
 */
import * as k8s from '@pulumi/kubernetes';
import * as pulumi from '@pulumi/pulumi';
import type { PlanLimits } from '../core/domain/catalog.ts';
import { awsProvider, objectStorageAws, searchAws } from './addons/aws.ts';
import { dnsRecords } from './addons/dns.ts';
import { objectStorageInCluster, searchInCluster } from './addons/in-cluster.ts';
import type {
  AddonOwner,
  AwsAddonSettings,
  DnsOutputs,
  ObjectStorageOutputs,
  SearchOutputs,
} from './addons/types.ts';

/** Where a cluster's add-ons run. */
export type AddonProvider =
  | { kind: 'in-cluster'; kubeconfig: string }
  | {
      kind: 'aws';
      settings: AwsAddonSettings;
      /** Null: the worker's own AWS credential chain (environment, profile, IAM role). */
      credentials: { accessKeyId: string; secretAccessKey: string } | null;
    };

export interface AddonStackSpec {
  owner: AddonOwner;
  /** The server's domain; media CORS and DNS records are for it. */
  domain: string;
  limits: PlanLimits;
  objectStorage: boolean;
  search: boolean;
  provider: AddonProvider;
  /** Generated once per instance and kept sealed: the in-cluster store's keys, search's password. */
  credentials: { objectStorageAccessKey: string; objectStorageSecretKey: string; searchPassword: string };
}

/** The stack's outputs: each add-on's settings, null when it is off. */
export interface AddonOutputs {
  objectStorage: ObjectStorageOutputs | null;
  search: SearchOutputs | null;
  dns: DnsOutputs | null;
}

/** The Pulumi program for `spec`; its return value becomes the stack's outputs. */
export function addonProgram(spec: AddonStackSpec): () => Promise<Record<string, unknown>> {
  return async () => {
    const { owner, provider, credentials } = spec;
    if (provider.kind === 'in-cluster') {
      const opts = {
        provider: new k8s.Provider('cluster', {
          kubeconfig: pulumi.secret(provider.kubeconfig),
          enableServerSideApply: true,
        }),
      };
      return {
        objectStorage: spec.objectStorage
          ? objectStorageInCluster(
              owner,
              {
                domain: spec.domain,
                limits: spec.limits,
                credentials: {
                  accessKey: credentials.objectStorageAccessKey,
                  secretKey: credentials.objectStorageSecretKey,
                },
              },
              opts,
            ).outputs
          : null,
        search: spec.search
          ? searchInCluster(owner, { limits: spec.limits, password: credentials.searchPassword }, opts)
              .outputs
          : null,
        dns: null,
      };
    }
    const opts = { provider: awsProvider('aws', provider.settings, provider.credentials) };
    return {
      objectStorage: spec.objectStorage
        ? objectStorageAws(
            owner,
            { domains: [spec.domain], limits: spec.limits, settings: provider.settings },
            opts,
          ).outputs
        : null,
      search: spec.search
        ? searchAws(
            owner,
            { limits: spec.limits, settings: provider.settings, password: credentials.searchPassword },
            opts,
          ).outputs
        : null,
      dns: provider.settings.dns
        ? dnsRecords(owner, { domain: spec.domain, settings: provider.settings.dns }, opts).outputs
        : null,
    };
  };
}
