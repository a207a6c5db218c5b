/**
 * Renders the Kubernetes objects of one hosted Mastodon server. The renderer is pure: the same
 * input gives byte-identical output, so the provisioner can diff, dry-run and re-apply freely.
 */
import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import type { PlanLimits } from '../../core/domain/catalog.ts';
import { AppError } from '../../core/errors.ts';

/** A Kubernetes object as sent to the API server. */
export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  [key: string]: unknown;
}

/** Everything that decides what one server's objects look like. */
export interface InstanceRenderInput {
  /** The instance's UUID (v4); its first 12 hex digits name the namespace. */
  instanceId: string;
  /** Mastodon's LOCAL_DOMAIN, also served as WEB_DOMAIN. */
  domain: string;
  /** Image tag, e.g. `v4.5.11`. */
  mastodonVersion: string;
  flavor: 'vanilla' | 'glitch';
  planCode: string;
  limits: PlanLimits;
  /** Instance spec generation; annotated on every object and used to name the migration Jobs. */
  generation: number;
  /** Secret holding SECRET_KEY_BASE, DB_PASS and the other secrets (see `renderInstanceSecret`). */
  secretName: string;
  database: { host: string; port: number; name: string; user: string };
  smtp: { server: string; port: number; fromAddress: string };
  ingressClassName: string;
  /** cert-manager ClusterIssuer that signs the server's certificate. */
  clusterIssuer: string;
  /**
   * `null` keeps media on a ReadWriteMany volume. With a `route`, visitors fetch media through
   * this server's Ingress from a store in its namespace (the in-cluster add-on).
   */
  objectStorage: null | {
    bucket: string;
    endpoint: string;
    region: string;
    aliasHost?: string;
    route?: { path: string; service: string; port: number };
  };
  /** Its user and password go in the server's Secret as `ES_USER` and `ES_PASS`. */
  search: null | { host: string; port: number; scheme: 'http' | 'https' };
  /** What add-ons running in this namespace take from its quota (the in-cluster variants). */
  addonQuota?: { cpuMillicores: number; memoryMib: number; volumes: number; storageGb: number } | null;
  /**
   * Suspended (by staff, or while a deletion waits out its grace period): every workload is
   * scaled to zero and the CronJobs are paused, while namespace, volumes, Secret and config
   * stay, so resuming is one apply away and no data is lost.
   */
  suspended?: boolean;
  /**
   * The server's first account, made Owner by a Job once the server runs; given only while
   * the server is being provisioned.
   */
  owner?: { username: string; email: string } | null;
}

/** CPU in millicores and memory in MiB. */
export interface Resources {
  cpuMillicores: number;
  memoryMib: number;
}

/** Requests and limits of one pod (each pod here has one container). */
export interface PodSize {
  requests: Resources;
  limits: Resources;
}

/** One sidekiq Deployment; it always runs a single replica. */
export interface SidekiqProcess {
  name: 'sidekiq' | 'sidekiq-default' | 'sidekiq-federation';
  /** `-q` arguments, e.g. `default,8`. */
  queues: readonly string[];
  concurrency: number;
  size: PodSize;
}

/** How a plan's CPU, memory and database connections are spread over the server's pods. */
export interface WorkloadSizing {
  web: { replicas: number; workers: number; threads: number; size: PodSize };
  streaming: { dbPool: number; size: PodSize };
  sidekiq: SidekiqProcess[];
  redis: { size: PodSize };
  /** A migration Job or maintenance CronJob pod; at most one runs at a time. */
  task: { dbPool: number; concurrency: number; size: PodSize };
  /** What the namespace's ResourceQuota admits (limits; requests are never higher). */
  quota: Resources;
}

const MASTODON_UID = 991;
const REDIS_IMAGE = 'docker.io/library/redis:7.4-alpine';
// Serves the maintenance page of a suspended server; runs as any non-root user.
const MAINTENANCE_IMAGE = 'docker.io/nginxinc/nginx-unprivileged:1.27-alpine';
const MAINTENANCE_SIZE: PodSize = {
  requests: { cpuMillicores: 10, memoryMib: 16 },
  limits: { cpuMillicores: 50, memoryMib: 32 },
};
const INGRESS_CONTROLLER_NAMESPACE = 'ingress-nginx';
const ENV_CONFIG_MAP = 'mastodon-env';
const SYSTEM_VOLUME_CLAIM = 'mastodon-system';
const SYSTEM_MOUNT_PATH = '/opt/mastodon/public/system';
const PORTS = { web: 3000, streaming: 4000, redis: 6379, acmeSolver: 8089, maintenance: 8080 } as const;

const LABEL = {
  partOf: 'app.kubernetes.io/part-of',
  instance: 'app.kubernetes.io/instance',
  name: 'app.kubernetes.io/name',
  component: 'app.kubernetes.io/component',
  instanceId: 'woolly.dev/instance-id',
  namespaceName: 'kubernetes.io/metadata.name',
} as const;
const GENERATION_ANNOTATION = 'woolly.dev/generation';
const CONFIG_HASH_ANNOTATION = 'woolly.dev/config-hash';

/** Percent of the plan's CPU and memory each part of the steady state gets. */
const PLAN_SHARE_PERCENT = { web: 50, sidekiq: 30, streaming: 10, redis: 10 } as const;
/** Smallest pod each part can run in; a plan below this is refused rather than crash-looping. */
const MIN_POD_LIMITS: Record<'web' | 'sidekiq' | 'streaming' | 'redis', Resources> = {
  web: { cpuMillicores: 100, memoryMib: 512 },
  sidekiq: { cpuMillicores: 50, memoryMib: 256 },
  streaming: { cpuMillicores: 25, memoryMib: 64 },
  redis: { cpuMillicores: 25, memoryMib: 64 },
};
// Booting Rails for a migration or tootctl needs about the same memory on every plan.
const TASK_LIMITS: Resources = { cpuMillicores: 500, memoryMib: 1024 };
const TASK_CONCURRENCY = 2;
// tootctl's worker threads each hold a connection while the main thread iterates the scope.
const TASK_DB_POOL = TASK_CONCURRENCY + 1;
const STREAMING_DB_POOL = 3;
// cert-manager's default limits for the HTTP-01 solver pod it starts in this namespace.
const ACME_SOLVER_LIMITS: Resources = { cpuMillicores: 100, memoryMib: 64 };
const MAX_PUMA_WORKERS = 4;
const MAX_PUMA_THREADS = 5;
const MILLICORES_PER_PUMA_WORKER = 500;
const SINGLE_SIDEKIQ_MAX_CONCURRENCY = 25;
const JOB_TTL_SECONDS = 86_400;
// Mastodon accepts videos up to 99 MB; its own nginx config uses the same body limit.
const MAX_UPLOAD_BODY = '99m';

