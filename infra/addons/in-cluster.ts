/**
 * The in-cluster variants of the add-ons, for clusters with no cloud account: an S3-compatible
 * object store (MinIO) and a single-node OpenSearch, each a StatefulSet with its Service and
 * Secret in the server's own namespace, sized by its plan. Pulumi programs (@pulumi/kubernetes),
 * run per instance by the driver through the Automation API; tested with mocks in
 * test/infra/. Their outputs are the Mastodon settings the add-on turns on.
 */
import * as k8s from '@pulumi/kubernetes';
import * as pulumi from '@pulumi/pulumi';
import type { PlanLimits } from '../../core/domain/catalog.ts';
import {
  type AddonOwner,
  INSTANCE_LABEL,
  type ObjectStorageOutputs,
  type SearchOutputs,
  TENANT_LABEL,
  type Wired,
} from './types.ts';

const MINIO_IMAGE = 'quay.io/minio/minio:RELEASE.2025-04-22T22-12-26Z';
const MINIO_CLIENT_IMAGE = 'quay.io/minio/mc:RELEASE.2025-04-16T18-13-26Z';
const OPENSEARCH_IMAGE = 'docker.io/opensearchproject/opensearch:2.19.2';
const MINIO_PORT = 9000;
const OPENSEARCH_PORT = 9200;
/** Mastodon's media bucket; the prefixes under it that visitors may read. */
const BUCKET = 'mastodon';
/** Where ingress-nginx runs; it fetches media from the store for visitors. */
const INGRESS_CONTROLLER_NAMESPACE = 'ingress-nginx';
const PUBLIC_PREFIXES = ['accounts', 'media_attachments', 'custom_emojis', 'site_uploads', 'cache'];

/**
 * Not `part-of: woolly`: the provisioner prunes what it labels so and did not render, and these
 * are Pulumi's to keep.
 */
function labelsOf(owner: AddonOwner, component: string): Record<string, string> {
  return {
    'app.kubernetes.io/part-of': 'woolly-addons',
    'app.kubernetes.io/managed-by': 'pulumi',
    'app.kubernetes.io/component': component,
    [TENANT_LABEL]: owner.organizationId,
    [INSTANCE_LABEL]: owner.instanceId,
  };
}

/**
 * Pulumi does not wait for these to become ready (no pod runs until the namespace's quota and
 * the scheduler allow it): the provisioner's rollout step waits for them with the server's own
 * workloads, so a stack operation never holds its lock for minutes. Deletions are background
 * ones: the garbage collector takes the pods after, and `destroy` does not wait on finalizers.
 */
const ANNOTATIONS = {
  'pulumi.com/skipAwait': 'true',
  'pulumi.com/deletionPropagationPolicy': 'background',
};

/** From every pod of the server's namespace, and for media from the ingress controller. */
function allowIngress(
  owner: AddonOwner,
  component: string,
  port: number,
  fromNamespaces: string[],
  opts: pulumi.CustomResourceOptions,
) {
  return new k8s.networking.v1.NetworkPolicy(
    `allow-ingress-to-${component}`,
    {
      metadata: {
        name: `allow-ingress-to-${component}`,
        namespace: owner.namespace,
        labels: labelsOf(owner, component),
        annotations: ANNOTATIONS,
      },
      spec: {
        podSelector: { matchLabels: { 'app.kubernetes.io/component': component } },
        policyTypes: ['Ingress'],
        ingress: [
          {
            from: [
              { podSelector: {} },
              ...fromNamespaces.map((name) => ({
                namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': name } },
              })),
            ],
            ports: [{ protocol: 'TCP', port }],
          },
        ],
      },
    },
    opts,
  );
}

const restricted = {
  allowPrivilegeEscalation: false,
  capabilities: { drop: ['ALL'] },
  runAsNonRoot: true,
};
const podSecurity = (uid: number) => ({
  runAsNonRoot: true,
  runAsUser: uid,
  runAsGroup: uid,
  fsGroup: uid,
  seccompProfile: { type: 'RuntimeDefault' },
});

/**
 * One add-on server: its credentials Secret (`<component>-credentials`, handed to the
 * container as its environment), a single-replica StatefulSet with one data volume of
 * `storage`, a ClusterIP Service on `port` and the NetworkPolicy letting the server's pods
 * reach it, all labelled for the owner.
 */
