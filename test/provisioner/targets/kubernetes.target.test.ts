import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { inspect } from 'node:util';
import {
  type InstanceRenderInput,
  type KubeObject,
  namespaceFor,
  renderInstanceManifests,
  renderInstanceSecret,
} from '../../../provisioner/manifests/render-instance.ts';
import {
  FIELD_MANAGER,
  KubernetesApiError,
  makeKubernetesTarget,
} from '../../../provisioner/targets/kubernetes.target.ts';
import type { ClusterTarget } from '../../../provisioner/targets/target.ts';
import {
  finishJob,
  installCertificateCrd,
  type KubeApiServer,
  kubeRequest,
  kubeSkipReason,
  startKubeApiServer,
} from '../../support/kube-server.ts';
import { sampleRenderInput } from '../../support/render-input.ts';

// Without the binaries, skip locally (naming build.sh); under CI=true, fail.
const skip = kubeSkipReason();

let server: KubeApiServer;
let target: ClusterTarget;

before(
  async () => {
    if (skip) return;
    server = await startKubeApiServer();
    target = makeKubernetesTarget(server.kubeconfigYaml);
  },
  { timeout: 120_000 },
);

after(async () => {
  await server?.release();
});

// ---------------------------------------------------------------------------------------------
// Factories and raw API access

interface SecretValues {
  [key: string]: string;
}

const makeSecretValues = (): SecretValues => ({
  SECRET_KEY_BASE: randomBytes(32).toString('hex'),
  DB_PASS: `pw/${randomBytes(12).toString('base64url')}+!`,
});

/** The objects in the order the reconciler applies them: namespace, Secret, the rest. */
function renderAll(input: InstanceRenderInput, values: SecretValues = makeSecretValues()): KubeObject[] {
  const [namespace, ...rest] = renderInstanceManifests(input);
  assert.ok(namespace);
  const secret = renderInstanceSecret({
    namespace: namespaceFor(input.instanceId),
    name: input.secretName,
    labels: namespace.metadata.labels ?? {},
    values,
  });
  return [namespace, secret, ...rest];
}

const plural = (kind: string) => {
  const lower = kind.toLowerCase();
  if (lower.endsWith('y')) return `${lower.slice(0, -1)}ies`;
  if (lower.endsWith('s')) return `${lower}es`;
  return `${lower}s`;
};

/** The REST path of an object, read straight from the server (no client-node models in between). */
function pathOf(object: {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
}) {
  const root = object.apiVersion.includes('/') ? `/apis/${object.apiVersion}` : `/api/${object.apiVersion}`;
  const scope = object.metadata.namespace ? `/namespaces/${object.metadata.namespace}` : '';
  return `${root}${scope}/${plural(object.kind)}/${object.metadata.name}`;
}

interface StoredObject {
  metadata: {
    resourceVersion: string;
    deletionTimestamp?: string;
    managedFields?: Array<{ manager: string; operation: string; fieldsV1?: Record<string, unknown> }>;
  };
  spec?: Record<string, unknown>;
  data?: Record<string, string>;
  status?: { phase?: string };
}

async function read(object: KubeObject): Promise<StoredObject> {
  const response = await kubeRequest(server, 'GET', pathOf(object));
  assert.equal(
    response.status,
    200,
    `${object.kind} ${object.metadata.name}: ${JSON.stringify(response.body)}`,
  );
  return response.body as unknown as StoredObject;
}

const find = (objects: KubeObject[], kind: string, name: string) => {
  const object = objects.find((candidate) => candidate.kind === kind && candidate.metadata.name === name);
  assert.ok(object, `${kind} ${name} is rendered`);
  return object;
};

async function rejectionOf(promise: Promise<unknown>): Promise<KubernetesApiError> {
  const error = await promise.then(
    () => assert.fail('expected the call to fail'),
    (caught: unknown) => caught,
  );
  assert.ok(error instanceof KubernetesApiError, inspect(error));
  return error;
}

interface Instance {
  instanceId: string;
  namespace: string;
  values: SecretValues;
  objects: KubeObject[];
}

/** A fresh instance (namespaces never go away on this server) and its rendered objects. */
function makeInstance(overrides: Partial<InstanceRenderInput> = {}): Instance {
  const instanceId = randomUUID();
  const values = makeSecretValues();
  return {
    instanceId,
    namespace: namespaceFor(instanceId),
    values,
    objects: renderAll(sampleRenderInput(instanceId, overrides), values),
  };
}

// ---------------------------------------------------------------------------------------------
// Tests. The first group runs before the Certificate CRD exists; node:test runs them in order.

describe('without cert-manager installed', { skip }, () => {
  it('an apply that includes a Certificate fails for good, naming the missing API group and kind', async () => {
    const instance = makeInstance();
    const error = await rejectionOf(target.apply(instance.instanceId, 1, instance.objects));
    assert.equal(error.retryable, false);
    assert.equal(error.reason, 'NotServed');
    assert.match(error.message, /Certificate/);
    assert.match(error.message, /cert-manager\.io/);
    assert.match(error.message, new RegExp(`${instance.namespace}-tls`));
  });
});

