/**
 * Crash safety of provisioning (issue #4): the worker, a process of its own running what
 * `woolly worker` runs (test/support/worker-process.ts), is SIGKILLed at one point of a
 * provisioning after another, each point on a fresh order; a new worker process then takes
 * over, and the server must end `running` with exactly one of everything: one operation, each
 * step once, its secrets unchanged, exactly the objects an uninterrupted provisioning leaves on
 * the API server (one Job per component), one database and one role.
 *
 * Real kube-apiserver, reached through the fault proxy (test/support/kube-fault-proxy.ts), which
 * holds a chosen request (or its answer) so the kill lands exactly there; other kill points are
 * watched for in the database. No controller runs beside the API server: the test writes the
 * Job and Deployment status a controller would (finishJob, finishRollouts), and says when.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { makeMasterKey, makeSecretBox } from '../../core/crypto.ts';
import { registerCluster } from '../../provisioner/clusters.ts';
import { dropInstanceDatabase } from '../../provisioner/database.ts';
import { namespaceFor } from '../../provisioner/manifests/render-instance.ts';
import { ensureInstanceSecrets, INSTANCE_SECRET_NAMES } from '../../provisioner/secrets.ts';
import { INSTANCE_KINDS } from '../../provisioner/targets/kubernetes.target.ts';
import { call, startTestApp, type TestApp } from '../support/app.ts';
import { adminUrl, makeTestDatabase, type TestDatabase } from '../support/db.ts';
import { createOrganization, createUserWithToken, PROVISION_STEPS } from '../support/factories.ts';
import { type KubeFaultProxy, startKubeFaultProxy } from '../support/kube-fault-proxy.ts';
import {
  finishJob,
  finishRollouts,
  installCertificateCrd,
  jobsOf,
  type KubeApiServer,
  kubeRequest,
  kubeSkipReason,
  startKubeApiServer,
} from '../support/kube-server.ts';
import { spawnWorkerProcess, type WorkerProcess } from '../support/worker-processes.ts';

// Without the binaries, skip locally (naming build.sh); under CI=true, fail.
const skip = kubeSkipReason();

/** The run-once Jobs of a new server, by component. */
const JOB_COMPONENTS = ['db-migrate', 'db-post-migrate', 'owner-account'];
/** How long a provisioning may take after a kill, or a kill point to be reached. */
const STAGE_TIMEOUT_MS = 45_000;

let server: KubeApiServer;
let proxy: KubeFaultProxy;
let database: TestDatabase;
let app: TestApp;
let watch: pg.Client;
let staffToken: string;
let organizationId: string;
const masterKeys = [makeMasterKey('crash')];
const box = makeSecretBox(masterKeys);
const instanceIds: string[] = [];

// The worker taking jobs, and the next one, already loaded (a process takes seconds to load).
let worker: WorkerProcess | undefined;
let standby: WorkerProcess | undefined;
const spawnWorker = () =>
  spawnWorkerProcess({
    databaseUrl: database.url,
    masterKeys,
    waitPollMs: 200,
    sweepIntervalMs: 1000,
    pollIntervalMs: 100,
    logLevel: 'warn',
  });
async function startNextWorker(): Promise<WorkerProcess> {
  const next = standby ?? spawnWorker();
  standby = spawnWorker();
  await next.start();
  worker = next;
  return next;
}