/** The namespace of an instance: `mastodon-` and the first 12 hex digits of its UUID. */
export function namespaceFor(instanceId: string): string {
  const hex = instanceId.replaceAll('-', '').toLowerCase();
  if (!/^[0-9a-f]{12,}$/.test(hex)) {
    throw new AppError('unprocessable', `Instance id ${JSON.stringify(instanceId)} is not a UUID`);
  }
  return `mastodon-${hex.slice(0, 12)}`;
}

/**
 * Splits a plan over web, sidekiq, streaming and redis so their limits add up to at most the
 * plan, and sizes Puma and the connection pools so every pool together (plus one task pod) stays
 * within `dbConnections`. The ResourceQuota is the steady state plus room for one extra web and
 * streaming pod (RollingUpdate surge), one task pod and cert-manager's solver, so neither a
 * rollout nor a migration is blocked by the quota.
 */
export function sizeWorkloads(limits: PlanLimits): WorkloadSizing {
  assertPositiveIntegers(limits);
  const webPod = portion(limits, PLAN_SHARE_PERCENT.web, 100 * limits.webReplicas);
  const streamingPod = portion(limits, PLAN_SHARE_PERCENT.streaming, 100);
  const redisPod = portion(limits, PLAN_SHARE_PERCENT.redis, 100);
  assertFits('web', webPod);
  assertFits('streaming', streamingPod);
  assertFits('redis', redisPod);

  const sidekiq = planSidekiqProcesses(limits.sidekiqConcurrency).map((process) => {
    const share = portion(
      limits,
      PLAN_SHARE_PERCENT.sidekiq * process.concurrency,
      100 * limits.sidekiqConcurrency,
    );
    assertFits('sidekiq', share);
    return { ...process, size: podSize(share) };
  });

  const web = { replicas: limits.webReplicas, ...sizePuma(limits, webPod), size: podSize(webPod) };
  const steadyState = [
    ...Array.from({ length: web.replicas }, () => webPod),
    streamingPod,
    redisPod,
    ...sidekiq.map((process) => process.size.limits),
  ];
  const rolloutHeadroom = [webPod, streamingPod, TASK_LIMITS, ACME_SOLVER_LIMITS];
  return {
    web,
    streaming: { dbPool: STREAMING_DB_POOL, size: podSize(streamingPod) },
    sidekiq,
    redis: { size: podSize(redisPod) },
    task: { dbPool: TASK_DB_POOL, concurrency: TASK_CONCURRENCY, size: podSize(TASK_LIMITS) },
    quota: sumResources([...steadyState, ...rolloutHeadroom]),
  };
}

/** Renders every object of one server, in apply order. Secrets come from `renderInstanceSecret`. */
export function renderInstanceManifests(input: InstanceRenderInput): KubeObject[] {
  const ctx = makeContext(input);
  return [
    renderNamespace(ctx),
    renderResourceQuota(ctx),
    renderLimitRange(ctx),
    ...renderNetworkPolicies(ctx),
    renderEnvConfigMap(ctx),
    renderRedisDeployment(ctx),
    renderService(ctx, 'redis', 'redis', 'redis', PORTS.redis),
    ...(input.objectStorage ? [] : [renderSystemVolumeClaim(ctx)]),
    // A server scaled to zero runs no migrations: they run when it comes back.
    ...(input.suspended ? [] : [renderMigrationJob(ctx, 'pre')]),
    renderWebDeployment(ctx),
    renderStreamingDeployment(ctx),
    ...ctx.sizing.sidekiq.map((process) => renderSidekiqDeployment(ctx, process)),
    ...(input.suspended ? [] : [renderMigrationJob(ctx, 'post')]),
    ...(input.search && !input.suspended ? [renderSearchDeployJob(ctx)] : []),
    ...(input.owner && !input.suspended ? [renderOwnerAccountJob(ctx, input.owner)] : []),
    ...renderMaintenanceCronJobs(ctx),
    renderService(ctx, 'web', 'mastodon', 'web', PORTS.web, 'http'),
    renderService(ctx, 'streaming', 'mastodon', 'streaming', PORTS.streaming, 'streaming'),
    ...(input.suspended ? renderMaintenancePage(ctx) : []),
    renderIngress(ctx),
    renderCertificate(ctx),
    // A budget over zero pods would only block node drains; a suspended server has none.
    ...(input.limits.webReplicas > 1 && !input.suspended ? [renderWebDisruptionBudget(ctx)] : []),
  ];
}

/**
 * An Opaque Secret carrying `values` base64-encoded in `data`, keys sorted so output is stable.
 * Not `stringData`: the API server folds that into `data` and keeps no record of who set which
 * key, so a key dropped from it (an add-on removed) would stay; in `data` each key is the
 * field manager's, and server-side apply removes the ones it no longer sends.
 */
export function renderInstanceSecret(input: {
  namespace: string;
  name: string;
  labels: Record<string, string>;
  values: Record<string, string>;
}): KubeObject {
  const data = Object.fromEntries(
    Object.entries(input.values)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([key, value]) => [key, Buffer.from(value).toString('base64')]),
  );
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: input.name, namespace: input.namespace, labels: { ...input.labels } },
    type: 'Opaque',
    data,
  };
}

// ---------------------------------------------------------------------------------------------
// Sizing

function assertPositiveIntegers(limits: PlanLimits): void {
  for (const [key, value] of Object.entries(limits)) {
    if (!Number.isInteger(value) || value < 1) {
      throw new AppError('unprocessable', `Plan limit ${key} must be a positive integer, got ${value}`);
    }
  }
}

function assertFits(part: keyof typeof MIN_POD_LIMITS, pod: Resources): void {
  const min = MIN_POD_LIMITS[part];
  if (pod.cpuMillicores < min.cpuMillicores || pod.memoryMib < min.memoryMib) {
    throw new AppError(
      'unprocessable',
      `The plan is too small: a ${part} pod would get ${pod.cpuMillicores}m CPU and ${pod.memoryMib}Mi memory`,
    );
  }
}