describe('with the Certificate CRD installed', { skip }, () => {
  before(() => installCertificateCrd(server), { timeout: 60_000 });

  it('applies every object, owned by field manager woolly, with every field the renderer set', async () => {
    const { instanceId, objects, values } = makeInstance();
    assert.deepEqual(await target.apply(instanceId, 1, objects), { applied: objects.length });
    for (const object of objects) {
      const stored = await read(object);
      const owners = (stored.metadata.managedFields ?? []).filter((entry) => entry.manager === FIELD_MANAGER);
      assert.equal(owners.length, 1, `${object.kind} ${object.metadata.name}: ${inspect(stored.metadata)}`);
      assert.equal(owners[0]?.operation, 'Apply');
    }
    // client-node 1.4's typed models drop these two fields; they must reach the server all the same.
    const web = find(objects, 'NetworkPolicy', 'allow-ingress-to-web');
    assert.deepEqual((await read(web)).spec, web.spec);
    const limits = find(objects, 'LimitRange', 'mastodon');
    assert.deepEqual((await read(limits)).spec, limits.spec);
    const secret = await read(find(objects, 'Secret', 'mastodon-secrets'));
    assert.deepEqual(
      secret.data,
      Object.fromEntries(
        Object.entries(values).map(([key, value]) => [key, Buffer.from(value).toString('base64')]),
      ),
    );
  });

  it('re-applying the same objects changes nothing on the server', async () => {
    const { instanceId, objects } = makeInstance();
    const versions = async () =>
      Promise.all(objects.map(async (object) => (await read(object)).metadata.resourceVersion));
    await target.apply(instanceId, 1, objects);
    const created = await versions();
    assert.deepEqual(await target.apply(instanceId, 1, objects), { applied: objects.length });
    const reapplied = await versions();
    // kube-apiserver 1.35 writes a PersistentVolumeClaim once more on its first identical apply
    // (no visible field differs); every other object, and the claim from then on, stays put.
    const claim = objects.findIndex((object) => object.kind === 'PersistentVolumeClaim');
    assert.deepEqual(
      reapplied.filter((_, index) => index !== claim),
      created.filter((_, index) => index !== claim),
    );
    await target.apply(instanceId, 1, objects);
    assert.deepEqual(await versions(), reapplied);
  });

  it('prunes an object no longer rendered and leaves objects without the instance label alone', async () => {
    const instance = makeInstance();
    const { instanceId, namespace } = instance;
    await target.apply(instanceId, 1, instance.objects);
    const budget = find(instance.objects, 'PodDisruptionBudget', 'web');
    const foreign = (name: string, labels: Record<string, string>) =>
      kubeRequest(server, 'POST', `/api/v1/namespaces/${namespace}/configmaps`, {
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: { name, namespace, labels },
        data: { note: 'made by hand' },
      });
    assert.equal((await foreign('hand-made', {})).status, 201);
    // Labelled as Woolly's, but as another instance's.
    const other = { 'app.kubernetes.io/part-of': 'woolly', 'woolly.dev/instance-id': randomUUID() };
    assert.equal((await foreign('other-instance', other)).status, 201);

    // Suspended: the budget over zero pods is no longer rendered.
    const suspended = renderAll(
      sampleRenderInput(instanceId, { suspended: true, generation: 2 }),
      instance.values,
    );
    assert.ok(!suspended.some((object) => object.kind === 'PodDisruptionBudget'));
    assert.deepEqual(await target.apply(instanceId, 2, suspended), { applied: suspended.length });
    assert.equal(
      (await kubeRequest(server, 'GET', pathOf(budget))).status,
      200,
      'apply alone prunes nothing',
    );
    assert.deepEqual(await target.prune(instanceId, 2, suspended), { pruned: 1 });
    assert.equal((await kubeRequest(server, 'GET', pathOf(budget))).status, 404, 'the budget is pruned');
    // A suspended server renders no migration Jobs; the ones there are left to finish (their
    // TTL removes them), since pruning could kill a migration still running.
    const jobs = instance.objects.filter((object) => object.kind === 'Job');
    assert.equal(jobs.length, 2);
    for (const job of jobs) {
      assert.equal((await kubeRequest(server, 'GET', pathOf(job))).status, 200, job.metadata.name);
    }
    for (const name of ['hand-made', 'other-instance']) {
      assert.equal(
        (await kubeRequest(server, 'GET', `/api/v1/namespaces/${namespace}/configmaps/${name}`)).status,
        200,
      );
    }
    const web = (await read(find(suspended, 'Deployment', 'web'))).spec as { replicas: number };
    assert.equal(web.replicas, 0);
  });

  it('reads a Job as running until its controller reports it complete, and deletes a failed one', async () => {
    const { instanceId, objects } = makeInstance();
    await target.apply(instanceId, 1, objects);
    const [migrate, postMigrate] = objects.filter((object) => object.kind === 'Job') as KubeObject[];
    assert.ok(migrate && postMigrate);
    assert.equal((await target.jobState(instanceId, migrate.metadata.name)).state, 'running');
    // Stand-in for the Job controller, which does not run here: the Job reports how it ended.
    const finish = (job: KubeObject, outcome: 'Complete' | 'Failed') =>
      finishJob(server, job.metadata.namespace ?? '', job.metadata.name, outcome);
    await finish(migrate, 'Complete');
    assert.deepEqual(await target.jobState(instanceId, migrate.metadata.name), {
      state: 'succeeded',
      detail: 'complete',
    });
    await finish(postMigrate, 'Failed');
    const failed = await target.jobState(instanceId, postMigrate.metadata.name);
    assert.equal(failed.state, 'failed');
    assert.match(failed.detail, /BackoffLimitExceeded: Job has reached the specified backoff limit/);
    const gone = await kubeRequest(server, 'GET', pathOf(postMigrate));
    assert.ok(
      gone.status === 404 ||
        (gone.body as { metadata?: { deletionTimestamp?: string } }).metadata?.deletionTimestamp,
      'a failed Job is deleted, so a retry runs it afresh',
    );
  });

  it('takes back a field another field manager changed', async () => {
    const { instanceId, objects } = makeInstance();
    await target.apply(instanceId, 1, objects);
    const web = find(objects, 'Deployment', 'web');
    const rendered = (web.spec as { replicas: number }).replicas;
    const theirs = await kubeRequest(
      server,
      'PATCH',
      `${pathOf(web)}?fieldManager=someone-else&force=true`,
      { apiVersion: 'apps/v1', kind: 'Deployment', metadata: web.metadata, spec: { replicas: rendered + 3 } },
      'application/apply-patch+yaml',
    );
    assert.equal(theirs.status, 200, JSON.stringify(theirs.body));
    assert.equal((await read(web)).spec?.replicas, rendered + 3);

    await target.apply(instanceId, 1, objects);
    const stored = await read(web);
    assert.equal(stored.spec?.replicas, rendered);
    const someoneElse = stored.metadata.managedFields?.find((entry) => entry.manager === 'someone-else');
    const theirFields = JSON.stringify(someoneElse?.fieldsV1 ?? {});
    assert.doesNotMatch(theirFields, /f:replicas/);
  });

  it('an object the server refuses fails for good, naming the object', async () => {
    const { instanceId, objects } = makeInstance();
    const configMap = find(objects, 'ConfigMap', 'mastodon-env');
    configMap.metadata.name = 'not..valid';
    const error = await rejectionOf(target.apply(instanceId, 1, objects));
    assert.equal(error.status, 422);
    assert.equal(error.reason, 'Invalid');
    assert.equal(error.retryable, false);
    assert.match(error.message, /ConfigMap/);
    assert.match(error.message, /not\.\.valid/);
  });

  it('never puts a Secret value into an error, even when the server echoes it', async () => {
    const instance = makeInstance();
    const secret = find(instance.objects, 'Secret', 'mastodon-secrets');
    const value = instance.values.DB_PASS ?? '';
    // An invalid label value: the server's 422 quotes it back.
    secret.metadata.labels = { ...secret.metadata.labels, leak: value };
    const error = await rejectionOf(target.apply(instance.instanceId, 1, instance.objects));
    assert.equal(error.status, 422);
    assert.match(error.message, /Secret .*mastodon-secrets/);
    assert.match(error.message, /\[redacted\]/);
    const everything = [
      error.message,
      error.stack ?? '',
      String(error),
      inspect(error, { depth: 20, showHidden: true }),
      JSON.stringify(error),
    ].join('\n');
    for (const secretValue of Object.values(instance.values)) {
      assert.ok(!everything.includes(secretValue), 'a Secret value appears in the error');
      assert.ok(
        !everything.includes(Buffer.from(secretValue).toString('base64')),
        'a base64 Secret value appears',
      );
    }
  });

  it('remove deletes the namespace and counts the objects of the instance', async () => {
    const { instanceId, namespace, objects } = makeInstance();
    await target.apply(instanceId, 1, objects);
    assert.deepEqual(await target.remove(instanceId), { removed: objects.length });
    // No namespace controller runs here, so the namespace stays Terminating rather than vanishing.
    const stored = await kubeRequest(server, 'GET', `/api/v1/namespaces/${namespace}`);
    if (stored.status !== 404) {
      const namespaceObject = stored.body as unknown as StoredObject;
      assert.ok(namespaceObject.metadata.deletionTimestamp);
      assert.equal(namespaceObject.status?.phase, 'Terminating');
    }
  });

  it('removing an instance whose namespace does not exist succeeds', async () => {
    assert.deepEqual(await target.remove(randomUUID()), { removed: 0 });
  });

  it('a server that cannot be reached gives a retryable error', async () => {
    const closed = server.kubeconfigYaml.replace(
      /server: https:\/\/127\.0\.0\.1:\d+/,
      'server: https://127.0.0.1:1',
    );
    const unreachable = makeKubernetesTarget(closed);
    const { instanceId, objects } = makeInstance();
    const error = await rejectionOf(unreachable.apply(instanceId, 1, objects));
    assert.equal(error.retryable, true);
    assert.equal(error.status, undefined);
    assert.equal(error.reason, 'Network');
  });
});