before(
  async () => {
    if (skip) return;
    server = await startKubeApiServer();
    await installCertificateCrd(server);
    proxy = await startKubeFaultProxy(server);
    database = await makeTestDatabase();
    standby = spawnWorker();
    const { id: clusterId } = await registerCluster(database.db, box, {
      name: 'crash-test',
      region: 'local',
      capacity: 50,
      kubeconfig: server.kubeconfigYaml,
      databaseAdminUrl: adminUrl(),
    });
    // The worker reaches the cluster through the proxy. Registration accepts only https://
    // servers and the proxy is plain http on loopback, so its kubeconfig replaces the sealed
    // one after registering, sealed the same way (provisioner/clusters.ts).
    const cluster = await database.db.cluster.findUniqueOrThrow({ where: { id: clusterId } });
    await database.db.secretRecord.update({
      where: { id: cluster.kubeconfigSecretId ?? '' },
      data: box.seal(proxy.kubeconfigYaml, `cluster:${clusterId}:kubeconfig`),
    });
    app = await startTestApp(database);
    const { userId } = await createUserWithToken(database.db, { email: 'grace.hopper@example.org' });
    organizationId = await createOrganization(database.db, userId);
    staffToken = (await createUserWithToken(database.db, { staffRole: 'ops' })).token;
    watch = new pg.Client({ connectionString: database.url });
    await watch.connect();
  },
  { timeout: 120_000 },
);

after(async () => {
  await worker?.kill();
  await standby?.kill();
  await proxy?.release();
  await watch?.end();
  for (const id of instanceIds) await dropInstanceDatabase(adminUrl(), databaseNameOf(id));
  await app?.release();
  await database?.release();
  await server?.release();
});

const databaseNameOf = (instanceId: string) => namespaceFor(instanceId).replaceAll('-', '_');
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------------------------------------
// The cluster's controllers, played by the test

type Controllers = 'off' | 'jobs' | 'all';

/**
 * Plays the Job controller (every Job of the instance completes) and, with `all`, the
 * Deployment controller and kubelets (every Deployment rolls out), a few times a second.
 */
