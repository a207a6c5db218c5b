/**
 * The Kubernetes adapter: applies an instance's objects to a real cluster with server-side apply
 * and prunes what is no longer rendered. Only this file talks to `@kubernetes/client-node`.
 * Every API call has a per-request timeout and is retried a few times, with backoff, when it
 * fails in a way a later try may not; what still fails goes to the job queue, which retries the
 * whole reconcile with its own, longer backoff.
 */
import { createHash } from 'node:crypto';
import type { Agent } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  AbortError,
  ApiException,
  type Configuration,
  FetchError,
  HttpMethod,
  KubeConfig,
  type KubernetesObject,
  KubernetesObjectApi,
  PatchStrategy,
  type RequestContext,
  type ResponseContext,
} from '@kubernetes/client-node';
import { type KubeObject, namespaceFor } from '../manifests/render-instance.ts';
import type { ClusterTarget, JobState, ObservedObject } from './target.ts';

/** The field manager Woolly's applies are recorded under in `metadata.managedFields`. */
export const FIELD_MANAGER = 'woolly';

/**
 * The labels `instanceLabels` in render-instance.ts puts on every object of an instance; prune
 * and remove only ever touch objects that carry both.
 */
const PART_OF_LABEL = 'app.kubernetes.io/part-of';
const INSTANCE_ID_LABEL = 'woolly.dev/instance-id';
/** The annotation render-instance.ts puts on every object but the Secret: the generation applied. */
const GENERATION_ANNOTATION = 'woolly.dev/generation';
/**
 * Asks the server for metadata only (PartialObjectMetadataList): no spec, no status, so a page
 * of Deployments weighs a fraction of the full list. A server that cannot send it falls back to
 * the plain list, which has the same metadata.
 */
const METADATA_ONLY =
  'application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1, application/json;q=0.9';
/** `requestPromise`'s type for an answer returned as parsed JSON, without client-node's models. */
const RAW_JSON = 'raw-json';

/** One page of a metadata-only list. */
interface MetadataPage {
  items?: {
    metadata?: {
      name?: string;
      namespace?: string;
      labels?: Record<string, string>;
      annotations?: Record<string, string>;
    };
  }[];
  metadata?: { continue?: string };
}

/** An API group, version and kind, e.g. `{ apiVersion: 'apps/v1', kind: 'Deployment' }`. */
export interface KindRef {
  apiVersion: string;
  kind: string;
}

