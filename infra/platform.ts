/**
 * The platform stack: what a new Kubernetes cluster needs before Woolly places servers on it.
 * An ingress controller, cert-manager with a Let's Encrypt ClusterIssuer, metrics-server, and
 * the provisioner's identity (a ServiceAccount bound to the least-privilege ClusterRole of
 * provisioner/rbac.ts). One stack per cluster (project `woolly-platform`, stack = cluster
 * name), run through infra/workspace.ts; platform-registration.ts then registers the cluster.
 */
import * as k8s from '@pulumi/kubernetes';
import * as pulumi from '@pulumi/pulumi';
import type { OutputMap, PulumiFn } from '@pulumi/pulumi/automation/index.js';
import { provisionerRbac } from '../provisioner/rbac.ts';

/** The Pulumi project of every cluster's platform stack. */
export const PLATFORM_PROJECT = 'woolly-platform';
export const SYSTEM_NAMESPACE = 'woolly-system';
export const PROVISIONER_SERVICE_ACCOUNT = 'woolly-provisioner';
const LABELS = { 'app.kubernetes.io/part-of': 'woolly' };

/** A Helm chart and the repository it is fetched from. */
export interface ChartSource {
  repo: string;
  version: string;
}

export interface PlatformCharts {
  ingressNginx: ChartSource;
  certManager: ChartSource;
  metricsServer: ChartSource;
}

/** The chart versions `woolly cluster bootstrap` installs unless told otherwise. */
export const DEFAULT_CHARTS: PlatformCharts = {
  ingressNginx: { repo: 'https://kubernetes.github.io/ingress-nginx', version: '4.12.1' },
  certManager: { repo: 'https://charts.jetstack.io', version: 'v1.17.2' },
  metricsServer: { repo: 'https://kubernetes-sigs.github.io/metrics-server/', version: '3.12.2' },
};

const ACME_SERVERS = {
  staging: 'https://acme-staging-v02.api.letsencrypt.org/directory',
  production: 'https://acme-v02.api.letsencrypt.org/directory',
};

export interface PlatformInput {
  /** Kubeconfig of a cluster administrator: Pulumi's provider acts with it. */
  adminKubeconfig: string;
  /** Let's Encrypt account: its contact e-mail and which directory to use. */
  acme: { email: string; server: keyof typeof ACME_SERVERS };
  /**
   * The charts to install; null installs none (the cluster's operators install them, or no
   * chart repository is reachable, as in the tests). The ClusterIssuer then needs the
   * cert-manager CRDs already installed.
   */
  charts: PlatformCharts | null;
  /** The IngressClass ingress-nginx serves and ACME challenges go through; default `nginx`. */
  ingressClassName?: string;
}

/** What the stack reports, and what the cluster's registration is made from. */
export interface PlatformOutputs {
  serviceAccount: { name: string; namespace: string };
  ingressClassName: string;
  clusterIssuer: string;
}

/** The ClusterIssuer's name: the production one is the default of cluster-settings.ts. */
export function clusterIssuerName(server: PlatformInput['acme']['server']): string {
  return server === 'production' ? 'letsencrypt' : 'letsencrypt-staging';
}