function playControllers(namespace: string, mode: Controllers) {
  const state = { mode, stopped: false };
  const finished = new Set<string>();
  const loop = (async () => {
    while (!state.stopped) {
      if (state.mode !== 'off') {
        for (const component of JOB_COMPONENTS) {
          for (const name of await jobsOf(server, namespace, component)) {
            if (finished.has(name)) continue;
            await finishJob(server, namespace, name, 'Complete');
            finished.add(name);
          }
        }
        if (state.mode === 'all') await finishRollouts(server, namespace);
      }
      await sleep(100);
    }
  })();
  return {
    set: (next: Controllers) => {
      state.mode = next;
    },
    async stop() {
      state.stopped = true;
      await loop;
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Kill points

/**
 * A moment to kill the worker at: armed before the order is placed, `arm` resolves once the
 * provisioning of `domain` reaches it (and gives up quietly once `signal` aborts).
 */
interface KillPoint {
  name: string;
  /** What the controllers do before the kill (after it, all of them run). */
  controllers: Controllers;
  arm(domain: string, signal: AbortSignal): Promise<void>;
}

/** The first `method` request on `path` is held, before it reaches the API server or, with `answered`, after. */
const held =
  (method: string, path: RegExp, answered = false) =>
  () =>
    new Promise<void>((resolve) => {
      proxy.inject({ method, path, action: { hold: () => resolve(), afterForward: answered } });
    });

/** The instance's step `name` has a row (`waiting`: a running one that is waiting on the cluster). */
const stepRow =
  (name: string, waiting = false) =>
  async (domain: string, signal: AbortSignal) => {
    while (!signal.aborted) {
      const { rowCount } = await watch.query(
        `select 1 from "OperationStep" s
           join "Operation" o on o.id = s."operationId"
           join "Instance" i on i.id = o."instanceId"
          where i.domain = $1 and s.name = $2
            and ($3::boolean is false or (s.outcome = 'running' and s.detail is not null))`,
        [domain, name, waiting],
      );
      if (rowCount) return;
      await sleep(2);
    }
  };

const NS = '[^/?]+';
const KILL_POINTS: KillPoint[] = [
  { name: 'right after the placement step starts', controllers: 'off', arm: stepRow('placement') },
  { name: 'right after the secrets step starts', controllers: 'off', arm: stepRow('secrets') },
  { name: 'right after the database step starts', controllers: 'off', arm: stepRow('database') },
  {
    name: 'while the Namespace apply is held, not yet applied',
    controllers: 'off',
    arm: held('PATCH', new RegExp(`^/api/v1/namespaces/${NS}\\?`)),
  },
  {
    name: 'while the Secret is applied but its answer held',
    controllers: 'off',
    arm: held('PATCH', new RegExp(`^/api/v1/namespaces/${NS}/secrets/mastodon-secrets\\?`), true),
  },
  {
    name: 'mid-way through the config, the ConfigMap apply held',
    controllers: 'off',
    arm: held('PATCH', new RegExp(`^/api/v1/namespaces/${NS}/configmaps/`)),
  },
  {
    name: 'while the migration Job apply is held, not yet created',
    controllers: 'off',
    arm: held('PATCH', new RegExp(`^/apis/batch/v1/namespaces/${NS}/jobs/db-migrate-`)),
  },
  {
    name: 'while the pre-deployment migration is waited for',
    controllers: 'off',
    arm: stepRow('pre-migrate', true),
  },
  {
    name: 'while the finished migration Job is read, its answer held',
    controllers: 'jobs',
    arm: held('GET', new RegExp(`^/apis/batch/v1/namespaces/${NS}/jobs/db-migrate-[0-9a-f]+$`), true),
  },
  {
    name: 'while a Deployment apply is held, the one before applied',
    controllers: 'jobs',
    arm: held('PATCH', new RegExp(`^/apis/apps/v1/namespaces/${NS}/deployments/streaming\\?`)),
  },
  { name: 'while the rollout is waited for', controllers: 'jobs', arm: stepRow('rollout', true) },
  {
    name: 'while the rollout is read, the read held',
    controllers: 'all',
    arm: held('GET', new RegExp(`^/apis/apps/v1/namespaces/${NS}/deployments\\?`)),
  },
  {
    name: 'while the post-deployment migration Job is created but its answer held',
    controllers: 'all',
    arm: held('PATCH', new RegExp(`^/apis/batch/v1/namespaces/${NS}/jobs/db-post-migrate-`), true),
  },
  {
    name: 'while the owner account Job apply is held, not yet created',
    controllers: 'all',
    arm: held('PATCH', new RegExp(`^/apis/batch/v1/namespaces/${NS}/jobs/owner-account-`)),
  },
  {
    name: 'while pruning lists the instance’s objects, the list held',
    controllers: 'all',
    arm: held('GET', new RegExp(`^/api/v1/namespaces/${NS}/secrets\\?labelSelector=`)),
  },
];

// ---------------------------------------------------------------------------------------------
// Reading back what a provisioning left

const plural = (kind: string) => {
  const lower = kind.toLowerCase();
  return lower.endsWith('y') ? `${lower.slice(0, -1)}ies` : lower.endsWith('s') ? `${lower}es` : `${lower}s`;
};

/**
 * The instance's objects on the API server (read directly, not through the proxy) as
 * `Kind/name`, a Job's name without its spec digest; the Namespace first.
 */
async function objectsOf(instanceId: string): Promise<string[]> {
  const namespace = namespaceFor(instanceId);
  const selector = encodeURIComponent(`woolly.dev/instance-id=${instanceId}`);
  const found: string[] = [];
  const ns = await kubeRequest(server, 'GET', `/api/v1/namespaces/${namespace}`);
  if (ns.status === 200) found.push(`Namespace/${namespace}`);
  for (const { apiVersion, kind } of INSTANCE_KINDS) {
    const base = apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
    const list = await kubeRequest(
      server,
      'GET',
      `${base}/namespaces/${namespace}/${plural(kind)}?labelSelector=${selector}`,
    );
    assert.equal(list.status, 200, `list ${kind}: ${JSON.stringify(list.body)}`);
    for (const item of list.body.items as { metadata: { name: string } }[]) {
      const name = kind === 'Job' ? item.metadata.name.replace(/-[0-9a-f]{10}$/, '') : item.metadata.name;
      found.push(`${kind}/${name}`);
    }
  }
  return [found[0] ?? '', ...found.slice(1).sort()];
}

const normalise = (objects: string[], instanceId: string) =>
  objects.map((object) => object.replace(namespaceFor(instanceId), '<namespace>'));

const secretsOf = async (instanceId: string) =>
  Object.fromEntries(
    (await database.db.secretRecord.findMany({ where: { instanceId } })).map((record) => [
      record.name,
      record.ciphertext,
    ]),
  );

async function stepsOf(instanceId: string) {
  return database.db.operationStep.findMany({
    where: { operation: { instanceId } },
    orderBy: [{ startedAt: 'asc' }, { id: 'asc' }],
  });
}

/** Where the instance stands, for a failure message. */
async function diagnosis(instanceId: string): Promise<string> {
  const instance = await database.db.instance.findUnique({ where: { id: instanceId } });
  const steps = (await stepsOf(instanceId)).map(
    (step) => `  ${step.name} ${step.outcome} #${step.attempt} ${step.detail ?? step.error ?? ''}`,
  );
  const jobs = await watch.query(
    `select task_identifier, attempts, locked_by, run_at, last_error from graphile_worker.jobs
      where queue_name = $1`,
    [`instance:${instanceId}`],
  );
  return [
    `instance ${instanceId}: ${instance?.status} ${instance?.statusReason ?? ''}`,
    'steps:',
    ...steps,
    `jobs: ${JSON.stringify(jobs.rows)}`,
    `requests held or pending: ${JSON.stringify(proxy.seen.filter((seen) => typeof seen.outcome === 'string'))}`,
    worker?.tail() ?? '',
  ].join('\n');
}

/**
 * Waits for what `wait` waits for, at most `STAGE_TIMEOUT_MS`, then fails with where the
 * instance stands; either way the signal `wait` got is aborted after, so nothing keeps polling.
 */
async function within(what: string, instanceId: string, wait: (signal: AbortSignal) => Promise<void>) {
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      void diagnosis(instanceId).then(
        (text) => reject(new Error(`${what}: not within ${STAGE_TIMEOUT_MS} ms\n${text}`)),
        reject,
      );
    }, STAGE_TIMEOUT_MS);
  });
  try {
    await Promise.race([wait(controller.signal), timeout]);
  } finally {
    clearTimeout(timer);
    controller.abort();
  }
}