function statefulService(
  owner: AddonOwner,
  component: string,
  spec: {
    credentials: Record<string, pulumi.Input<string>>;
    port: { name: string; number: number };
    storage: string;
    container: k8s.types.input.core.v1.Container;
    /** Namespaces besides the server's own whose pods may connect. */
    reachableFrom?: string[];
  },
  opts: pulumi.CustomResourceOptions,
) {
  const labels = labelsOf(owner, component);
  const metadata = (name: string) => ({ name, namespace: owner.namespace, labels, annotations: ANNOTATIONS });
  const selector = { 'app.kubernetes.io/component': component };
  const secret = new k8s.core.v1.Secret(
    `${component}-credentials`,
    { metadata: metadata(`${component}-credentials`), stringData: spec.credentials },
    opts,
  );
  const service = new k8s.core.v1.Service(
    component,
    {
      metadata: metadata(component),
      spec: {
        type: 'ClusterIP',
        selector,
        ports: [{ name: spec.port.name, port: spec.port.number, targetPort: spec.port.name }],
      },
    },
    opts,
  );
  const networkPolicy = allowIngress(owner, component, spec.port.number, spec.reachableFrom ?? [], opts);
  const statefulSet = new k8s.apps.v1.StatefulSet(
    component,
    {
      metadata: metadata(component),
      spec: {
        serviceName: component,
        replicas: 1,
        selector: { matchLabels: selector },
        template: {
          metadata: { labels },
          spec: {
            automountServiceAccountToken: false,
            securityContext: podSecurity(1000),
            containers: [
              {
                ...spec.container,
                ports: [{ name: spec.port.name, containerPort: spec.port.number }],
                envFrom: [{ secretRef: { name: `${component}-credentials` } }],
                securityContext: restricted,
              },
            ],
          },
        },
        volumeClaimTemplates: [
          {
            metadata: { name: 'data', labels },
            spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: spec.storage } } },
          },
        ],
      },
    },
    { ...opts, dependsOn: [secret] },
  );
  return { secret, service, networkPolicy, statefulSet };
}

/** What the in-cluster object store costs its namespace, so the server's quota makes room. */
export function objectStorageReservation(limits: PlanLimits) {
  return { cpuMillicores: 500 + 100, memoryMib: 512 + 64, volumes: 1, storageGb: limits.storageGb };
}

/** What the in-cluster search costs its namespace. */
export function searchReservation(limits: PlanLimits) {
  const memoryMib = searchMemoryMib(limits);
  return { cpuMillicores: 1000, memoryMib, volumes: 1, storageGb: SEARCH_VOLUME_GB };
}

/**
 * Object storage sized by the plan: its media quota is the volume's size. Visitors fetch media
 * through the server's own Ingress (`/<bucket>/…`, path-style), so `aliasHost` is
 * `<domain>/<bucket>` and the bucket needs no host or certificate of its own.
 */
