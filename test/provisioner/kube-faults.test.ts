/**
 * The Kubernetes adapter when the API misbehaves. The faults are injected by a proxy
 * (test/support/kube-fault-proxy.ts) in front of the tests' real kube-apiserver: chosen calls
 * are answered 409/422/429/500, hung, held or dropped; every other call reaches the real server,
 * so what the adapter's retries leave behind is read back from the server itself. The last group
 * provisions an order placed through the API, as kubernetes-reconcile.test.ts does, through the
 * same proxy. No kubelet or controller runs here: where a Job or Deployment controller would
 * report progress, the test writes that status itself (and says so).
 */
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import http from 'node:http';
import { PassThrough } from 'node:stream';
import { after, afterEach, before, describe, it } from 'node:test';
import { inspect } from 'node:util';
import { makeMasterKey, makeSecretBox } from '../../core/crypto.ts';
import { makeLogger } from '../../core/log.ts';
import { registerCluster } from '../../provisioner/clusters.ts';
import { dropInstanceDatabase } from '../../provisioner/database.ts';
import {
  type KubeObject,
  namespaceFor,
  renderInstanceManifests,
  renderInstanceSecret,
} from '../../provisioner/manifests/render-instance.ts';
import { isPermanent, reconcileInstance } from '../../provisioner/reconciler.ts';
import {
  INSTANCE_KINDS,
  KubernetesApiError,
  type KubernetesTargetOptions,
  makeKubernetesTarget,
} from '../../provisioner/targets/kubernetes.target.ts';
import type { ClusterTarget } from '../../provisioner/targets/target.ts';
import { call, startTestApp, type TestApp } from '../support/app.ts';
import { adminUrl, makeTestDatabase, type TestDatabase } from '../support/db.ts';
import { createOrganization, createUserWithToken } from '../support/factories.ts';
import { type KubeFaultProxy, startKubeFaultProxy } from '../support/kube-fault-proxy.ts';
import {
  finishJob,
  finishRollouts,
  installCertificateCrd,
  type KubeApiServer,
  kubeRequest,
  kubeSkipReason,
  startKubeApiServer,
} from '../support/kube-server.ts';
import { sampleRenderInput } from '../support/render-input.ts';

// Without the binaries, skip locally (naming build.sh); under CI=true, fail.
const skip = kubeSkipReason();

let server: KubeApiServer;
let proxy: KubeFaultProxy;

before(
  async () => {
    if (skip) return;
    server = await startKubeApiServer();
    await installCertificateCrd(server);
    proxy = await startKubeFaultProxy(server);
  },
  { timeout: 120_000 },
);

after(async () => {
  await proxy?.release();
  await server?.release();
});

// A rule a test left unspent must not fail the next test's calls.
afterEach(() => proxy?.clear());

// ---------------------------------------------------------------------------------------------
// Factories and raw access

/** Small waits, so a test spends milliseconds on backoff. */
const FAST: KubernetesTargetOptions = { retryBaseMs: 5, retryCapMs: 200 };
/**
 * The request timeout of the hang tests: short, but far above what a real call takes here, so
 * only the hung call times out and the counts stay exact on a busy machine.
 */
const HANG_TIMEOUT_MS = 1_000;

const targetThroughProxy = (options: KubernetesTargetOptions = {}) =>
  makeKubernetesTarget(proxy.kubeconfigYaml, { ...FAST, ...options });

interface Instance {
  instanceId: string;
  namespace: string;
  values: Record<string, string>;
  objects: KubeObject[];
}

/** A fresh instance (namespaces never go away on this server) and its objects, in apply order. */
function makeInstance(): Instance {
  const instanceId = randomUUID();
  const [namespaceObject, ...rest] = renderInstanceManifests(sampleRenderInput(instanceId));
  assert.ok(namespaceObject);
  const namespace = namespaceFor(instanceId);
  const values = {
    SECRET_KEY_BASE: randomBytes(32).toString('hex'),
    DB_PASS: `pw/${randomBytes(12).toString('base64url')}+!`,
  };
  const secret = renderInstanceSecret({
    namespace,
    name: 'mastodon-secrets',
    labels: namespaceObject.metadata.labels ?? {},
    values,
  });
  return { instanceId, namespace, values, objects: [namespaceObject, secret, ...rest] };
}

