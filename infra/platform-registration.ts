/**
 * After the platform stack's `up`: a credential for the provisioner's ServiceAccount, a
 * kubeconfig around it, and the cluster's registration in Woolly's database.
 *
 * The credential comes from the TokenRequest API (`serviceaccounts/token`), not from a
 * `kubernetes.io/service-account-token` Secret. Such a Secret is only filled by
 * kube-controller-manager's token controller, is a long-lived bearer token stored in the
 * cluster in plain sight of anyone who may read Secrets in woolly-system, and is the legacy
 * mechanism Kubernetes now discourages. A TokenRequest is served by kube-apiserver itself,
 * stores nothing, is bound to the ServiceAccount's UID (deleting the ServiceAccount revokes it)
 * and expires. Limitation: nothing renews it yet; `woolly cluster bootstrap` run again before
 * `tokenExpiresAt` issues a new one and updates the registration (the CLI prints the date).
 */
import { readFile } from 'node:fs/promises';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import type { SecretBox } from '../core/crypto.ts';
import type { Db } from '../core/db.ts';
import { ClusterRegistrationError, registerCluster } from '../provisioner/clusters.ts';
import type { PlatformOutputs } from './platform.ts';

/** What the provisioner's token is asked to last; a cluster may cap it (the answer says). */
export const PROVISIONER_TOKEN_SECONDS = 365 * 24 * 3600;

/** The admin kubeconfig's current cluster: where the API server is and how it is trusted. */
async function currentCluster(adminKubeconfig: string) {
  const kc = new KubeConfig();
  try {
    kc.loadFromString(adminKubeconfig);
  } catch {
    throw new ClusterRegistrationError('the admin kubeconfig is not a valid kubeconfig');
  }
  const cluster = kc.getCurrentCluster();
  if (!cluster?.server) {
    throw new ClusterRegistrationError('the admin kubeconfig has no current-context naming a cluster');
  }
  const caData =
    cluster.caData ?? (cluster.caFile ? (await readFile(cluster.caFile)).toString('base64') : undefined);
  return { kc, cluster, caData };
}

/** A token for the ServiceAccount, asked for with the admin's credentials. */
export async function requestServiceAccountToken(
  adminKubeconfig: string,
  serviceAccount: { name: string; namespace: string },
  seconds = PROVISIONER_TOKEN_SECONDS,
): Promise<{ token: string; expiresAt: Date }> {
  const { kc } = await currentCluster(adminKubeconfig);
  const api = kc.makeApiClient(CoreV1Api);
  let answer: Awaited<ReturnType<CoreV1Api['createNamespacedServiceAccountToken']>>;
  try {
    answer = await api.createNamespacedServiceAccountToken({
      name: serviceAccount.name,
      namespace: serviceAccount.namespace,
      body: { spec: { audiences: [], expirationSeconds: seconds } },
    });
  } catch (error) {
    const code = (error as { code?: number }).code;
    throw new ClusterRegistrationError(
      `cannot get a token for ${serviceAccount.namespace}/${serviceAccount.name}${code ? ` (HTTP ${code})` : ''}: ${(error as Error).message.split('\n')[0]}`,
    );
  }
  const token = answer.status?.token;
  const expiresAt = answer.status?.expirationTimestamp;
  if (!token || !expiresAt) throw new ClusterRegistrationError('the TokenRequest answered no token');
  return { token, expiresAt: new Date(expiresAt) };
}

/** A kubeconfig that reaches the admin's API server, trusting the same CA, as `user` with `token`. */
export async function serviceAccountKubeconfig(
  adminKubeconfig: string,
  user: string,
  token: string,
): Promise<string> {
  const { cluster, caData } = await currentCluster(adminKubeconfig);
  const entry: Record<string, unknown> = { server: cluster.server };
  if (caData) entry['certificate-authority-data'] = caData;
  if (cluster.tlsServerName) entry['tls-server-name'] = cluster.tlsServerName;
  if (cluster.skipTLSVerify) entry['insecure-skip-tls-verify'] = true;
  return stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: cluster.name, cluster: entry }],
    users: [{ name: user, user: { token } }],
    contexts: [{ name: 'woolly', context: { cluster: cluster.name, user } }],
    'current-context': 'woolly',
  });
}

export interface PlatformRegistration {
  name: string;
  region: string;
  capacity: number;
  adminKubeconfig: string;
  databaseAdminUrl: string;
  /** The platform stack's outputs (`platformOutputs(result.outputs)`). */
  outputs: PlatformOutputs;
  tokenSeconds?: number;
}

/**
 * Registers the cluster the platform stack prepared, as its provisioner ServiceAccount. Run
 * again, it updates the registration (new token, region, capacity, settings) in place.
 */
export async function registerPlatformCluster(
  db: Db,
  box: SecretBox,
  input: PlatformRegistration,
): Promise<{ id: string; created: boolean; tokenExpiresAt: Date }> {
  const { serviceAccount } = input.outputs;
  const { token, expiresAt } = await requestServiceAccountToken(
    input.adminKubeconfig,
    serviceAccount,
    input.tokenSeconds,
  );
  const kubeconfig = await serviceAccountKubeconfig(
    input.adminKubeconfig,
    `system:serviceaccount:${serviceAccount.namespace}:${serviceAccount.name}`,
    token,
  );
  const registered = await registerCluster(
    db,
    box,
    {
      name: input.name,
      region: input.region,
      capacity: input.capacity,
      kubeconfig,
      databaseAdminUrl: input.databaseAdminUrl,
      settings: {
        ingressClassName: input.outputs.ingressClassName,
        clusterIssuer: input.outputs.clusterIssuer,
      },
    },
    { ifExists: 'update' },
  );
  return { ...registered, tokenExpiresAt: expiresAt };
}