/** `numerator / denominator` of the plan's CPU and memory, rounded down so parts never exceed it. */
function portion(limits: PlanLimits, numerator: number, denominator: number): Resources {
  return {
    cpuMillicores: Math.floor((limits.cpuMillicores * numerator) / denominator),
    memoryMib: Math.floor((limits.memoryMib * numerator) / denominator),
  };
}

// Memory is not compressible, so it is requested in full; CPU is requested at half so Ruby's
// bursts (boot, asset-heavy requests) can borrow idle node CPU without reserving it.
function podSize(limits: Resources): PodSize {
  return {
    requests: {
      cpuMillicores: Math.max(1, Math.floor(limits.cpuMillicores / 2)),
      memoryMib: limits.memoryMib,
    },
    limits,
  };
}

function sumResources(parts: readonly Resources[]): Resources {
  return parts.reduce(
    (total, part) => ({
      cpuMillicores: total.cpuMillicores + part.cpuMillicores,
      memoryMib: total.memoryMib + part.memoryMib,
    }),
    { cpuMillicores: 0, memoryMib: 0 },
  );
}

/**
 * Puma workers follow the pod's CPU; threads are what the database connections left over by
 * sidekiq, streaming and one task pod allow (each Puma thread may hold a connection).
 */
function sizePuma(limits: PlanLimits, webPod: Resources): { workers: number; threads: number } {
  const webConnections = limits.dbConnections - limits.sidekiqConcurrency - STREAMING_DB_POOL - TASK_DB_POOL;
  const perPod = Math.floor(webConnections / limits.webReplicas);
  if (perPod < 1) {
    throw new AppError(
      'unprocessable',
      `The plan's ${limits.dbConnections} database connections leave none for the web pods`,
    );
  }
  const cpuWorkers = clamp(
    Math.round(webPod.cpuMillicores / MILLICORES_PER_PUMA_WORKER),
    1,
    MAX_PUMA_WORKERS,
  );
  const workers = Math.min(cpuWorkers, perPod);
  return { workers, threads: Math.min(MAX_PUMA_THREADS, Math.floor(perPod / workers)) };
}

function clamp(value: number, min: number, max: number): number {
  return Math.min(max, Math.max(min, value));
}

function planSidekiqProcesses(concurrency: number): Omit<SidekiqProcess, 'size'>[] {
  if (concurrency <= SINGLE_SIDEKIQ_MAX_CONCURRENCY) {
    return [
      {
        name: 'sidekiq',
        queues: ['default,8', 'push,6', 'ingress,4', 'mailers,2', 'pull', 'scheduler'],
        concurrency,
      },
    ];
  }
  const defaultConcurrency = Math.ceil(concurrency / 2);
  return [
    // The scheduler queue lives here only: a second scheduler would enqueue every periodic job twice.
    {
      name: 'sidekiq-default',
      queues: ['default,8', 'push,6', 'mailers,2', 'scheduler'],
      concurrency: defaultConcurrency,
    },
    {
      name: 'sidekiq-federation',
      queues: ['ingress,4', 'pull'],
      concurrency: concurrency - defaultConcurrency,
    },
  ];
}

// ---------------------------------------------------------------------------------------------
// Shared pieces

interface RenderContext {
  input: InstanceRenderInput;
  namespace: string;
  sizing: WorkloadSizing;
  images: { mastodon: string; streaming: string };
  env: Record<string, string>;
}

type AppName = 'mastodon' | 'redis' | 'maintenance';

function makeContext(input: InstanceRenderInput): RenderContext {
  if (!Number.isInteger(input.generation) || input.generation < 0) {
    throw new AppError('unprocessable', `Generation must be a non-negative integer, got ${input.generation}`);
  }
  const namespace = namespaceFor(input.instanceId);
  const sizing = sizeWorkloads(input.limits);
  const ctx = { input, namespace, sizing, images: imagesFor(input.flavor, input.mastodonVersion), env: {} };
  return { ...ctx, env: mastodonEnv(ctx) };
}

function imagesFor(flavor: InstanceRenderInput['flavor'], version: string): RenderContext['images'] {
  if (!/^v\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$/.test(version)) {
    throw new AppError('unprocessable', `Mastodon version ${JSON.stringify(version)} is not a release tag`);
  }
  const registry = flavor === 'glitch' ? 'ghcr.io/glitch-soc' : 'ghcr.io/mastodon';
  return {
    mastodon: `${registry}/mastodon:${version}`,
    streaming: `${registry}/mastodon-streaming:${version}`,
  };
}

function instanceLabels(ctx: RenderContext, component?: string): Record<string, string> {
  return {
    [LABEL.partOf]: 'woolly',
    [LABEL.instance]: ctx.namespace,
    [LABEL.instanceId]: ctx.input.instanceId,
    ...(component ? { [LABEL.component]: component } : {}),
  };
}

function metadata(
  ctx: RenderContext,
  name: string,
  options: { component?: string; app?: AppName; annotations?: Record<string, string> } = {},
): KubeObject['metadata'] {
  return {
    name,
    namespace: ctx.namespace,
    labels: {
      ...instanceLabels(ctx, options.component),
      ...(options.app ? { [LABEL.name]: options.app } : {}),
    },
    annotations: { ...generationAnnotation(ctx), ...options.annotations },
  };
}

function generationAnnotation(ctx: RenderContext): Record<string, string> {
  return { [GENERATION_ANNOTATION]: String(ctx.input.generation) };
}

/** Labels a workload selects its pods by; they never change, as selectors are immutable. */
function selectorLabels(ctx: RenderContext, component: string): Record<string, string> {
  return { [LABEL.instance]: ctx.namespace, [LABEL.component]: component };
}

function podLabels(ctx: RenderContext, app: AppName, component: string): Record<string, string> {
  return { ...instanceLabels(ctx, component), [LABEL.name]: app };
}

function cpu(millicores: number): string {
  return `${millicores}m`;
}

function memory(mib: number): string {
  return `${mib}Mi`;
}

function resourcesOf(size: PodSize): Record<string, Record<string, string>> {
  return {
    requests: { cpu: cpu(size.requests.cpuMillicores), memory: memory(size.requests.memoryMib) },
    limits: { cpu: cpu(size.limits.cpuMillicores), memory: memory(size.limits.memoryMib) },
  };
}