const plural = (kind: string) => {
  const lower = kind.toLowerCase();
  if (lower.endsWith('y')) return `${lower.slice(0, -1)}ies`;
  if (lower.endsWith('s')) return `${lower}es`;
  return `${lower}s`;
};

/** The REST path of a namespaced kind's collection. */
const collectionOf = (kind: { apiVersion: string; kind: string }, namespace: string) =>
  `${kind.apiVersion.includes('/') ? `/apis/${kind.apiVersion}` : `/api/${kind.apiVersion}`}/namespaces/${namespace}/${plural(kind.kind)}`;

/** The ConfigMap every test picks on: in the middle of the apply order, so some go before it. */
const CONFIG_MAP = 'mastodon-env';
const configMapPath = (namespace: string) =>
  `${collectionOf({ apiVersion: 'v1', kind: 'ConfigMap' }, namespace)}/${CONFIG_MAP}`;
/** Matches the apply (PATCH) of the ConfigMap, whatever its query. */
const configMapApply = (namespace: string) => new RegExp(`^${configMapPath(namespace)}\\?`);

/** What the proxy answered the applies of the ConfigMap, in order. */
const configMapOutcomes = (namespace: string) =>
  proxy.seen
    .filter((entry) => entry.method === 'PATCH' && configMapApply(namespace).test(entry.path))
    .map((entry) => entry.outcome);

const statusOf = async (path: string) => (await kubeRequest(server, 'GET', path)).status;

async function rejectionOf(promise: Promise<unknown>): Promise<KubernetesApiError> {
  const error = await promise.then(
    () => assert.fail('expected the call to fail'),
    (caught: unknown) => caught,
  );
  assert.ok(error instanceof KubernetesApiError, inspect(error));
  return error;
}

/** A raw HTTP call through the proxy as the admin; rejects when no answer comes. */
function throughProxy(
  method: string,
  path: string,
  options: { body?: unknown; agent?: http.Agent; timeoutMs?: number } = {},
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string; socket: unknown }> {
  return new Promise((resolve, reject) => {
    const request = http.request(
      `${proxy.url}${path}`,
      {
        method,
        agent: options.agent,
        timeout: options.timeoutMs ?? 10_000,
        headers: {
          authorization: `Bearer ${server.adminToken}`,
          accept: 'application/json',
          ...(options.body === undefined ? {} : { 'content-type': 'application/json' }),
        },
      },
      (response) => {
        let body = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => {
          body += chunk;
        });
        response.on('end', () =>
          resolve({
            status: response.statusCode ?? 0,
            headers: response.headers,
            body,
            socket: request.socket,
          }),
        );
        response.on('error', reject);
      },
    );
    request.on('timeout', () => request.destroy(new Error('no answer')));
    request.on('error', reject);
    request.end(options.body === undefined ? undefined : JSON.stringify(options.body));
  });
}

const configMap = (namespace: string, name: string) => ({
  apiVersion: 'v1',
  kind: 'ConfigMap',
  metadata: { name, namespace },
  data: { note: 'through the proxy' },
});

// ---------------------------------------------------------------------------------------------