/** Every namespaced kind `renderInstanceManifests` and `renderInstanceSecret` can produce. */
export const INSTANCE_KINDS: readonly KindRef[] = [
  { apiVersion: 'v1', kind: 'Secret' },
  { apiVersion: 'v1', kind: 'ResourceQuota' },
  { apiVersion: 'v1', kind: 'LimitRange' },
  { apiVersion: 'v1', kind: 'ConfigMap' },
  { apiVersion: 'v1', kind: 'Service' },
  { apiVersion: 'v1', kind: 'PersistentVolumeClaim' },
  { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy' },
  { apiVersion: 'networking.k8s.io/v1', kind: 'Ingress' },
  { apiVersion: 'apps/v1', kind: 'Deployment' },
  { apiVersion: 'batch/v1', kind: 'Job' },
  { apiVersion: 'batch/v1', kind: 'CronJob' },
  { apiVersion: 'policy/v1', kind: 'PodDisruptionBudget' },
  { apiVersion: 'cert-manager.io/v1', kind: 'Certificate' },
];

export interface KubernetesTargetOptions {
  /** Kinds pruned and counted per instance; defaults to `INSTANCE_KINDS`. */
  kinds?: readonly KindRef[];
  /** How long `remove` waits for the namespace to be gone or Terminating (default 60 s). */
  removeTimeoutMs?: number;
  /** How long one HTTP request to the API server may take, answer included (default 30 s). */
  requestTimeoutMs?: number;
  /** How many times a call is tried in all while it fails retryably (default 4). */
  maxAttempts?: number;
  /** The longest wait before the first retry; it doubles with each retry (default 200 ms). */
  retryBaseMs?: number;
  /** The longest wait before any retry, a server's Retry-After included (default 5 s). */
  retryCapMs?: number;
  /** Objects per page when `observe` lists a kind across all namespaces (default 500, as kubectl). */
  observePageSize?: number;
}

function resolveOptions(options: KubernetesTargetOptions) {
  return {
    kinds: options.kinds ?? INSTANCE_KINDS,
    removeTimeoutMs: options.removeTimeoutMs ?? 60_000,
    pollIntervalMs: 250,
    requestTimeoutMs: options.requestTimeoutMs ?? 30_000,
    maxAttempts: options.maxAttempts ?? 4,
    retryBaseMs: options.retryBaseMs ?? 200,
    retryCapMs: options.retryCapMs ?? 5_000,
    observePageSize: options.observePageSize ?? 500,
  };
}

/**
 * A Kubernetes API call that failed. `retryable` says whether the same call may succeed later
 * (conflicts, throttling, server and network errors); a refused object or a missing API kind
 * never will. The message keeps the server's own message, never the request body, and any
 * Secret value in it is replaced.
 */
export class KubernetesApiError extends Error {
  override name = 'KubernetesApiError';
  /** HTTP status, or `undefined` when no response arrived (network error). */
  readonly status: number | undefined;
  /**
   * The Status `reason` (`Invalid`, `Conflict`, `NotFound`…), `NotServed` for a missing kind,
   * `Network` when no answer came, `Timeout` when none came in time.
   */
  readonly reason: string;
  readonly retryable: boolean;

  constructor(message: string, options: { status: number | undefined; reason: string; retryable: boolean }) {
    super(message);
    this.status = options.status;
    this.reason = options.reason;
    this.retryable = options.retryable;
  }
}

const REDACTED = '[redacted]';

/** The values of every Secret among `objects`, raw and base64, to be kept out of messages. */
function secretValuesOf(objects: readonly KubeObject[]): string[] {
  const values = new Set<string>();
  for (const object of objects) {
    if (object.kind !== 'Secret') continue;
    for (const field of ['data', 'stringData'] as const) {
      for (const value of Object.values((object[field] ?? {}) as Record<string, string>)) {
        if (!value) continue;
        values.add(value);
        values.add(field === 'data' ? Buffer.from(value, 'base64').toString('utf8') : toBase64(value));
      }
    }
  }
  // Longest first, so a value containing another is replaced whole.
  return [...values].filter(Boolean).sort((a, b) => b.length - a.length);
}

const toBase64 = (value: string) => Buffer.from(value, 'utf8').toString('base64');

function redactValues(message: string, secrets: readonly string[]): string {
  return secrets.reduce((text, secret) => text.replaceAll(secret, REDACTED), message);
}

const describe = (object: { kind: string; metadata: { name: string; namespace?: string } }) =>
  `${object.kind} ${object.metadata.namespace ? `${object.metadata.namespace}/` : ''}${object.metadata.name}`;

/** The server's Status message from an ApiException body (a JSON string in client-node 1.4). */
function statusOf(body: unknown): { message?: string; reason?: string } {
  if (typeof body !== 'string') return {};
  try {
    const parsed = JSON.parse(body) as { message?: unknown; reason?: unknown };
    return {
      ...(typeof parsed.message === 'string' ? { message: parsed.message } : {}),
      ...(typeof parsed.reason === 'string' ? { reason: parsed.reason } : {}),
    };
  } catch {
    // Not a Status (a proxy's HTML page, say): its text is no server message worth keeping.
    return {};
  }
}

/**
 * Maps anything a client-node call threw to a KubernetesApiError. The ApiException itself is
 * not kept as `cause`: its message carries the whole response body and headers.
 */
function toKubernetesError(
  error: unknown,
  action: string,
  secrets: readonly string[],
  requestTimeoutMs: number,
): unknown {
  if (error instanceof KubernetesApiError) return error;
  if (error instanceof ApiException) {
    const status = error.code;
    const server = statusOf(error.body);
    // 409: a conflicting write or an object being deleted; 429: throttled; 5xx: the server's trouble.
    const retryable = status === 409 || status === 429 || status >= 500;
    const text = server.message ?? `HTTP ${status}`;
    return new KubernetesApiError(
      redactValues(`${action}: ${status} ${server.reason ?? ''}: ${text}`, secrets),
      {
        status,
        reason: server.reason ?? `HTTP${status}`,
        retryable,
      },
    );
  }
  if (error instanceof AbortError) {
    // Only the per-request timeout aborts a request (ObjectApi.requestPromise). The server may
    // still have done the work: every call here is safe to repeat.
    return new KubernetesApiError(`${action}: no answer within ${requestTimeoutMs} ms`, {
      status: undefined,
      reason: 'Timeout',
      retryable: true,
    });
  }
  if (error instanceof FetchError) {
    // No response: the server may be restarting or the network briefly down.
    return new KubernetesApiError(redactValues(`${action}: network error: ${error.message}`, secrets), {
      status: undefined,
      reason: 'Network',
      retryable: true,
    });
  }
  return error;
}

/** The server's Retry-After in ms, when it sent one in seconds (with a 429, or a 503 while starting). */
function retryAfterMsOf(error: unknown): number | undefined {
  if (!(error instanceof ApiException)) return undefined;
  // node-fetch hands client-node the header names in lower case.
  const seconds = Number(error.headers['retry-after']);
  return Number.isFinite(seconds) && seconds >= 0 ? seconds * 1000 : undefined;
}

/** For calls where a 404 is an answer (already gone, nothing there): `undefined` for it. */
function undefinedIfNotFound(error: unknown): undefined {
  if (error instanceof ApiException && error.code === 404) return undefined;
  throw error;
}

function notServed(kind: KindRef, detail: string): KubernetesApiError {
  const group = kind.apiVersion.includes('/') ? kind.apiVersion.split('/')[0] : 'core';
  return new KubernetesApiError(
    `the cluster does not serve kind ${kind.kind} of API group ${group} (${kind.apiVersion}): ${detail}; install its CRD (e.g. cert-manager for cert-manager.io)`,
    { status: 404, reason: 'NotServed', retryable: false },
  );
}

/**
 * KubernetesObjectApi with three additions. client-node 1.4's `patch` serialises the body through
 * its typed models, which silently drop fields whose model name differs from the JSON name
 * (`NetworkPolicy` `from`, `LimitRange` `default`): an apply without `from` would open a
 * NetworkPolicy to everyone. So `apply` sends the object as JSON, exactly as given.
 * `findResource` exposes the discovery lookup, so a missing kind is told apart from a missing
 * object. And every request, discovery included, is aborted after `requestTimeoutMs`.
 */
class ObjectApi extends KubernetesObjectApi {
  /** Set by makeKubernetesTarget (the constructor is client-node's, called by `makeApiClient`). */
  requestTimeoutMs = 30_000;

  /** The one connection pool of this target's requests (see `requestPromise`). */
  private agent: Agent | undefined;

  /**
   * client-node 1.4 sets no timeout: a server that takes the connection and never answers would
   * hold the call, and the job, forever. Its fetch (node-fetch) aborts on the signal, also while
   * the body is still being read. And it makes a new agent for every request, so every request
   * paid a TLS handshake (about half the provisioner's CPU): the first agent it makes, with this
   * kubeconfig's CA and credentials, is kept and made keep-alive, and every request reuses it.
   */
  protected override requestPromise<T extends KubernetesObject>(
    request: RequestContext,
    type?: string,
    options?: Configuration,
  ): Promise<T> {
    request.setSignal(AbortSignal.timeout(this.requestTimeoutMs));
    const setAgent = request.setAgent.bind(request);
    request.setAgent = (agent) => {
      this.agent ??= Object.assign(agent, { keepAlive: true });
      setAgent(this.agent);
    };
    return super.requestPromise(request, type, options);
  }

  /** The API resource for `kind`, `undefined` when the cluster does not serve it. */
  async findResource(kind: KindRef): Promise<{ namespaced: boolean } | undefined> {
    try {
      return await this.resource(kind.apiVersion, kind.kind);
    } catch (error) {
      // Discovery answers 404 for a group/version no one serves (e.g. no cert-manager CRDs).
      if (error instanceof ApiException && error.code === 404) return undefined;
      throw error;
    }
  }

  /**
   * One page of `kind`'s objects across all namespaces (or of a cluster-wide kind) matching
   * `labelSelector`, metadata only. Not through `list`: client-node deserialises every answer
   * through its models, and a PartialObjectMetadataList's `metadata` would pass as an ObjectMeta,
   * which drops the `continue` token.
   */
  async listMetadata(
    kind: KindRef,
    labelSelector: string,
    limit: number,
    continueToken?: string,
  ): Promise<MetadataPage> {
    const path = await this.specUriPath(
      { apiVersion: kind.apiVersion, kind: kind.kind, metadata: {} },
      'list',
    );
    const request = this.configuration.baseServer.makeRequestContext(path, HttpMethod.GET);
    request.setHeaderParam('Accept', METADATA_ONLY);
    request.setQueryParam('labelSelector', labelSelector);
    request.setQueryParam('limit', String(limit));
    if (continueToken) request.setQueryParam('continue', continueToken);
    return this.requestPromise(request, RAW_JSON) as Promise<MetadataPage>;
  }

  protected override async processResponse<T extends KubernetesObject>(
    response: ResponseContext,
    type?: string,
  ): Promise<T> {
    const ok = response.httpStatusCode >= 200 && response.httpStatusCode <= 299;
    if (type !== RAW_JSON || !ok)
      return super.processResponse(response, type === RAW_JSON ? undefined : type);
    return JSON.parse(await response.body.text()) as T;
  }

  async apply(body: KubernetesObject): Promise<KubernetesObject> {
    const path = await this.specUriPath(body, 'patch');
    const request = this.configuration.baseServer.makeRequestContext(path, HttpMethod.PATCH);
    request.setHeaderParam('Accept', 'application/json');
    request.setHeaderParam('Content-Type', PatchStrategy.ServerSideApply);
    request.setQueryParam('fieldManager', FIELD_MANAGER);
    // Woolly owns these objects outright: a field someone else changed (kubectl edit, another
    // controller) is taken back rather than failing the apply with a conflict.
    request.setQueryParam('force', 'true');
    request.setBody(JSON.stringify(body));
    return this.requestPromise(request);
  }
}

/** Server-set metadata: sending it makes an apply fail (managedFields) or race (resourceVersion, uid). */
const SERVER_SET_METADATA = [
  'managedFields',
  'resourceVersion',
  'uid',
  'creationTimestamp',
  'generation',
  'selfLink',
  'deletionTimestamp',
  'deletionGracePeriodSeconds',
] as const;

/** The apply body: only fields Woolly owns, never `status` or server-set metadata. */
function toApplyBody(object: KubeObject): KubernetesObject {
  const { status: _status, ...rest } = structuredClone(object);
  const metadata: Record<string, unknown> = { ...rest.metadata };
  for (const key of SERVER_SET_METADATA) delete metadata[key];
  return { ...rest, metadata } as KubernetesObject;
}

interface JobStatus {
  active?: number;
  succeeded?: number;
  failed?: number;
  conditions?: { type?: string; status?: string; reason?: string; message?: string }[];
}

/** A Job's outcome from its status, as the Job controller reports it. */
function jobStateOf(status: JobStatus): JobState {
  const condition = (type: string) =>
    status.conditions?.find((entry) => entry.type === type && entry.status === 'True');
  const failed = condition('Failed');
  if (failed) {
    return {
      state: 'failed',
      detail: `${failed.reason ?? 'Failed'}: ${failed.message ?? `${status.failed ?? 0} pods failed`}`,
    };
  }
  if (condition('Complete')) return { state: 'succeeded', detail: 'complete' };
  return {
    state: 'running',
    detail: `${status.active ?? 0} running, ${status.failed ?? 0} failed so far`,
  };
}

const keyOf = (object: { apiVersion?: string; kind?: string; metadata?: { name?: string } }) =>
  `${object.apiVersion}/${object.kind}/${object.metadata?.name}`;

/**
 * A ClusterTarget on a real cluster. Each instance lives in its own namespace
 * (`namespaceFor(instanceId)`); every object must be that Namespace or lie in it.
 */
export function makeKubernetesTarget(
  kubeconfigYaml: string,
  options: KubernetesTargetOptions = {},
): ClusterTarget {
  const config = resolveOptions(options);
  const kc = new KubeConfig();
  kc.loadFromString(kubeconfigYaml);
  const api = kc.makeApiClient(ObjectApi);
  api.requestTimeoutMs = config.requestTimeoutMs;
  const selectorFor = (instanceId: string) => `${PART_OF_LABEL}=woolly,${INSTANCE_ID_LABEL}=${instanceId}`;

  /**
   * Runs `run`, one API call (possibly several requests: discovery, then the call), tried up to
   * `maxAttempts` times while it fails retryably: a blip (a 500, a dropped connection, a
   * timeout, throttling) then costs a second, not a failed step and a job retry minutes later.
   * Every call made here is safe to repeat: applies and deletes are idempotent, reads are reads.
   * What `run` throws becomes a KubernetesApiError naming `action`, with `secrets` redacted.
   */
  async function call<T>(action: string, run: () => Promise<T>, secrets: readonly string[] = []): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await run();
      } catch (caught) {
        const error = toKubernetesError(caught, action, secrets, config.requestTimeoutMs);
        if (!(error instanceof KubernetesApiError)) throw error;
        // A permanent error (a refused object, a missing kind, forbidden) fails the same way again.
        if (!error.retryable || attempt >= config.maxAttempts) {
          if (attempt === 1) throw error;
          throw new KubernetesApiError(`${error.message} (after ${attempt} attempts)`, {
            status: error.status,
            reason: error.reason,
            retryable: error.retryable,
          });
        }
        await sleep(backoffMs(attempt, retryAfterMsOf(caught)));
      }
    }
  }

  /**
   * The wait before retry number `attempt`: the server's Retry-After when it sent one, else
   * "full jitter", a random wait up to a ceiling that doubles each time, so workers that failed
   * together against one troubled server do not come back together. Never above the cap.
   */
  function backoffMs(attempt: number, retryAfterMs: number | undefined): number {
    if (retryAfterMs !== undefined) return Math.min(config.retryCapMs, retryAfterMs);
    return Math.random() * Math.min(config.retryCapMs, config.retryBaseMs * 2 ** (attempt - 1));
  }

  /** The instance's objects of every served kind in `config.kinds`, found by label. */
  async function listInstanceObjects(
    instanceId: string,
    namespace: string,
    kinds: readonly KindRef[] = config.kinds,
  ): Promise<KubernetesObject[]> {
    const found: KubernetesObject[] = [];
    for (const kind of kinds) {
      const items = await call(`list ${kind.kind} in ${namespace}`, async () => {
        // A kind the cluster does not serve has no objects to prune or count.
        if (!(await api.findResource(kind))) return [];
        const list = await api.list(
          kind.apiVersion,
          kind.kind,
          namespace,
          undefined,
          undefined,
          undefined,
          undefined,
          selectorFor(instanceId),
        );
        return list.items;
      });
      found.push(...items.map((item) => ({ ...item, apiVersion: kind.apiVersion, kind: kind.kind })));
    }
    return found;
  }

  return {
    dryRun: false,
    /**
     * One paginated, metadata-only list per kind across the whole cluster (not a list per
     * instance): about twelve kinds times a page per 500 objects, however many instances there
     * are. Jobs are left out: they run once and expire by their TTL. Only presence and the
     * generation annotation are read: a field someone else edited is out of scope, since
     * server-side apply with force takes it back at the instance's next apply.
     */
    async observe(instanceIds) {
      const kinds: KindRef[] = [
        { apiVersion: 'v1', kind: 'Namespace' },
        ...config.kinds.filter((kind) => kind.kind !== 'Job'),
      ];
      const observed: ObservedObject[] = [];
      for (const kind of kinds) {
        // A kind the cluster does not serve has no objects.
        if (!(await call(`discover ${kind.kind}`, () => api.findResource(kind)))) continue;
        let continueToken: string | undefined;
        do {
          // An expired continue token (410, after minutes between pages) fails the pass; the
          // next resync lists afresh.
          const page = await call(`list ${kind.kind} in every namespace`, () =>
            api.listMetadata(kind, `${PART_OF_LABEL}=woolly`, config.observePageSize, continueToken),
          );
          for (const { metadata = {} } of page.items ?? []) {
            const instanceId = metadata.labels?.[INSTANCE_ID_LABEL];
            if (!instanceId || !instanceIds.has(instanceId)) continue;
            // Only objects where the instance keeps them count as its own.
            const home = kind.kind === 'Namespace' ? metadata.name : metadata.namespace;
            if (home !== namespaceFor(instanceId)) continue;
            const annotation = metadata.annotations?.[GENERATION_ANNOTATION];
            observed.push({
              instanceId,
              kind: kind.kind,
              name: metadata.name ?? '',
              generation: annotation === undefined ? null : Number.parseInt(annotation, 10) || 0,
            });
          }
          continueToken = page.metadata?.continue || undefined;
        } while (continueToken);
      }
      return observed;
    },

    async apply(instanceId, _generation, objects) {
      const namespace = namespaceFor(instanceId);
      const secrets = secretValuesOf(objects);
      for (const object of objects) {
        const inNamespace =
          object.kind === 'Namespace'
            ? object.metadata.name === namespace
            : object.metadata.namespace === namespace;
        if (!inNamespace) {
          throw new KubernetesApiError(
            `${describe(object)} is outside the instance's namespace ${namespace}: it would never be pruned`,
            { status: undefined, reason: 'OutsideNamespace', retryable: false },
          );
        }
      }

      for (const object of objects) {
        // A 409 is retried too: with force, an apply conflicts with no field manager, only with
        // a write to the same object at the same moment, which the next try goes after.
        await call(
          `apply ${describe(object)}`,
          async () => {
            if (!(await api.findResource(object))) {
              throw notServed(object, `cannot apply ${describe(object)}`);
            }
            await api.apply(toApplyBody(object));
          },
          secrets,
        );
      }

      return { applied: objects.length };
    },

    async prune(instanceId, _generation, keep) {
      const namespace = namespaceFor(instanceId);
      const kept = new Set(keep.map(keyOf));
      // Jobs are never pruned: deleting one could kill a migration still running, and
      // finished Jobs go by their own TTL. Nor are a backup's objects: a backup runs beside
      // the reconciles and re-applies them each time.
      const stale = (await listInstanceObjects(instanceId, namespace)).filter(
        (object) =>
          !kept.has(keyOf(object)) &&
          object.kind !== 'Job' &&
          object.metadata?.labels?.['app.kubernetes.io/component'] !== 'backup',
      );
      for (const object of stale) {
        const ref = { kind: object.kind ?? '', metadata: { name: object.metadata?.name ?? '', namespace } };
        // Background: a pruned Deployment takes its pods with it. Already gone (deleted
        // meanwhile, or by an earlier try whose answer was lost) is what pruning wanted.
        await call(`prune ${describe(ref)}`, () =>
          api
            .delete(object, undefined, undefined, undefined, undefined, 'Background')
            .catch(undefinedIfNotFound),
        );
      }
      return { pruned: stale.length };
    },

    async jobState(instanceId, name) {
      const namespace = namespaceFor(instanceId);
      const header = { apiVersion: 'batch/v1', kind: 'Job', metadata: { name, namespace } };
      const job: KubernetesObject & { status?: JobStatus } = await call(`read Job ${namespace}/${name}`, () =>
        api.read(header),
      );
      const state = jobStateOf(job.status ?? {});
      if (state.state === 'failed') {
        await call(`delete failed Job ${namespace}/${name}`, () =>
          api
            .delete(header, undefined, undefined, undefined, undefined, 'Background')
            .catch(undefinedIfNotFound),
        );
      }
      return state;
    },

    async rollout(instanceId) {
      const namespace = namespaceFor(instanceId);
      const deployments = await listInstanceObjects(instanceId, namespace, [
        { apiVersion: 'apps/v1', kind: 'Deployment' },
      ]);
      const waiting = deployments.flatMap((object) => {
        const deployment = object as KubernetesObject & {
          spec?: { replicas?: number };
          status?: { observedGeneration?: number; updatedReplicas?: number; availableReplicas?: number };
        };
        const want = deployment.spec?.replicas ?? 1;
        const status = deployment.status ?? {};
        const seen = (status.observedGeneration ?? 0) >= (deployment.metadata?.generation ?? 0);
        const ready =
          seen && (status.updatedReplicas ?? 0) >= want && (status.availableReplicas ?? 0) >= want;
        return ready
          ? []
          : [
              `${deployment.metadata?.name} ${status.availableReplicas ?? 0}/${want} available${seen ? '' : ', new spec not yet seen'}`,
            ];
      });
      return { done: waiting.length === 0, waiting };
    },

    async remove(instanceId) {
      const namespace = namespaceFor(instanceId);
      const header = { apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace } };
      const readNamespace = () =>
        call(`read Namespace ${namespace}`, () => api.read(header).catch(undefinedIfNotFound));

      const existing = await readNamespace();
      if (!existing) return { removed: 0 };
      if (existing.metadata?.labels?.[INSTANCE_ID_LABEL] !== instanceId) {
        throw new KubernetesApiError(
          `Namespace ${namespace} is not labelled ${INSTANCE_ID_LABEL}=${instanceId}: refusing to delete it`,
          { status: undefined, reason: 'NotOwned', retryable: false },
        );
      }
      const removed = (await listInstanceObjects(instanceId, namespace)).length + 1;
      await call(`delete Namespace ${namespace}`, () => api.delete(header).catch(undefinedIfNotFound));

      // The namespace controller empties a Terminating namespace on its own; the deletion is
      // accepted once the server marks it so.
      const deadline = Date.now() + config.removeTimeoutMs;
      for (;;) {
        const current = await readNamespace();
        if (!current || current.metadata?.deletionTimestamp) return { removed };
        if (Date.now() > deadline) {
          throw new KubernetesApiError(
            `Namespace ${namespace} is neither gone nor Terminating ${config.removeTimeoutMs} ms after its deletion`,
            { status: undefined, reason: 'Timeout', retryable: true },
          );
        }
        await sleep(config.pollIntervalMs);
      }
    },
  };
}

const targets = new Map<string, ClusterTarget>();

/**
 * The target of a cluster's kubeconfig, made once per process and kept, so its keep-alive
 * connections serve every reconcile rather than one. Keyed by the kubeconfig itself: a
 * re-registered cluster with new credentials gets a new target.
 */
export function kubernetesTargetFor(kubeconfigYaml: string): ClusterTarget {
  const key = createHash('sha256').update(kubeconfigYaml).digest('hex');
  let target = targets.get(key);
  if (!target) {
    target = makeKubernetesTarget(kubeconfigYaml);
    targets.set(key, target);
  }
  return target;
}