function envList(env: Record<string, string>): { name: string; value: string }[] {
  return Object.entries(env).map(([name, value]) => ({ name, value }));
}

interface ContainerOptions {
  /** Mastodon containers get the env ConfigMap and the Secret. */
  app?: AppName;
  name: string;
  image: string;
  args: string[];
  size: PodSize;
  env?: Record<string, string>;
  ports?: { name: string; containerPort: number }[];
  probes?: Record<string, unknown>;
  mountSystemVolume?: boolean;
}

/** A container meeting PodSecurity "restricted". */
function container(ctx: RenderContext, options: ContainerOptions): Record<string, unknown> {
  return {
    name: options.name,
    image: options.image,
    // args, not command: the Mastodon image's tini entrypoint reaps the ffmpeg and ImageMagick
    // children sidekiq spawns.
    args: options.args,
    ...((options.app ?? 'mastodon') === 'mastodon'
      ? {
          envFrom: [
            { configMapRef: { name: ENV_CONFIG_MAP } },
            { secretRef: { name: ctx.input.secretName } },
          ],
        }
      : {}),
    ...(options.env ? { env: envList(options.env) } : {}),
    ...(options.ports ? { ports: options.ports.map((port) => ({ ...port, protocol: 'TCP' })) } : {}),
    ...options.probes,
    resources: resourcesOf(options.size),
    securityContext: {
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] },
      runAsNonRoot: true,
    },
    ...(options.mountSystemVolume && !ctx.input.objectStorage
      ? { volumeMounts: [{ name: 'system', mountPath: SYSTEM_MOUNT_PATH }] }
      : {}),
  };
}

function podSpec(
  containers: Record<string, unknown>[],
  options: { volumes?: Record<string, unknown>[]; restartPolicy?: 'Never' } = {},
): Record<string, unknown> {
  return {
    automountServiceAccountToken: false,
    // Service links would inject REDIS_PORT=tcp://… for the `redis` Service and break Mastodon's REDIS_PORT.
    enableServiceLinks: false,
    securityContext: {
      runAsNonRoot: true,
      runAsUser: MASTODON_UID,
      runAsGroup: MASTODON_UID,
      fsGroup: MASTODON_UID,
      seccompProfile: { type: 'RuntimeDefault' },
    },
    ...(options.restartPolicy ? { restartPolicy: options.restartPolicy } : {}),
    containers,
    ...(options.volumes?.length ? { volumes: options.volumes } : {}),
  };
}

function systemVolumes(ctx: RenderContext): Record<string, unknown>[] {
  return ctx.input.objectStorage
    ? []
    : [{ name: 'system', persistentVolumeClaim: { claimName: SYSTEM_VOLUME_CLAIM } }];
}

function digest(value: string): string {
  return createHash('sha256').update(value).digest('hex');
}

// ---------------------------------------------------------------------------------------------
// Namespace and guard rails

function renderNamespace(ctx: RenderContext): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: {
      name: ctx.namespace,
      labels: {
        ...instanceLabels(ctx),
        'pod-security.kubernetes.io/enforce': 'restricted',
        'pod-security.kubernetes.io/enforce-version': 'latest',
      },
      annotations: generationAnnotation(ctx),
    },
  };
}

function renderResourceQuota(ctx: RenderContext): KubeObject {
  const { quota } = ctx.sizing;
  const addons = ctx.input.addonQuota;
  return {
    apiVersion: 'v1',
    kind: 'ResourceQuota',
    metadata: metadata(ctx, 'mastodon'),
    spec: {
      hard: {
        'requests.cpu': cpu(quota.cpuMillicores + (addons?.cpuMillicores ?? 0)),
        'limits.cpu': cpu(quota.cpuMillicores + (addons?.cpuMillicores ?? 0)),
        'requests.memory': memory(quota.memoryMib + (addons?.memoryMib ?? 0)),
        'limits.memory': memory(quota.memoryMib + (addons?.memoryMib ?? 0)),
        persistentvolumeclaims: String((ctx.input.objectStorage ? 0 : 1) + (addons?.volumes ?? 0)),
        'requests.storage': `${(ctx.input.objectStorage ? 0 : ctx.input.limits.storageGb) + (addons?.storageGb ?? 0)}Gi`,
      },
    },
  };
}

/** Defaults for containers that name no resources (cert-manager's solver, debugging pods). */
function renderLimitRange(ctx: RenderContext): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'LimitRange',
    metadata: metadata(ctx, 'mastodon'),
    spec: {
      limits: [
        {
          type: 'Container',
          default: { cpu: '200m', memory: '256Mi' },
          defaultRequest: { cpu: '50m', memory: '128Mi' },
        },
      ],
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Network policies

const tcp = (port: number) => ({ protocol: 'TCP', port });
const udp = (port: number) => ({ protocol: 'UDP', port });
const namespacePeer = (name: string) => ({
  namespaceSelector: { matchLabels: { [LABEL.namespaceName]: name } },
});
const appPeer = (app: AppName) => ({ podSelector: { matchLabels: { [LABEL.name]: app } } });

function networkPolicy(ctx: RenderContext, name: string, spec: Record<string, unknown>): KubeObject {
  return { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: metadata(ctx, name), spec };
}

function renderNetworkPolicies(ctx: RenderContext): KubeObject[] {
  const fromIngressController = (name: string, podSelector: Record<string, unknown>, port: number) =>
    networkPolicy(ctx, name, {
      podSelector,
      policyTypes: ['Ingress'],
      ingress: [{ from: [namespacePeer(INGRESS_CONTROLLER_NAMESPACE)], ports: [tcp(port)] }],
    });
  return [
    networkPolicy(ctx, 'default-deny', { podSelector: {}, policyTypes: ['Ingress', 'Egress'] }),
    fromIngressController('allow-ingress-to-web', { matchLabels: selectorLabels(ctx, 'web') }, PORTS.web),
    fromIngressController(
      'allow-ingress-to-streaming',
      { matchLabels: selectorLabels(ctx, 'streaming') },
      PORTS.streaming,
    ),
    fromIngressController(
      'allow-ingress-to-maintenance',
      { matchLabels: selectorLabels(ctx, 'maintenance') },
      PORTS.maintenance,
    ),
    // cert-manager's HTTP-01 solver runs in this namespace and is reached through the ingress controller.
    fromIngressController(
      'allow-ingress-to-acme-solver',
      { matchLabels: { 'acme.cert-manager.io/http01-solver': 'true' } },
      PORTS.acmeSolver,
    ),
    networkPolicy(ctx, 'allow-mastodon-to-redis', {
      podSelector: { matchLabels: selectorLabels(ctx, 'redis') },
      policyTypes: ['Ingress'],
      ingress: [{ from: [appPeer('mastodon')], ports: [tcp(PORTS.redis)] }],
    }),
    networkPolicy(ctx, 'allow-mastodon-egress', {
      podSelector: appPeer('mastodon').podSelector,
      policyTypes: ['Egress'],
      egress: mastodonEgressRules(ctx),
    }),
  ];
}

function mastodonEgressRules(ctx: RenderContext): Record<string, unknown>[] {
  const { database, smtp, search, objectStorage } = ctx.input;
  return [
    { to: [namespacePeer('kube-system')], ports: [udp(53), tcp(53)] },
    { to: [{ podSelector: { matchLabels: selectorLabels(ctx, 'redis') } }], ports: [tcp(PORTS.redis)] },
    egressTo(database.host, database.port),
    egressTo(smtp.server, smtp.port),
    ...(search ? [egressTo(search.host, search.port)] : []),
    ...(objectStorage ? [egressToUrl(objectStorage.endpoint)] : []),
    // Federation, link previews and remote media: public addresses only, so a crafted URL cannot
    // reach cluster or cloud-metadata services.
    {
      to: [
        {
          ipBlock: {
            cidr: '0.0.0.0/0',
            except: ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '169.254.0.0/16'],
          },
        },
        { ipBlock: { cidr: '::/0', except: ['fc00::/7', 'fe80::/10'] } },
      ],
      ports: [tcp(80), tcp(443)],
    },
  ];
}