describe('the fault proxy', { skip }, () => {
  it('forwards requests and answers unchanged, over one kept-alive connection', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const first = await throughProxy('GET', '/api/v1/namespaces/default', { agent });
      const second = await throughProxy('POST', '/api/v1/namespaces/default/configmaps', {
        agent,
        body: configMap('default', `proxy-${randomUUID().slice(0, 8)}`),
      });
      assert.equal(first.status, 200, first.body);
      assert.equal((JSON.parse(first.body) as { metadata: { name: string } }).metadata.name, 'default');
      assert.equal(second.status, 201, second.body);
      assert.equal(first.socket, second.socket, 'the connection is kept alive');
      assert.deepEqual(
        proxy.seen.slice(-2).map(({ method, outcome }) => [method, outcome]),
        [
          ['GET', 200],
          ['POST', 201],
        ],
      );
    } finally {
      agent.destroy();
    }
  });

  it('streams an answer as the server sends it (a watch)', async () => {
    const name = `watched-${randomUUID().slice(0, 8)}`;
    assert.equal(
      (await kubeRequest(server, 'POST', '/api/v1/namespaces/default/configmaps', configMap('default', name)))
        .status,
      201,
    );
    // The watch stays open for a minute; its first event arrives long before that.
    const event = await new Promise<string>((resolve, reject) => {
      const request = http.get(
        `${proxy.url}/api/v1/namespaces/default/configmaps?watch=1&timeoutSeconds=60&fieldSelector=metadata.name%3D${name}`,
        { headers: { authorization: `Bearer ${server.adminToken}` } },
        (response) => {
          response.setEncoding('utf8');
          response.once('data', (chunk: string) => {
            request.destroy();
            resolve(chunk);
          });
        },
      );
      request.on('error', reject);
    });
    assert.match(event, new RegExp(`"type":"ADDED".*"name":"${name}"`));
  });

  it('answers a rule’s Status for as many requests as it says, then forwards again', async () => {
    proxy.inject({
      method: 'get',
      path: /^\/api\/v1\/namespaces\/default$/,
      times: 2,
      action: { status: 503, reason: 'ServiceUnavailable', message: 'try later', retryAfterSeconds: 2 },
    });
    const answers = [];
    for (let i = 0; i < 3; i++) answers.push(await throughProxy('GET', '/api/v1/namespaces/default'));
    assert.deepEqual(
      answers.map((answer) => answer.status),
      [503, 503, 200],
    );
    assert.equal(answers[0]?.headers['retry-after'], '2');
    assert.deepEqual(JSON.parse(answers[0]?.body ?? ''), {
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: 'try later',
      reason: 'ServiceUnavailable',
      details: { retryAfterSeconds: 2 },
      code: 503,
    });
  });

  it('delays a request and then forwards it', async () => {
    proxy.inject({ path: /\/namespaces\/default$/, action: { delayMs: 200 } });
    const started = Date.now();
    const answer = await throughProxy('GET', '/api/v1/namespaces/default');
    assert.equal(answer.status, 200);
    assert.ok(Date.now() - started >= 190, 'answered after the delay');
    assert.equal(proxy.seen.at(-1)?.outcome, 200);
  });

  it('puts the token it is given in its kubeconfig', async () => {
    const other = await startKubeFaultProxy(server, { token: 'not-a-known-token' });
    try {
      assert.match(other.kubeconfigYaml, /token: not-a-known-token/);
      assert.match(proxy.kubeconfigYaml, new RegExp(`token: ${server.adminToken}`));
      // An unknown token is refused, and that is no error a retry mends.
      const target = makeKubernetesTarget(other.kubeconfigYaml, FAST);
      const error = await rejectionOf(target.jobState(randomUUID(), 'any'));
      assert.equal(error.status, 401);
      assert.equal(error.retryable, false);
      assert.deepEqual(
        other.seen.map((entry) => entry.outcome),
        [401],
      );
    } finally {
      await other.release();
    }
  });

  it('drops, hangs and holds the requests rules pick; clear destroys what is still held', {
    timeout: 30_000,
  }, async () => {
    proxy.inject({ path: /\/namespaces\/default$/, action: { reset: true } });
    await assert.rejects(throughProxy('GET', '/api/v1/namespaces/default'), /socket hang up|ECONNRESET/);

    proxy.inject({ path: /\/namespaces\/default$/, action: { hang: true } });
    const hung = throughProxy('GET', '/api/v1/namespaces/default');
    // Cleared, the hung request's connection is destroyed: the client hears no answer.
    while (proxy.seen.at(-1)?.outcome !== 'hang') await new Promise((resolve) => setTimeout(resolve, 10));
    proxy.clear();
    await assert.rejects(hung, /socket hang up|ECONNRESET/);

    // Held before forwarding: the server has not seen it until the test lets it go.
    const before = `held-before-${randomUUID().slice(0, 8)}`;
    let forward = () => {};
    const letGo = new Promise<void>((resolve) => {
      proxy.inject({
        method: 'POST',
        action: {
          hold: (go) => {
            forward = go;
            resolve();
          },
        },
      });
    });
    const created = throughProxy('POST', '/api/v1/namespaces/default/configmaps', {
      body: configMap('default', before),
    });
    await letGo;
    assert.equal(await statusOf(`/api/v1/namespaces/default/configmaps/${before}`), 404);
    forward();
    assert.equal((await created).status, 201);
    assert.equal(await statusOf(`/api/v1/namespaces/default/configmaps/${before}`), 200);

    // Held after forwarding: the object exists, but its answer is dropped.
    const afterForward = `held-after-${randomUUID().slice(0, 8)}`;
    let drop = () => {};
    const answered = new Promise<void>((resolve) => {
      proxy.inject({
        method: 'POST',
        action: {
          afterForward: true,
          hold: (_go, stop) => {
            drop = stop;
            resolve();
          },
        },
      });
    });
    const lost = throughProxy('POST', '/api/v1/namespaces/default/configmaps', {
      body: configMap('default', afterForward),
    });
    await answered;
    assert.equal(await statusOf(`/api/v1/namespaces/default/configmaps/${afterForward}`), 200);
    drop();
    await assert.rejects(lost, /socket hang up|ECONNRESET/);
    assert.deepEqual(
      proxy.seen.slice(-4).map((entry) => entry.outcome),
      ['reset', 'hang', 201, 'held'],
    );
  });
});