async function untilRunning(instanceId: string, signal: AbortSignal): Promise<void> {
  while (!signal.aborted) {
    const { status } = await database.db.instance.findUniqueOrThrow({ where: { id: instanceId } });
    if (status === 'running') return;
    if (status === 'failed') throw new Error(`the instance failed\n${await diagnosis(instanceId)}`);
    await sleep(100);
  }
}

// ---------------------------------------------------------------------------------------------
// One provisioning, killed at `point` (or never)

let sequence = 0;

async function provision(point: KillPoint | null): Promise<{ instanceId: string; objects: string[] }> {
  sequence += 1;
  const domain = `crash-${sequence}.woolly.test`;
  if (!worker) await startNextWorker();
  const armed = new AbortController();
  const reached = point?.arm(domain, armed.signal);
  let instanceId: string;
  try {
    const placed = await call(`${app.url}/v1/orders`, {
      token: staffToken,
      body: { organizationId, plan: 'community', domain },
    });
    assert.equal(placed.status, 201, JSON.stringify(placed.body));
    instanceId = placed.body.instanceId;
  } catch (error) {
    armed.abort();
    throw error;
  }
  instanceIds.push(instanceId);
  const controllers = playControllers(namespaceFor(instanceId), point?.controllers ?? 'all');
  let before: Record<string, string> = {};
  try {
    if (point && reached) {
      await within(`reaching the kill point "${point.name}"`, instanceId, () => reached);
      await worker?.kill('SIGKILL');
      // Held requests die with their client: what was held before the API server stays undone.
      proxy.clear();
      before = await secretsOf(instanceId);
      controllers.set('all');
      await startNextWorker();
    }
    await within('the instance running', instanceId, (signal) => untilRunning(instanceId, signal));
  } finally {
    armed.abort();
    await controllers.stop();
    proxy.clear();
  }

  const instance = await database.db.instance.findUniqueOrThrow({ where: { id: instanceId } });
  assert.equal(instance.status, 'running');
  assert.equal(instance.observedGeneration, instance.generation);
  const operations = await database.db.operation.findMany({ where: { instanceId } });
  assert.deepEqual(
    operations.map((operation) => [operation.kind, operation.status]),
    [['provision', 'succeeded']],
    'exactly one provision operation, succeeded',
  );
  const steps = await stepsOf(instanceId);
  assert.deepEqual(
    steps.map((step) => step.name),
    PROVISION_STEPS,
    `each step recorded once, in order\n${await diagnosis(instanceId)}`,
  );
  assert.ok(
    steps.every((step) => step.outcome === 'succeeded' || step.outcome === 'skipped'),
    `every step done\n${await diagnosis(instanceId)}`,
  );

  const secrets = await secretsOf(instanceId);
  assert.deepEqual(Object.keys(secrets).sort(), [...INSTANCE_SECRET_NAMES].sort());
  for (const [name, ciphertext] of Object.entries(before)) {
    assert.equal(secrets[name], ciphertext, `${name} unchanged since the kill`);
  }
  // The Secret on the cluster carries the stored values, whichever worker applied it.
  const { values } = await ensureInstanceSecrets(database.db, box, instanceId);
  const applied = await kubeRequest(
    server,
    'GET',
    `/api/v1/namespaces/${namespaceFor(instanceId)}/secrets/mastodon-secrets`,
  );
  assert.deepEqual(
    Object.fromEntries(
      Object.entries(applied.body.data as Record<string, string>).map(([name, value]) => [
        name,
        Buffer.from(value, 'base64').toString('utf8'),
      ]),
    ),
    values,
    'the Secret applied holds the stored values',
  );

  const namespace = namespaceFor(instanceId);
  for (const component of JOB_COMPONENTS) {
    assert.equal((await jobsOf(server, namespace, component)).length, 1, `one ${component} Job`);
  }
  const name = databaseNameOf(instanceId);
  const databases = await watch.query('select 1 from pg_database where datname = $1', [name]);
  const roles = await watch.query('select 1 from pg_roles where rolname = $1', [name]);
  assert.equal(databases.rowCount, 1, 'one database');
  assert.equal(roles.rowCount, 1, 'one role');
  return { instanceId, objects: normalise(await objectsOf(instanceId), instanceId) };
}

describe('a worker killed at any point of a provisioning', { skip }, () => {
  let reference: string[] = [];

  it('an uninterrupted provisioning, the reference for the others', async () => {
    const { objects } = await provision(null);
    reference = objects;
    assert.equal(reference[0], 'Namespace/<namespace>');
    for (const kind of ['Secret', 'ConfigMap', 'Deployment', 'Service', 'NetworkPolicy']) {
      assert.ok(
        reference.some((object) => object.startsWith(`${kind}/`)),
        `a ${kind} among ${reference.join(', ')}`,
      );
    }
    assert.deepEqual(
      reference.filter((object) => object.startsWith('Job/')),
      JOB_COMPONENTS.map((component) => `Job/${component}`).sort(),
    );
  });

  for (const point of KILL_POINTS) {
    it(`killed ${point.name}: a new worker brings it up with one of everything`, async () => {
      const { objects } = await provision(point);
      assert.deepEqual(objects, reference, 'exactly the objects of an uninterrupted provisioning');
    });
  }
});