function egressTo(host: string, port: number): Record<string, unknown> {
  const peer = peerFor(host);
  return peer ? { to: [peer], ports: [tcp(port)] } : { ports: [tcp(port)] };
}

function egressToUrl(url: string): Record<string, unknown> {
  const parsed = parseEndpoint(url);
  const port = parsed.port ? Number(parsed.port) : parsed.protocol === 'http:' ? 80 : 443;
  return egressTo(parsed.hostname.replace(/^\[(.*)\]$/, '$1'), port);
}

function parseEndpoint(url: string): URL {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch (cause) {
    throw new AppError('unprocessable', `Object storage endpoint ${JSON.stringify(url)} is not a URL`, {
      cause,
    });
  }
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') {
    throw new AppError('unprocessable', `Object storage endpoint ${JSON.stringify(url)} is not http(s)`);
  }
  return parsed;
}

/**
 * The narrowest peer NetworkPolicy can express for a host: an IP block for an address, the
 * namespace for an in-cluster Service name, or `null` (any address on that port) for a DNS
 * name, which NetworkPolicy cannot match.
 */
function peerFor(host: string): Record<string, unknown> | null {
  const family = isIP(host);
  if (family === 4) return { ipBlock: { cidr: `${host}/32` } };
  if (family === 6) return { ipBlock: { cidr: `${host}/128` } };
  const service = /^[a-z0-9-]+\.([a-z0-9-]+)\.svc(\.|$)/.exec(host);
  return service?.[1] ? namespacePeer(service[1]) : null;
}

// ---------------------------------------------------------------------------------------------
// Configuration

function mastodonEnv(ctx: Omit<RenderContext, 'env'>): Record<string, string> {
  const { domain, database, smtp, objectStorage, search } = ctx.input;
  return {
    LOCAL_DOMAIN: domain,
    WEB_DOMAIN: domain,
    RAILS_ENV: 'production',
    NODE_ENV: 'production',
    DB_HOST: database.host,
    DB_PORT: String(database.port),
    DB_NAME: database.name,
    DB_USER: database.user,
    // Web's pool; sidekiq, streaming and tasks override it with their own size.
    DB_POOL: String(ctx.sizing.web.threads),
    REDIS_HOST: 'redis',
    REDIS_PORT: String(PORTS.redis),
    SMTP_SERVER: smtp.server,
    SMTP_PORT: String(smtp.port),
    SMTP_FROM_ADDRESS: smtp.fromAddress,
    ...(objectStorage ? objectStorageEnv(objectStorage) : {}),
    ...(search
      ? {
          ES_ENABLED: 'true',
          ES_HOST: search.scheme === 'https' ? `https://${search.host}` : search.host,
          ES_PORT: String(search.port),
          ES_PRESET: 'single_node_cluster',
        }
      : {}),
  };
}

function objectStorageEnv(
  storage: NonNullable<InstanceRenderInput['objectStorage']>,
): Record<string, string> {
  const endpoint = parseEndpoint(storage.endpoint);
  return {
    S3_ENABLED: 'true',
    S3_BUCKET: storage.bucket,
    S3_ENDPOINT: storage.endpoint,
    // Without an alias host Mastodon builds media URLs from these, defaulting to AWS's hostname.
    S3_PROTOCOL: endpoint.protocol.replace(':', ''),
    S3_HOSTNAME: endpoint.host,
    S3_REGION: storage.region,
    S3_PERMISSION: 'public-read',
    ...(storage.aliasHost ? { S3_ALIAS_HOST: storage.aliasHost } : {}),
  };
}

function renderEnvConfigMap(ctx: RenderContext): KubeObject {
  return { apiVersion: 'v1', kind: 'ConfigMap', metadata: metadata(ctx, ENV_CONFIG_MAP), data: ctx.env };
}

function renderSystemVolumeClaim(ctx: RenderContext): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: metadata(ctx, SYSTEM_VOLUME_CLAIM, { component: 'media' }),
    spec: {
      // web and sidekiq, on any node, write the same files.
      accessModes: ['ReadWriteMany'],
      resources: { requests: { storage: `${ctx.input.limits.storageGb}Gi` } },
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Workloads

function deployment(
  ctx: RenderContext,
  options: {
    name: string;
    component: string;
    app: AppName;
    replicas: number;
    strategy: Record<string, unknown>;
    pod: Record<string, unknown>;
  },
): KubeObject {
  // Env comes from a ConfigMap, which pods read only at start: its hash rolls them when it changes.
  const podAnnotations =
    options.app === 'mastodon' ? { [CONFIG_HASH_ANNOTATION]: digest(JSON.stringify(ctx.env)) } : {};
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: metadata(ctx, options.name, { component: options.component, app: options.app }),
    spec: {
      // The maintenance page is the one workload of a suspended server.
      replicas: ctx.input.suspended && options.app !== 'maintenance' ? 0 : options.replicas,
      revisionHistoryLimit: 3,
      selector: { matchLabels: selectorLabels(ctx, options.component) },
      strategy: options.strategy,
      template: {
        metadata: {
          labels: podLabels(ctx, options.app, options.component),
          ...(options.app === 'mastodon' ? { annotations: podAnnotations } : {}),
        },
        spec: options.pod,
      },
    },
  };
}