describe('retries in the Kubernetes adapter', { skip }, () => {
  it('a 500 on an apply is retried, and the object is on the server', async () => {
    const { instanceId, namespace, objects } = makeInstance();
    proxy.inject({ method: 'PATCH', path: configMapApply(namespace), action: { status: 500 } });
    assert.deepEqual(await targetThroughProxy().apply(instanceId, 1, objects), { applied: objects.length });
    assert.deepEqual(configMapOutcomes(namespace), [500, 201]);
    assert.equal(await statusOf(configMapPath(namespace)), 200);
  });

  it('a 500 on every try fails after maxAttempts calls, retryable, naming the object and the tries', async () => {
    const { instanceId, namespace, objects } = makeInstance();
    proxy.inject({
      method: 'PATCH',
      path: configMapApply(namespace),
      times: Infinity,
      action: { status: 500, reason: 'InternalError', message: 'etcd is unwell' },
    });
    const error = await rejectionOf(targetThroughProxy({ maxAttempts: 3 }).apply(instanceId, 1, objects));
    assert.deepEqual(configMapOutcomes(namespace), [500, 500, 500]);
    assert.equal(error.retryable, true);
    assert.equal(error.status, 500);
    assert.equal(error.reason, 'InternalError');
    assert.match(
      error.message,
      new RegExp(
        `^apply ConfigMap ${namespace}/${CONFIG_MAP}: 500 InternalError: etcd is unwell \\(after 3 attempts\\)$`,
      ),
    );
    // The apply stopped there: what came before is on the server, what comes after is not.
    const index = objects.findIndex((object) => object.metadata.name === CONFIG_MAP);
    const [previous, next] = [objects[index - 1], objects[index + 1]];
    assert.ok(previous && next);
    assert.equal(await statusOf(`${collectionOf(previous, namespace)}/${previous.metadata.name}`), 200);
    assert.equal(await statusOf(`${collectionOf(next, namespace)}/${next.metadata.name}`), 404);
  });

  it('errors no retry can mend are not retried: one call, and a permanent error', async () => {
    for (const [status, reason] of [
      [422, 'Invalid'],
      [400, 'BadRequest'],
      [403, 'Forbidden'],
    ] as const) {
      const { instanceId, namespace, objects } = makeInstance();
      proxy.inject({
        method: 'PATCH',
        path: configMapApply(namespace),
        times: Infinity,
        action: { status, reason },
      });
      const error = await rejectionOf(targetThroughProxy().apply(instanceId, 1, objects));
      assert.deepEqual(configMapOutcomes(namespace), [status], `${status} is tried once`);
      assert.equal(error.retryable, false);
      assert.equal(error.status, status);
      assert.equal(error.reason, reason);
      assert.doesNotMatch(error.message, /attempts/);
      proxy.clear();
    }
  });

  it('a missing object and a kind the cluster does not serve are not retried either', async () => {
    const target = targetThroughProxy();
    const { instanceId, namespace, objects } = makeInstance();
    const missing = await rejectionOf(target.jobState(instanceId, 'no-such-job'));
    assert.equal(missing.status, 404);
    assert.equal(missing.retryable, false);
    assert.equal(proxy.seen.filter((entry) => entry.path.endsWith('/jobs/no-such-job')).length, 1);

    const widget = {
      apiVersion: 'widgets.example.com/v1',
      kind: 'Widget',
      metadata: { name: 'one', namespace },
    } as KubeObject;
    const notServed = await rejectionOf(target.apply(instanceId, 1, [...objects.slice(0, 1), widget]));
    assert.equal(notServed.reason, 'NotServed');
    assert.equal(notServed.retryable, false);
    assert.equal(proxy.seen.filter((entry) => entry.path === '/apis/widgets.example.com/v1').length, 1);
  });

  it('a 409 Conflict on an apply is retried, and the apply succeeds', async () => {
    const { instanceId, namespace, objects } = makeInstance();
    proxy.inject({
      method: 'PATCH',
      path: configMapApply(namespace),
      action: { status: 409, reason: 'Conflict', message: 'the object has been modified' },
    });
    assert.deepEqual(await targetThroughProxy().apply(instanceId, 1, objects), { applied: objects.length });
    assert.deepEqual(configMapOutcomes(namespace), [409, 201]);
  });

  it('a 429 is retried after the Retry-After the server asked for', async () => {
    const { instanceId, namespace, objects } = makeInstance();
    proxy.inject({
      method: 'PATCH',
      path: configMapApply(namespace),
      action: { status: 429, reason: 'TooManyRequests', retryAfterSeconds: 1 },
    });
    // The cap is above the second asked for, so the wait is the server's, not the jitter's.
    await targetThroughProxy({ retryCapMs: 5_000 }).apply(instanceId, 1, objects);
    const tries = proxy.seen.filter(
      (entry) => entry.method === 'PATCH' && configMapApply(namespace).test(entry.path),
    );
    assert.deepEqual(
      tries.map((entry) => entry.outcome),
      [429, 201],
    );
    const [throttled, retried] = tries;
    assert.ok(throttled && retried);
    // Timers may fire a millisecond early and Date.now() rounds: allow 10 ms.
    assert.ok(retried.at - throttled.at >= 990, `retried ${retried.at - throttled.at} ms after the 429`);
  });

  it('a Retry-After beyond the cap is waited only up to the cap', { timeout: 20_000 }, async () => {
    const { instanceId, namespace, objects } = makeInstance();
    proxy.inject({
      method: 'PATCH',
      path: configMapApply(namespace),
      action: { status: 429, reason: 'TooManyRequests', retryAfterSeconds: 3_600 },
    });
    // An hour's wait would time the test out; the cap (200 ms) lets it finish.
    await targetThroughProxy().apply(instanceId, 1, objects);
    assert.deepEqual(configMapOutcomes(namespace), [429, 201]);
  });

  it('a call that hangs is abandoned after the request timeout and retried', async () => {
    const { instanceId, namespace, objects } = makeInstance();
    proxy.inject({ method: 'PATCH', path: configMapApply(namespace), action: { hang: true } });
    await targetThroughProxy({ requestTimeoutMs: HANG_TIMEOUT_MS }).apply(instanceId, 1, objects);
    assert.deepEqual(configMapOutcomes(namespace), ['hang', 201]);
    assert.equal(await statusOf(configMapPath(namespace)), 200);
  });

  it('a call that hangs on every try fails with a retryable Timeout after maxAttempts', async () => {
    const { instanceId, namespace, objects } = makeInstance();
    proxy.inject({
      method: 'PATCH',
      path: configMapApply(namespace),
      times: Infinity,
      action: { hang: true },
    });
    const error = await rejectionOf(
      targetThroughProxy({ maxAttempts: 3, requestTimeoutMs: HANG_TIMEOUT_MS }).apply(instanceId, 1, objects),
    );
    assert.deepEqual(configMapOutcomes(namespace), ['hang', 'hang', 'hang']);
    assert.equal(error.reason, 'Timeout');
    assert.equal(error.retryable, true);
    assert.equal(error.status, undefined);
    assert.match(
      error.message,
      new RegExp(
        `ConfigMap ${namespace}/${CONFIG_MAP}: no answer within ${HANG_TIMEOUT_MS} ms \\(after 3 attempts\\)$`,
      ),
    );
  });

  it('an apply whose answer is lost is applied again, harmlessly', async () => {
    const { instanceId, namespace, objects } = makeInstance();
    // The server applies it; the answer never reaches the adapter, which times out and tries again.
    proxy.inject({
      method: 'PATCH',
      path: configMapApply(namespace),
      action: { afterForward: true, hold: () => {} },
    });
    await targetThroughProxy({ requestTimeoutMs: HANG_TIMEOUT_MS }).apply(instanceId, 1, objects);
    // 200, not 201: the first, unanswered try had created it.
    assert.deepEqual(configMapOutcomes(namespace), ['held', 200]);
    const stored = (await kubeRequest(server, 'GET', configMapPath(namespace))).body as {
      metadata: { managedFields: { manager: string }[] };
    };
    assert.deepEqual(
      stored.metadata.managedFields.map((entry) => entry.manager),
      ['woolly'],
      'one field manager, one object',
    );
  });

  it('a dropped connection is retried', async () => {
    const { instanceId, namespace, objects } = makeInstance();
    proxy.inject({ method: 'PATCH', path: configMapApply(namespace), action: { reset: true } });
    await targetThroughProxy().apply(instanceId, 1, objects);
    assert.deepEqual(configMapOutcomes(namespace), ['reset', 201]);
  });

  it('reads, lists and deletes are retried too', async () => {
    const { instanceId, namespace, objects } = makeInstance();
    const target = targetThroughProxy();
    await target.apply(instanceId, 1, objects);
    const jobName = objects.find((object) => object.kind === 'Job')?.metadata.name ?? '';
    proxy.inject({ method: 'GET', path: new RegExp(`/jobs/${jobName}$`), action: { status: 503 } });
    assert.equal((await target.jobState(instanceId, jobName)).state, 'running');

    proxy.inject({ method: 'GET', path: /\/deployments\?/, action: { status: 500 } });
    assert.equal((await target.rollout(instanceId)).done, false);

    // Pruning the PodDisruptionBudget (no longer rendered): its delete is dropped once.
    const budget = objects.find((object) => object.kind === 'PodDisruptionBudget');
    assert.ok(budget);
    proxy.inject({ method: 'DELETE', path: /poddisruptionbudgets\/web/, action: { reset: true } });
    const keep = objects.filter((object) => object !== budget);
    assert.deepEqual(await target.prune(instanceId, 1, keep), { pruned: 1 });
    assert.equal(await statusOf(`${collectionOf(budget, namespace)}/web`), 404);
    const outcomes = (pattern: RegExp, method: string) =>
      proxy.seen
        .filter((entry) => entry.method === method && pattern.test(entry.path))
        .map((entry) => entry.outcome);
    assert.deepEqual(outcomes(new RegExp(`/jobs/${jobName}$`), 'GET'), [503, 200]);
    assert.deepEqual(outcomes(new RegExp(`/namespaces/${namespace}/deployments\\?`), 'GET'), [500, 200, 200]);
    assert.deepEqual(outcomes(/poddisruptionbudgets\/web/, 'DELETE'), ['reset', 200]);
  });

  it('a retried error keeps Secret values out of its message', async () => {
    const { instanceId, namespace, values, objects } = makeInstance();
    const value = values.DB_PASS ?? '';
    proxy.inject({
      method: 'PATCH',
      path: new RegExp(`/namespaces/${namespace}/secrets/mastodon-secrets\\?`),
      times: Infinity,
      action: {
        status: 500,
        message: `could not store ${value} nor ${Buffer.from(value).toString('base64')}`,
      },
    });
    const error = await rejectionOf(targetThroughProxy({ maxAttempts: 2 }).apply(instanceId, 1, objects));
    assert.match(error.message, /could not store \[redacted\] nor \[redacted\] \(after 2 attempts\)$/);
    const everything = [
      error.message,
      error.stack ?? '',
      inspect(error, { depth: 20, showHidden: true }),
    ].join('\n');
    for (const secretValue of Object.values(values)) {
      assert.ok(!everything.includes(secretValue));
      assert.ok(!everything.includes(Buffer.from(secretValue).toString('base64')));
    }
  });
});

