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

const MINIO_IMAGE = 'quay.io/minio/minio:RELEASE.2025-04-22T22-12-26Z';
const MINIO_CLIENT_IMAGE = 'quay.io/minio/mc:RELEASE.2025-04-16T18-13-26Z';
const OPENSEARCH_IMAGE = 'docker.io/opensearchproject/opensearch:2.19.2';
const MINIO_PORT = 9000;
const OPENSEARCH_PORT = 9200;
/** Mastodon's media bucket; the prefixes under it that visitors may read. */
const BUCKET = 'mastodon';
const PUBLIC_PREFIXES = ['accounts', 'media_attachments', 'custom_emojis', 'site_uploads', 'cache'];

/** Who an add-on belongs to: every resource is labelled with both ids. */
export interface AddonOwner {
  instanceId: string;
  organizationId: string;
  /** The server's namespace (`namespaceFor(instanceId)`). */
  namespace: string;
}

export const TENANT_LABEL = 'woolly.dev/tenant-id';
export const INSTANCE_LABEL = 'woolly.dev/instance-id';

function labelsOf(owner: AddonOwner, component: string): Record<string, string> {
  return {
    'app.kubernetes.io/part-of': 'woolly',
    'app.kubernetes.io/component': component,
    [TENANT_LABEL]: owner.organizationId,
    [INSTANCE_LABEL]: owner.instanceId,
  };
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
 * `storage`, and a ClusterIP Service on `port`, all labelled for the owner.
 */
function statefulService(
  owner: AddonOwner,
  component: string,
  spec: {
    credentials: Record<string, pulumi.Input<string>>;
    port: { name: string; number: number };
    storage: string;
    container: k8s.types.input.core.v1.Container;
  },
) {
  const labels = labelsOf(owner, component);
  const metadata = (name: string) => ({ name, namespace: owner.namespace, labels });
  const selector = { 'app.kubernetes.io/component': component };
  const secret = new k8s.core.v1.Secret(`${component}-credentials`, {
    metadata: metadata(`${component}-credentials`),
    stringData: spec.credentials,
  });
  const service = new k8s.core.v1.Service(component, {
    metadata: metadata(component),
    spec: {
      type: 'ClusterIP',
      selector,
      ports: [{ name: spec.port.name, port: spec.port.number, targetPort: spec.port.name }],
    },
  });
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
    { dependsOn: [secret] },
  );
  return { secret, service, statefulSet };
}

/** Object storage sized by the plan: its media quota is the volume's size. */
export function objectStorageInCluster(
  owner: AddonOwner,
  limits: PlanLimits,
  credentials: { accessKey: pulumi.Input<string>; secretKey: pulumi.Input<string> },
) {
  const labels = labelsOf(owner, 'object-storage');
  const metadata = (name: string) => ({ name, namespace: owner.namespace, labels });
  const { secret, service, statefulSet } = statefulService(owner, 'object-storage', {
    credentials: {
      MINIO_ROOT_USER: pulumi.secret(credentials.accessKey),
      MINIO_ROOT_PASSWORD: pulumi.secret(credentials.secretKey),
    },
    port: { name: 's3', number: MINIO_PORT },
    storage: `${limits.storageGb}Gi`,
    container: {
      name: 'minio',
      image: MINIO_IMAGE,
      args: ['server', '/data', '--address', `:${MINIO_PORT}`],
      readinessProbe: { httpGet: { path: '/minio/health/ready', port: 's3' } },
      resources: { requests: { cpu: '50m', memory: '256Mi' }, limits: { cpu: '500m', memory: '512Mi' } },
      volumeMounts: [{ name: 'data', mountPath: '/data' }],
    },
  });
  const endpoint = `http://object-storage.${owner.namespace}.svc.cluster.local:${MINIO_PORT}`;
  // The bucket, with anonymous read on media prefixes only: nothing is ever publicly writable.
  const policy = PUBLIC_PREFIXES.map(
    (prefix) => `mc anonymous set download "woolly/${BUCKET}/${prefix}"`,
  ).join(' && ');
  const bucketJob = new k8s.batch.v1.Job(
    'object-storage-bucket',
    {
      metadata: metadata('object-storage-bucket'),
      spec: {
        backoffLimit: 6,
        template: {
          metadata: { labels },
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
    { dependsOn: [statefulSet, service] },
  );
  return {
    resources: { secret, service, statefulSet, bucketJob },
    /** Mastodon's settings for this bucket (`objectStorageEnv` in render-instance.ts adds the rest). */
    outputs: { bucket: BUCKET, endpoint, region: 'us-east-1' },
  };
}

/** Single-node OpenSearch; its heap is half its memory, which grows with the plan. */
export function searchInCluster(
  owner: AddonOwner,
  limits: PlanLimits,
  credentials: { password: pulumi.Input<string> },
) {
  const memoryMib = limits.memoryMib >= 8192 ? 4096 : 2048;
  const { secret, service, statefulSet } = statefulService(owner, 'search', {
    credentials: { OPENSEARCH_INITIAL_ADMIN_PASSWORD: pulumi.secret(credentials.password) },
    port: { name: 'http', number: OPENSEARCH_PORT },
    storage: '10Gi',
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
  });
  return {
    resources: { secret, service, statefulSet },
    outputs: {
      host: `search.${owner.namespace}.svc.cluster.local`,
      port: OPENSEARCH_PORT,
      user: 'admin',
    },
  };
}