// Builders rather than shared constants: no two places in the output share an object, so
// serialising to YAML gives no anchors and mutating one object cannot change another.
const rollingWithoutDowntime = () => ({
  type: 'RollingUpdate',
  rollingUpdate: { maxSurge: 1, maxUnavailable: 0 },
});
const recreate = () => ({ type: 'Recreate' });
const httpProbe = (path: string, port: string) => ({ httpGet: { path, port } });

function renderRedisDeployment(ctx: RenderContext): KubeObject {
  const redis = container(ctx, {
    app: 'redis',
    name: 'redis',
    image: REDIS_IMAGE,
    // Append-only file on the pod's emptyDir: queued jobs survive a container restart, not a reschedule.
    args: ['redis-server', '--appendonly', 'yes', '--dir', '/data'],
    size: ctx.sizing.redis.size,
    ports: [{ name: 'redis', containerPort: PORTS.redis }],
    probes: {
      readinessProbe: { tcpSocket: { port: 'redis' }, periodSeconds: 10 },
      livenessProbe: { tcpSocket: { port: 'redis' }, periodSeconds: 20, failureThreshold: 3 },
    },
  });
  return deployment(ctx, {
    name: 'redis',
    component: 'redis',
    app: 'redis',
    replicas: 1,
    strategy: recreate(),
    pod: podSpec([{ ...redis, volumeMounts: [{ name: 'data', mountPath: '/data' }] }], {
      volumes: [{ name: 'data', emptyDir: {} }],
    }),
  });
}

function renderWebDeployment(ctx: RenderContext): KubeObject {
  const { web } = ctx.sizing;
  const puma = container(ctx, {
    name: 'web',
    image: ctx.images.mastodon,
    args: ['bundle', 'exec', 'puma', '-C', 'config/puma.rb'],
    size: web.size,
    env: { WEB_CONCURRENCY: String(web.workers), MAX_THREADS: String(web.threads) },
    ports: [{ name: 'http', containerPort: PORTS.web }],
    probes: {
      startupProbe: { ...httpProbe('/health', 'http'), periodSeconds: 5, failureThreshold: 60 },
      readinessProbe: { ...httpProbe('/health', 'http'), periodSeconds: 10, failureThreshold: 3 },
      livenessProbe: { tcpSocket: { port: 'http' }, periodSeconds: 20, failureThreshold: 3 },
    },
    mountSystemVolume: true,
  });
  return deployment(ctx, {
    name: 'web',
    component: 'web',
    app: 'mastodon',
    replicas: web.replicas,
    strategy: rollingWithoutDowntime(),
    pod: podSpec([puma], { volumes: systemVolumes(ctx) }),
  });
}

function renderStreamingDeployment(ctx: RenderContext): KubeObject {
  const { streaming } = ctx.sizing;
  const health = () => httpProbe('/api/v1/streaming/health', 'streaming');
  const node = container(ctx, {
    name: 'streaming',
    image: ctx.images.streaming,
    args: ['node', './streaming/index.js'],
    size: streaming.size,
    env: { DB_POOL: String(streaming.dbPool) },
    ports: [{ name: 'streaming', containerPort: PORTS.streaming }],
    probes: {
      readinessProbe: { ...health(), periodSeconds: 10, failureThreshold: 3 },
      livenessProbe: { ...health(), periodSeconds: 20, failureThreshold: 3 },
    },
  });
  return deployment(ctx, {
    name: 'streaming',
    component: 'streaming',
    app: 'mastodon',
    replicas: 1,
    strategy: rollingWithoutDowntime(),
    pod: podSpec([node]),
  });
}

function renderSidekiqDeployment(ctx: RenderContext, process: SidekiqProcess): KubeObject {
  const sidekiq = container(ctx, {
    name: 'sidekiq',
    image: ctx.images.mastodon,
    args: [
      'bundle',
      'exec',
      'sidekiq',
      '-c',
      String(process.concurrency),
      ...process.queues.flatMap((queue) => ['-q', queue]),
    ],
    size: process.size,
    env: { DB_POOL: String(process.concurrency) },
    mountSystemVolume: true,
  });
  return deployment(ctx, {
    name: process.name,
    component: process.name,
    app: 'mastodon',
    replicas: 1,
    // Recreate: an old and a new pod of the scheduler process must never run side by side.
    strategy: recreate(),
    pod: podSpec([sidekiq], { volumes: systemVolumes(ctx) }),
  });
}

function taskPodSpec(
  ctx: RenderContext,
  name: string,
  args: string[],
  options: { env?: Record<string, string>; mountSystemVolume?: boolean } = {},
): Record<string, unknown> {
  const task = container(ctx, {
    name,
    image: ctx.images.mastodon,
    args,
    size: ctx.sizing.task.size,
    env: { DB_POOL: String(ctx.sizing.task.dbPool), ...options.env },
    mountSystemVolume: options.mountSystemVolume ?? false,
  });
  return podSpec([task], {
    restartPolicy: 'Never',
    volumes: options.mountSystemVolume ? systemVolumes(ctx) : [],
  });
}

/**
 * In which step the reconciler applies an object on a real cluster: `config` first (with the
 * pre-deployment migration, which must finish before the new image rolls out), then
 * `workloads`; after their rollout the `route` (the Ingress and its certificate, so traffic
 * moves only to pods that are ready: back from the maintenance page on resume), then the
 * post-deployment migration, then the owner account.
 */
export type ApplyPhase =
  | 'config'
  | 'pre-migrate'
  | 'workloads'
  | 'route'
  | 'post-migrate'
  | 'search-deploy'
  | 'owner-account';

const JOB_PHASES: Record<string, ApplyPhase> = {
  'db-migrate': 'pre-migrate',
  'db-post-migrate': 'post-migrate',
  'search-deploy': 'search-deploy',
  'owner-account': 'owner-account',
};