// ---------------------------------------------------------------------------------------------

describe('a reconcile through API faults', { skip }, () => {
  let database: TestDatabase;
  let app: TestApp;
  let instanceId: string;
  /** What the reconciler last handed to `prune`: every object it rendered. */
  let rendered: KubeObject[] = [];
  const box = makeSecretBox([makeMasterKey('kube-faults')]);
  const log = makeLogger({ log: { level: 'error', format: 'json' } }, new PassThrough().resume());
  const deps = () => {
    const target = targetThroughProxy({ maxAttempts: 3 });
    const recording: ClusterTarget = {
      ...target,
      prune(id, generation, keep) {
        rendered = keep;
        return target.prune(id, generation, keep);
      },
    };
    return { db: database.db, box, log, targetFor: () => recording };
  };

  before(
    async () => {
      if (skip) return;
      database = await makeTestDatabase();
      // Registered with the server's own kubeconfig; `targetFor` sends the calls through the proxy.
      await registerCluster(database.db, box, {
        name: 'test-apiserver',
        region: 'local',
        capacity: 5,
        kubeconfig: server.kubeconfigYaml,
        databaseAdminUrl: adminUrl(),
      });
      app = await startTestApp(database);
      const { userId } = await createUserWithToken(database.db);
      const organizationId = await createOrganization(database.db, userId);
      const staff = (await createUserWithToken(database.db, { staffRole: 'ops' })).token;
      const placed = await call(`${app.url}/v1/orders`, {
        token: staff,
        body: { organizationId, plan: 'community', domain: 'faults.woolly.test' },
      });
      assert.equal(placed.status, 201, JSON.stringify(placed.body));
      instanceId = placed.body.instanceId;
    },
    { timeout: 60_000 },
  );

  after(async () => {
    if (instanceId) await dropInstanceDatabase(adminUrl(), namespaceFor(instanceId).replaceAll('-', '_'));
    await app?.release();
    await database?.release();
  });

  it('a failing apply is recorded on its step, and the next reconcile resumes to exactly the rendered objects', async () => {
    const namespace = namespaceFor(instanceId);
    proxy.inject({
      method: 'PATCH',
      path: configMapApply(namespace),
      times: Infinity,
      action: { status: 500 },
    });
    const error = await rejectionOf(reconcileInstance(deps(), instanceId));
    assert.match(
      error.message,
      new RegExp(`ConfigMap ${namespace}/${CONFIG_MAP}: 500 .*\\(after 3 attempts\\)$`),
    );
    assert.equal(isPermanent(error), false, 'the job queue retries it, rather than failing the server');
    assert.deepEqual(configMapOutcomes(namespace), [500, 500, 500]);
    const step = await database.db.operationStep.findFirstOrThrow({
      where: { operation: { instanceId }, name: 'apply-config' },
    });
    assert.equal(step.outcome, 'failed');
    assert.equal(step.error, error.message);
    assert.equal(
      (await database.db.instance.findUniqueOrThrow({ where: { id: instanceId } })).status,
      'provisioning',
    );

    proxy.clear();
    // On to the end. Stand-ins for the Job and Deployment controllers report each wait done.
    let result = await reconcileInstance(deps(), instanceId);
    for (let round = 0; result.state === 'waiting' && round < 10; round++) {
      const job = /^Job (\S+):/.exec(result.detail)?.[1];
      if (job) await finishJob(server, namespace, job, 'Complete');
      else await finishRollouts(server, namespace);
      result = await reconcileInstance(deps(), instanceId);
    }
    assert.deepEqual(result, { state: 'done' });
    const steps = await database.db.operationStep.findMany({
      where: { operation: { instanceId }, name: 'apply-config' },
      orderBy: { attempt: 'asc' },
    });
    assert.deepEqual(
      steps.map((row) => [row.attempt, row.outcome]),
      [
        [1, 'failed'],
        [2, 'succeeded'],
      ],
    );
    assert.equal(
      (await database.db.instance.findUniqueOrThrow({ where: { id: instanceId } })).status,
      'running',
    );

    // The server holds the rendered objects, no more and no fewer.
    const namesByKind = (objects: { kind?: string; metadata?: { name?: string } }[]) => {
      const byKind: Record<string, string[]> = {};
      for (const object of objects) {
        const kind = object.kind ?? '';
        byKind[kind] = [...(byKind[kind] ?? []), object.metadata?.name ?? ''].sort();
      }
      return byKind;
    };
    const stored: { kind: string; metadata: { name: string } }[] = [];
    assert.equal(await statusOf(`/api/v1/namespaces/${namespace}`), 200);
    stored.push({ kind: 'Namespace', metadata: { name: namespace } });
    const selector = encodeURIComponent(`woolly.dev/instance-id=${instanceId}`);
    for (const kind of INSTANCE_KINDS) {
      const list = await kubeRequest(
        server,
        'GET',
        `${collectionOf(kind, namespace)}?labelSelector=${selector}`,
      );
      assert.equal(list.status, 200, JSON.stringify(list.body));
      for (const item of list.body.items as { metadata: { name: string } }[])
        stored.push({ ...item, kind: kind.kind });
    }
    assert.ok(rendered.length > 10);
    assert.deepEqual(namesByKind(stored), namesByKind(rendered));
  });
});