export function objectStorageInCluster(
  owner: AddonOwner,
  input: {
    domain: string;
    limits: PlanLimits;
    credentials: { accessKey: pulumi.Input<string>; secretKey: pulumi.Input<string> };
  },
  opts: pulumi.CustomResourceOptions = {},
) {
  const { credentials } = input;
  const { secret, service, networkPolicy, statefulSet } = statefulService(
    owner,
    'object-storage',
    {
      credentials: {
        MINIO_ROOT_USER: pulumi.secret(credentials.accessKey),
        MINIO_ROOT_PASSWORD: pulumi.secret(credentials.secretKey),
      },
      port: { name: 's3', number: MINIO_PORT },
      storage: `${input.limits.storageGb}Gi`,
      reachableFrom: [INGRESS_CONTROLLER_NAMESPACE],
      container: {
        name: 'minio',
        image: MINIO_IMAGE,
        args: ['server', '/data', '--address', `:${MINIO_PORT}`],
        readinessProbe: { httpGet: { path: '/minio/health/ready', port: 's3' } },
        resources: { requests: { cpu: '50m', memory: '256Mi' }, limits: { cpu: '500m', memory: '512Mi' } },
        volumeMounts: [{ name: 'data', mountPath: '/data' }],
      },
    },
    opts,
  );
  const endpoint = `http://object-storage.${owner.namespace}.svc.cluster.local:${MINIO_PORT}`;
  // The bucket, with anonymous read on media prefixes only: nothing is ever publicly writable.
  const policy = PUBLIC_PREFIXES.map(
    (prefix) => `mc anonymous set download "woolly/${BUCKET}/${prefix}"`,
  ).join(' && ');
  const jobLabels = labelsOf(owner, 'object-storage-bucket');
  const bucketJob = new k8s.batch.v1.Job(
    'object-storage-bucket',
    {
      metadata: {
        name: 'object-storage-bucket',
        namespace: owner.namespace,
        labels: jobLabels,
        annotations: ANNOTATIONS,
      },
      spec: {
        backoffLimit: 6,
        template: {
          metadata: { labels: jobLabels },
          spec: {
            restartPolicy: 'OnFailure',
            automountServiceAccountToken: false,
            securityContext: podSecurity(1000),
            containers: [
              {
                name: 'mc',
                image: MINIO_CLIENT_IMAGE,
                command: ['sh', '-c'],
                args: [
                  `mc alias set woolly "${endpoint}" "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD" >/dev/null && mc mb --ignore-existing "woolly/${BUCKET}" && ${policy}`,
                ],
                env: [{ name: 'HOME', value: '/tmp' }],
                envFrom: [{ secretRef: { name: 'object-storage-credentials' } }],
                resources: {
                  requests: { cpu: '10m', memory: '32Mi' },
                  limits: { cpu: '100m', memory: '64Mi' },
                },
                securityContext: restricted,
              },
            ],
          },
        },
      },
    },
    { ...opts, dependsOn: [statefulSet, service] },
  );
  // The namespace denies all egress; the Job reaches the store and the cluster's DNS only.
  const jobEgress = new k8s.networking.v1.NetworkPolicy(
    'allow-egress-from-object-storage-bucket',
    {
      metadata: {
        name: 'allow-egress-from-object-storage-bucket',
        namespace: owner.namespace,
        labels: jobLabels,
        annotations: ANNOTATIONS,
      },
      spec: {
        podSelector: { matchLabels: { 'app.kubernetes.io/component': 'object-storage-bucket' } },
        policyTypes: ['Egress'],
        egress: [
          {
            to: [{ podSelector: { matchLabels: { 'app.kubernetes.io/component': 'object-storage' } } }],
            ports: [{ protocol: 'TCP', port: MINIO_PORT }],
          },
          {
            to: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'kube-system' } } }],
            ports: [
              { protocol: 'UDP', port: 53 },
              { protocol: 'TCP', port: 53 },
            ],
          },
        ],
      },
    },
    opts,
  );
  const outputs: Wired<ObjectStorageOutputs> = {
    bucket: BUCKET,
    endpoint,
    region: 'us-east-1',
    aliasHost: `${input.domain}/${BUCKET}`,
    accessKeyId: credentials.accessKey,
    secretAccessKey: pulumi.secret(credentials.secretKey),
    route: { path: `/${BUCKET}/`, service: 'object-storage', port: MINIO_PORT },
  };
  return { resources: { secret, service, networkPolicy, statefulSet, bucketJob, jobEgress }, outputs };
}

const SEARCH_VOLUME_GB = 10;
const searchMemoryMib = (limits: PlanLimits) => (limits.memoryMib >= 8192 ? 4096 : 2048);

/** Single-node OpenSearch; its heap is half its memory, which grows with the plan. */
export function searchInCluster(
  owner: AddonOwner,
  input: { limits: PlanLimits; password: pulumi.Input<string> },
  opts: pulumi.CustomResourceOptions = {},
) {
  const memoryMib = searchMemoryMib(input.limits);
  const { secret, service, networkPolicy, statefulSet } = statefulService(
    owner,
    'search',
    {
      credentials: { OPENSEARCH_INITIAL_ADMIN_PASSWORD: pulumi.secret(input.password) },
      port: { name: 'http', number: OPENSEARCH_PORT },
      storage: `${SEARCH_VOLUME_GB}Gi`,
      container: {
        name: 'opensearch',
        image: OPENSEARCH_IMAGE,
        env: [
          { name: 'discovery.type', value: 'single-node' },
          { name: 'OPENSEARCH_JAVA_OPTS', value: `-Xms${memoryMib / 2}m -Xmx${memoryMib / 2}m` },
        ],
        resources: {
          requests: { cpu: '250m', memory: `${memoryMib}Mi` },
          limits: { cpu: '1', memory: `${memoryMib}Mi` },
        },
        volumeMounts: [{ name: 'data', mountPath: '/usr/share/opensearch/data' }],
      },
    },
    opts,
  );
  const outputs: Wired<SearchOutputs> = {
    host: `search.${owner.namespace}.svc.cluster.local`,
    port: OPENSEARCH_PORT,
    // OpenSearch's security plugin serves TLS with its own certificate inside the cluster.
    scheme: 'https',
    user: 'admin',
    password: pulumi.secret(input.password),
  };
  return { resources: { secret, service, networkPolicy, statefulSet }, outputs };
}