export function applyPhaseOf(object: KubeObject): ApplyPhase {
  const component = object.metadata.labels?.[LABEL.component] ?? '';
  if (object.kind === 'Job') return JOB_PHASES[component] ?? 'config';
  if (object.kind === 'CronJob') return 'workloads';
  if (object.kind === 'Ingress' || object.kind === 'Certificate') return 'route';
  if (object.kind === 'Deployment' && object.metadata.labels?.[LABEL.name] === 'mastodon') return 'workloads';
  return 'config';
}

/**
 * A run-once Job, named by its component and a digest of its spec. A Job's pod template cannot
 * change, so the name changes whenever the spec does (a new version: a new migration), and an
 * unchanged spec names the Job that already ran, so re-applying it runs nothing again.
 */
function runOnceJob(ctx: RenderContext, component: string, podSpec: Record<string, unknown>): KubeObject {
  const spec = {
    backoffLimit: 3,
    ttlSecondsAfterFinished: JOB_TTL_SECONDS,
    template: { metadata: { labels: podLabels(ctx, 'mastodon', component) }, spec: podSpec },
  };
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: metadata(ctx, `${component}-${digest(JSON.stringify(spec)).slice(0, 10)}`, {
      component,
      app: 'mastodon',
    }),
    spec,
  };
}

/** `pre` runs before the new image rolls out (post-deployment migrations skipped), `post` after it. */
function renderMigrationJob(ctx: RenderContext, phase: 'pre' | 'post'): KubeObject {
  const component = phase === 'pre' ? 'db-migrate' : 'db-post-migrate';
  const args = ['bundle', 'exec', 'rails', phase === 'pre' ? 'db:prepare' : 'db:migrate'];
  const env: Record<string, string> = phase === 'pre' ? { SKIP_POST_DEPLOYMENT_MIGRATIONS: 'true' } : {};
  return runOnceJob(ctx, component, taskPodSpec(ctx, component, args, { env }));
}

/**
 * Builds the search indexes once search is on, and again for each new version (whose indexes
 * may have changed): named by its spec like every run-once Job, so it runs once per version.
 */
function renderSearchDeployJob(ctx: RenderContext): KubeObject {
  const args = ['bin/tootctl', 'search', 'deploy', '--concurrency', String(ctx.sizing.task.concurrency)];
  return runOnceJob(ctx, 'search-deploy', taskPodSpec(ctx, 'search-deploy', args));
}

/**
 * Gives the owner an OAuth application and an `admin:read` access token whose value is the
 * server's `ADMIN_API_TOKEN` secret (Mastodon keeps access tokens as they are, so Woolly knows
 * it without reading it back), for Woolly's samplers (the admin measures API). The token
 * comes from the server's Secret through the environment, never the command line; both rows
 * are found or created, so a retried Job changes nothing.
 */
const OWNER_TOKEN_RUBY = [
  "owner = Account.find_local!(ENV.fetch('OWNER_USERNAME')).user",
  "app = Doorkeeper::Application.find_or_create_by!(name: 'Woolly') { |a| a.redirect_uri = 'urn:ietf:wg:oauth:2.0:oob'; a.scopes = 'admin:read' }",
  "Doorkeeper::AccessToken.find_or_create_by!(token: ENV.fetch('ADMIN_API_TOKEN')) { |t| t.application = app; t.resource_owner_id = owner.id; t.scopes = 'admin:read' }",
].join('\n');

/**
 * Creates the owner's account, confirmed, with the Owner role, then its admin API token
 * (`OWNER_TOKEN_RUBY`). tootctl prints the password it generates; that output is discarded so
 * no password lands in pod logs, and the owner sets one through Mastodon's own password
 * reset, by e-mail. The token step runs even when tootctl fails, so a retried Job whose
 * account already exists still completes, and fails when the account does not exist.
 */
function renderOwnerAccountJob(ctx: RenderContext, owner: { username: string; email: string }): KubeObject {
  if (!/^[a-z0-9_]{1,30}$/.test(owner.username)) {
    throw new AppError(
      'unprocessable',
      `Owner username ${JSON.stringify(owner.username)} is not a Mastodon username`,
    );
  }
  const script =
    'bin/tootctl accounts create "$OWNER_USERNAME" --email "$OWNER_EMAIL" --confirmed --role Owner > /dev/null; ' +
    'bin/rails runner "$OWNER_TOKEN_RUBY"';
  return runOnceJob(
    ctx,
    'owner-account',
    taskPodSpec(ctx, 'owner-account', ['sh', '-c', script], {
      env: { OWNER_USERNAME: owner.username, OWNER_EMAIL: owner.email, OWNER_TOKEN_RUBY },
    }),
  );
}

function renderMaintenanceCronJobs(ctx: RenderContext): KubeObject[] {
  // A minute derived from the instance spreads every server's clean-up over the hour; the two
  // jobs get different hours so only one task pod at a time needs the quota's task headroom.
  const minute = Number.parseInt(digest(ctx.input.instanceId).slice(0, 8), 16) % 60;
  const concurrency = ['--concurrency', String(ctx.sizing.task.concurrency)];
  return [
    cronJob(ctx, 'media-remove', `${minute} 3 * * *`, [
      'bin/tootctl',
      'media',
      'remove',
      '--days',
      '7',
      ...concurrency,
    ]),
    cronJob(ctx, 'preview-cards-remove', `${minute} 4 * * *`, [
      'bin/tootctl',
      'preview_cards',
      'remove',
      '--days',
      '30',
      ...concurrency,
    ]),
  ];
}

function cronJob(ctx: RenderContext, name: string, schedule: string, args: string[]): KubeObject {
  return {
    apiVersion: 'batch/v1',
    kind: 'CronJob',
    metadata: metadata(ctx, name, { component: name, app: 'mastodon' }),
    spec: {
      schedule,
      suspend: ctx.input.suspended === true,
      timeZone: 'Etc/UTC',
      concurrencyPolicy: 'Forbid',
      startingDeadlineSeconds: 3600,
      successfulJobsHistoryLimit: 1,
      failedJobsHistoryLimit: 3,
      jobTemplate: {
        spec: {
          backoffLimit: 2,
          ttlSecondsAfterFinished: JOB_TTL_SECONDS,
          template: {
            metadata: { labels: podLabels(ctx, 'mastodon', name) },
            // These delete cached files, which live on the system volume when there is no bucket.
            spec: taskPodSpec(ctx, name, args, { mountSystemVolume: true }),
          },
        },
      },
    },
  };
}