/** The platform stack's inline program for one cluster. */
export function platformProgram(input: PlatformInput): PulumiFn {
  const ingressClassName = input.ingressClassName ?? 'nginx';
  const issuer = clusterIssuerName(input.acme.server);
  return async (): Promise<PlatformOutputs> => {
    const provider = new k8s.Provider('admin', {
      kubeconfig: pulumi.secret(input.adminKubeconfig),
      enableServerSideApply: true,
    });
    const options = { provider };
    const namespace = (name: string) =>
      new k8s.core.v1.Namespace(name, { metadata: { name, labels: LABELS } }, options);
    const system = namespace(SYSTEM_NAMESPACE);
    const ingressNamespace = namespace('ingress-nginx');
    const certManagerNamespace = namespace('cert-manager');

    let certManager: k8s.helm.v3.Release | undefined;
    if (input.charts) {
      const { ingressNginx, certManager: certManagerChart, metricsServer } = input.charts;
      new k8s.helm.v3.Release(
        'ingress-nginx',
        {
          name: 'ingress-nginx',
          chart: 'ingress-nginx',
          version: ingressNginx.version,
          repositoryOpts: { repo: ingressNginx.repo },
          namespace: ingressNamespace.metadata.name,
          values: {
            commonLabels: LABELS,
            controller: {
              ingressClass: ingressClassName,
              ingressClassResource: { name: ingressClassName, controllerValue: 'k8s.io/ingress-nginx' },
              metrics: { enabled: true },
            },
          },
        },
        options,
      );
      certManager = new k8s.helm.v3.Release(
        'cert-manager',
        {
          name: 'cert-manager',
          chart: 'cert-manager',
          version: certManagerChart.version,
          repositoryOpts: { repo: certManagerChart.repo },
          namespace: certManagerNamespace.metadata.name,
          values: { crds: { enabled: true }, global: { commonLabels: LABELS } },
        },
        options,
      );
      new k8s.helm.v3.Release(
        'metrics-server',
        {
          name: 'metrics-server',
          chart: 'metrics-server',
          version: metricsServer.version,
          repositoryOpts: { repo: metricsServer.repo },
          namespace: 'kube-system',
          values: { commonLabels: LABELS },
        },
        options,
      );
    }

    new k8s.apiextensions.CustomResource(
      'cluster-issuer',
      {
        apiVersion: 'cert-manager.io/v1',
        kind: 'ClusterIssuer',
        metadata: { name: issuer, labels: LABELS },
        spec: {
          acme: {
            email: input.acme.email,
            server: ACME_SERVERS[input.acme.server],
            privateKeySecretRef: { name: `${issuer}-account-key` },
            solvers: [{ http01: { ingress: { ingressClassName } } }],
          },
        },
      },
      // The ClusterIssuer kind exists once cert-manager's CRDs do.
      { ...options, dependsOn: certManager ? [certManager] : [] },
    );

    // The provisioner's identity. Its credential is not a Secret of this stack: the
    // registration asks the TokenRequest API for a token (platform-registration.ts says why).
    const serviceAccount = new k8s.core.v1.ServiceAccount(
      PROVISIONER_SERVICE_ACCOUNT,
      {
        metadata: { name: PROVISIONER_SERVICE_ACCOUNT, namespace: system.metadata.name, labels: LABELS },
        automountServiceAccountToken: false,
      },
      options,
    );
    const [role, binding] = provisionerRbac({
      kind: 'ServiceAccount',
      name: PROVISIONER_SERVICE_ACCOUNT,
      namespace: SYSTEM_NAMESPACE,
    });
    if (!role?.rules || !binding?.roleRef) {
      throw new Error('provisionerRbac no longer returns [ClusterRole, ClusterRoleBinding]');
    }
    const clusterRole = new k8s.rbac.v1.ClusterRole(
      role.metadata.name,
      { metadata: role.metadata, rules: role.rules },
      options,
    );
    new k8s.rbac.v1.ClusterRoleBinding(
      binding.metadata.name,
      { metadata: binding.metadata, roleRef: binding.roleRef, subjects: binding.subjects },
      { ...options, dependsOn: [clusterRole, serviceAccount] },
    );

    return {
      serviceAccount: { name: PROVISIONER_SERVICE_ACCOUNT, namespace: SYSTEM_NAMESPACE },
      ingressClassName,
      clusterIssuer: issuer,
    };
  };
}

/** The platform outputs of a finished `up`, checked. */
export function platformOutputs(outputs: OutputMap): PlatformOutputs {
  const serviceAccount = outputs.serviceAccount?.value as PlatformOutputs['serviceAccount'] | undefined;
  const ingressClassName = outputs.ingressClassName?.value;
  const clusterIssuer = outputs.clusterIssuer?.value;
  if (
    typeof serviceAccount?.name !== 'string' ||
    typeof serviceAccount.namespace !== 'string' ||
    typeof ingressClassName !== 'string' ||
    typeof clusterIssuer !== 'string'
  ) {
    throw new Error(`the platform stack's outputs are incomplete: ${Object.keys(outputs).join(', ')}`);
  }
  return { serviceAccount, ingressClassName, clusterIssuer };
}