function renderWebDisruptionBudget(ctx: RenderContext): KubeObject {
  return {
    apiVersion: 'policy/v1',
    kind: 'PodDisruptionBudget',
    metadata: metadata(ctx, 'web', { component: 'web', app: 'mastodon' }),
    spec: { minAvailable: 1, selector: { matchLabels: selectorLabels(ctx, 'web') } },
  };
}

// ---------------------------------------------------------------------------------------------
// Network

function renderService(
  ctx: RenderContext,
  name: string,
  app: AppName,
  component: string,
  port: number,
  portName = name,
): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: metadata(ctx, name, { component, app }),
    spec: {
      type: 'ClusterIP',
      selector: selectorLabels(ctx, component),
      ports: [{ name: portName, port, targetPort: portName, protocol: 'TCP' }],
    },
  };
}

function tlsSecretName(ctx: RenderContext): string {
  return `${ctx.namespace}-tls`;
}

/**
 * Routes the domain to web, and `/api/v1/streaming` to streaming. It carries no
 * `cert-manager.io/cluster-issuer` annotation: the Certificate below already owns the TLS
 * Secret, and ingress-shim would keep logging that it refuses to update a Certificate it does
 * not own.
 */
function renderIngress(ctx: RenderContext): KubeObject {
  const backend = (service: string, port: string) => ({ service: { name: service, port: { name: port } } });
  const route = ctx.input.objectStorage?.route;
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'Ingress',
    metadata: metadata(ctx, 'mastodon', {
      annotations: { 'nginx.ingress.kubernetes.io/proxy-body-size': MAX_UPLOAD_BODY },
    }),
    spec: {
      ingressClassName: ctx.input.ingressClassName,
      tls: [{ hosts: [ctx.input.domain], secretName: tlsSecretName(ctx) }],
      rules: [
        {
          host: ctx.input.domain,
          http: {
            // Suspended, every path gets the maintenance page (a 503) instead of a bare gateway error.
            paths: ctx.input.suspended
              ? [{ path: '/', pathType: 'Prefix', backend: backend('maintenance', 'http') }]
              : [
                  {
                    path: '/api/v1/streaming',
                    pathType: 'Prefix',
                    backend: backend('streaming', 'streaming'),
                  },
                  ...(route
                    ? [
                        {
                          path: route.path,
                          pathType: 'Prefix',
                          backend: { service: { name: route.service, port: { number: route.port } } },
                        },
                      ]
                    : []),
                  { path: '/', pathType: 'Prefix', backend: backend('web', 'http') },
                ],
          },
        },
      ],
    },
  };
}

/**
 * What a suspended server shows: a small nginx answering every request with a 503 page that
 * says the server is paused and its data kept, so visitors and other servers get a clear
 * answer (and a Retry-After) rather than a gateway error. Its own nginx.conf keeps every
 * writable path under /tmp, so the root filesystem stays read-only.
 */
function renderMaintenancePage(ctx: RenderContext): KubeObject[] {
  const html = [
    '<!doctype html>',
    '<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">',
    `<title>${ctx.input.domain} is paused</title></head>`,
    '<body style="font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem">',
    `<h1>${ctx.input.domain} is paused</h1>`,
    '<p>This Mastodon server is paused by its host. Its posts, accounts and media are kept while it is paused.</p>',
    '</body></html>',
    '',
  ].join('\n');
  const nginx = [
    'worker_processes 1;',
    'pid /tmp/nginx.pid;',
    'error_log /dev/stderr warn;',
    'events { worker_connections 256; }',
    'http {',
    '  access_log off;',
    '  client_body_temp_path /tmp/body;',
    '  proxy_temp_path /tmp/proxy;',
    '  fastcgi_temp_path /tmp/fastcgi;',
    '  uwsgi_temp_path /tmp/uwsgi;',
    '  scgi_temp_path /tmp/scgi;',
    '  server {',
    `    listen ${PORTS.maintenance};`,
    '    root /usr/share/nginx/maintenance;',
    '    error_page 503 /index.html;',
    '    location = /index.html { internal; default_type text/html; add_header Retry-After 3600 always; }',
    '    location = /health { access_log off; return 200; }',
    '    location / { return 503; }',
    '  }',
    '}',
    '',
  ].join('\n');
  const page = container(ctx, {
    app: 'maintenance',
    name: 'nginx',
    image: MAINTENANCE_IMAGE,
    args: ['nginx', '-c', '/etc/nginx/maintenance/nginx.conf', '-g', 'daemon off;'],
    size: MAINTENANCE_SIZE,
    ports: [{ name: 'http', containerPort: PORTS.maintenance }],
    probes: { readinessProbe: httpProbe('/health', 'http') },
  });
  return [
    {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: metadata(ctx, 'maintenance-page', { component: 'maintenance', app: 'maintenance' }),
      data: { 'index.html': html, 'nginx.conf': nginx },
    },
    deployment(ctx, {
      name: 'maintenance',
      component: 'maintenance',
      app: 'maintenance',
      replicas: 1,
      strategy: recreate(),
      pod: podSpec(
        [
          {
            ...page,
            securityContext: { ...(page.securityContext as object), readOnlyRootFilesystem: true },
            volumeMounts: [
              { name: 'page', mountPath: '/usr/share/nginx/maintenance', readOnly: true },
              { name: 'page', mountPath: '/etc/nginx/maintenance', readOnly: true },
              { name: 'tmp', mountPath: '/tmp' },
            ],
          },
        ],
        {
          volumes: [
            { name: 'page', configMap: { name: 'maintenance-page' } },
            { name: 'tmp', emptyDir: { medium: 'Memory', sizeLimit: '8Mi' } },
          ],
        },
      ),
    }),
    renderService(ctx, 'maintenance', 'maintenance', 'maintenance', PORTS.maintenance, 'http'),
  ];
}

function renderCertificate(ctx: RenderContext): KubeObject {
  return {
    apiVersion: 'cert-manager.io/v1',
    kind: 'Certificate',
    metadata: metadata(ctx, tlsSecretName(ctx)),
    spec: {
      secretName: tlsSecretName(ctx),
      dnsNames: [ctx.input.domain],
      issuerRef: { group: 'cert-manager.io', kind: 'ClusterIssuer', name: ctx.input.clusterIssuer },
    },
  };
}
