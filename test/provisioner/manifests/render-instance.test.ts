import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Deployment } from 'kubernetes-models/apps/v1';
import { CronJob, Job } from 'kubernetes-models/batch/v1';
import { Ingress, NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import {
  ConfigMap,
  LimitRange,
  Namespace,
  PersistentVolumeClaim,
  ResourceQuota,
  Secret,
  Service,
} from 'kubernetes-models/v1';
import { PLAN_CATALOG, type PlanDefinition, type PlanLimits } from '../../../core/domain/catalog.ts';
import { AppError } from '../../../core/errors.ts';
import { renderBackupObjects } from '../../../provisioner/manifests/render-backup.ts';
import {
  applyPhaseOf,
  type InstanceRenderInput,
  type KubeObject,
  namespaceFor,
  renderInstanceManifests,
  renderInstanceSecret,
  sizeWorkloads,
} from '../../../provisioner/manifests/render-instance.ts';

const INSTANCE_ID = '3f2b9c4e-1a7d-4e0b-9c2f-5d6e7f8a9b0c';
const NAMESPACE = 'mastodon-3f2b9c4e1a7d';

function makeInput(overrides: Partial<InstanceRenderInput> = {}): InstanceRenderInput {
  const plan = planByCode('starter');
  return {
    instanceId: INSTANCE_ID,
    domain: 'chess.woolly.test',
    mastodonVersion: 'v4.5.11',
    flavor: 'vanilla',
    planCode: plan.code,
    limits: { ...plan.limits },
    generation: 7,
    secretName: 'mastodon-secrets',
    database: { host: '10.20.30.40', port: 5432, name: 'mastodon_chess', user: 'mastodon_chess' },
    smtp: { server: 'smtp.mail.test', port: 587, fromAddress: 'notifications@chess.woolly.test' },
    ingressClassName: 'nginx',
    clusterIssuer: 'letsencrypt',
    objectStorage: null,
    search: null,
    ...overrides,
  };
}

function planByCode(code: string): PlanDefinition {
  const plan = PLAN_CATALOG.find((candidate) => candidate.code === code);
  assert.ok(plan, `plan ${code} is in the catalog`);
  return plan;
}

const OBJECT_STORAGE = { bucket: 'chess-media', endpoint: 'https://s3.fr-par.scw.cloud', region: 'fr-par' };
const SEARCH = { host: 'opensearch.search.svc.cluster.local', port: 9200, scheme: 'http' as const };

/** Every plan with and without the add-ons that change which objects exist. */
function variants(): { name: string; input: InstanceRenderInput }[] {
  return PLAN_CATALOG.flatMap((plan) => [
    {
      name: `${plan.code}, local media, new server with its owner`,
      input: makeInput({
        planCode: plan.code,
        limits: { ...plan.limits },
        owner: { username: 'owner', email: 'owner@example.org' },
      }),
    },
    {
      name: `${plan.code}, suspended`,
      input: makeInput({ planCode: plan.code, limits: { ...plan.limits }, suspended: true }),
    },
    {
      name: `${plan.code}, object storage and search`,
      input: makeInput({
        planCode: plan.code,
        limits: { ...plan.limits },
        objectStorage: { ...OBJECT_STORAGE, aliasHost: 'media.chess.woolly.test' },
        search: SEARCH,
      }),
    },
  ]);
}

// ---------------------------------------------------------------------------------------------
// Helpers that read rendered objects

// biome-ignore lint/suspicious/noExplicitAny: the tests walk rendered JSON; a wrong path fails the assertion.
type Json = Record<string, any>;

function find(objects: KubeObject[], kind: string, name: string): Json {
  const found = objects.find((object) => object.kind === kind && object.metadata.name === name);
  assert.ok(found, `${kind}/${name} is rendered`);
  return found as Json;
}

/** The one object of `kind` whose component label is `component` (Jobs are named by a digest). */
function byComponent(objects: KubeObject[], kind: string, component: string): Json {
  const found = objects.filter(
    (object) => object.kind === kind && object.metadata.labels?.['app.kubernetes.io/component'] === component,
  );
  assert.equal(found.length, 1, `one ${kind} of component ${component}`);
  return found[0] as Json;
}

function ofKind(objects: KubeObject[], kind: string): Json[] {
  return objects.filter((object) => object.kind === kind) as Json[];
}

/** Pod specs of every workload, with the pods each runs at once in the steady state. */
function podSpecs(objects: KubeObject[]): { owner: string; kind: string; replicas: number; spec: Json }[] {
  return objects.flatMap((object) => {
    const o = object as Json;
    const owner = `${object.kind}/${object.metadata.name}`;
    if (object.kind === 'Deployment')
      return [{ owner, kind: object.kind, replicas: o.spec.replicas, spec: o.spec.template.spec }];
    if (object.kind === 'Job') return [{ owner, kind: object.kind, replicas: 0, spec: o.spec.template.spec }];
    if (object.kind === 'CronJob') {
      return [{ owner, kind: object.kind, replicas: 0, spec: o.spec.jobTemplate.spec.template.spec }];
    }
    return [];
  });
}

function millicores(quantity: string): number {
  const match = /^(\d+)(m?)$/.exec(quantity);
  assert.ok(match, `cpu quantity ${quantity} is in a form the test understands`);
  return match[2] ? Number(match[1]) : Number(match[1]) * 1000;
}

function mebibytes(quantity: string): number {
  const match = /^(\d+)(Mi|Gi)$/.exec(quantity);
  assert.ok(match, `memory quantity ${quantity} is in a form the test understands`);
  return match[2] === 'Gi' ? Number(match[1]) * 1024 : Number(match[1]);
}

function podLimits(spec: Json): { cpu: number; memory: number } {
  return (spec.containers as Json[]).reduce<{ cpu: number; memory: number }>(
    (total, container) => ({
      cpu: total.cpu + millicores(container.resources.limits.cpu),
      memory: total.memory + mebibytes(container.resources.limits.memory),
    }),
    { cpu: 0, memory: 0 },
  );
}

function envOf(container: Json): Record<string, string> {
  return Object.fromEntries((container.env ?? []).map((entry: Json) => [entry.name, entry.value]));
}

function sidekiqProcesses(objects: KubeObject[]): {
  name: string;
  replicas: number;
  concurrency: number;
  queues: string[];
  container: Json;
  strategy: string;
}[] {
  return ofKind(objects, 'Deployment')
    .filter((deployment) => deployment.metadata.name.startsWith('sidekiq'))
    .map((deployment) => {
      const container = deployment.spec.template.spec.containers[0];
      const args: string[] = container.args;
      assert.deepEqual(args.slice(0, 3), ['bundle', 'exec', 'sidekiq']);
      const queues = args.flatMap((arg, index) =>
        arg === '-q' ? [(args[index + 1] ?? '').split(',')[0] ?? ''] : [],
      );
      return {
        name: deployment.metadata.name,
        replicas: deployment.spec.replicas,
        concurrency: Number(args[args.indexOf('-c') + 1]),
        queues,
        container,
        strategy: deployment.spec.strategy.type,
      };
    });
}

// biome-ignore lint/suspicious/noExplicitAny: each model takes its own kind's shape; validate() is the check.
const SCHEMAS: Record<string, new (data: any) => { validate(): void }> = {
  Namespace,
  ResourceQuota,
  LimitRange,
  NetworkPolicy,
  ConfigMap,
  Deployment,
  Service,
  PersistentVolumeClaim,
  Job,
  CronJob,
  Ingress,
  PodDisruptionBudget,
  Secret,
};

// ---------------------------------------------------------------------------------------------

describe('namespaceFor', () => {
  it('names the namespace after the first 12 hex digits of the instance UUID', () => {
    assert.equal(namespaceFor(INSTANCE_ID), NAMESPACE);
    assert.equal(namespaceFor(INSTANCE_ID.toUpperCase()), NAMESPACE);
  });

  it('refuses an id that is not a UUID', () => {
    assert.throws(
      () => namespaceFor('chess'),
      (error) => error instanceof AppError && error.code === 'unprocessable',
    );
  });
});

describe('renderInstanceManifests', () => {
  for (const { name, input } of variants()) {
    it(`every object except the cert-manager Certificate validates against the Kubernetes schema (${name})`, () => {
      for (const object of renderInstanceManifests(input)) {
        if (object.kind === 'Certificate') continue;
        const Model = SCHEMAS[object.kind];
        assert.ok(Model, `a schema is known for ${object.kind}`);
        assert.doesNotThrow(
          () => new Model(object).validate(),
          `${object.kind}/${object.metadata.name} is valid`,
        );
      }
    });
  }

  it('renders the cert-manager Certificate (not covered by kubernetes-models) for the Ingress TLS secret', () => {
    const objects = renderInstanceManifests(makeInput());
    const certificate = find(objects, 'Certificate', `${NAMESPACE}-tls`);
    const ingress = find(objects, 'Ingress', 'mastodon');
    assert.equal(certificate.apiVersion, 'cert-manager.io/v1');
    assert.deepEqual(certificate.spec.dnsNames, ['chess.woolly.test']);
    assert.deepEqual(certificate.spec.issuerRef, {
      group: 'cert-manager.io',
      kind: 'ClusterIssuer',
      name: 'letsencrypt',
    });
    assert.equal(certificate.spec.secretName, ingress.spec.tls[0].secretName);
    assert.equal(certificate.spec.secretName, `${NAMESPACE}-tls`);
  });

  it('labels and annotates every object with the instance and generation, inside its namespace', () => {
    for (const object of renderInstanceManifests(makeInput())) {
      const where = `${object.kind}/${object.metadata.name}`;
      assert.equal(object.metadata.labels?.['app.kubernetes.io/part-of'], 'woolly', where);
      assert.equal(object.metadata.labels?.['app.kubernetes.io/instance'], NAMESPACE, where);
      assert.equal(object.metadata.labels?.['woolly.dev/instance-id'], INSTANCE_ID, where);
      assert.equal(object.metadata.annotations?.['woolly.dev/generation'], '7', where);
      assert.equal(object.metadata.namespace, object.kind === 'Namespace' ? undefined : NAMESPACE, where);
    }
  });

  it('lists objects in apply order: namespace, guard rails, config, migration, workloads, network', () => {
    const order = renderInstanceManifests(makeInput({ limits: planByCode('large').limits })).map(
      (object) => `${object.kind}/${object.metadata.name}`,
    );
    const at = (id: string) => {
      const index = order.findIndex((entry) => entry === id || entry.startsWith(`${id}-`));
      assert.ok(index >= 0, `${id} is rendered`);
      return index;
    };
    assert.equal(at(`Namespace/${NAMESPACE}`), 0);
    assert.ok(at('ResourceQuota/mastodon') < at('ConfigMap/mastodon-env'));
    assert.ok(at('NetworkPolicy/default-deny') < at('Deployment/redis'));
    assert.ok(at('ConfigMap/mastodon-env') < at('Job/db-migrate'));
    assert.ok(at('Job/db-migrate') < at('Deployment/web'));
    for (const name of ['web', 'streaming', 'sidekiq-default', 'sidekiq-federation']) {
      assert.ok(
        at(`Deployment/${name}`) < at('Job/db-post-migrate'),
        `${name} rolls out before post-deploy migrations`,
      );
    }
    assert.ok(at('Service/web') < at('Ingress/mastodon'));
    assert.ok(at('Ingress/mastodon') < at(`Certificate/${NAMESPACE}-tls`));
  });

  it('enforces PodSecurity restricted on the namespace and every pod meets it', () => {
    for (const { name, input } of variants()) {
      const objects = renderInstanceManifests(input);
      const namespace = find(objects, 'Namespace', NAMESPACE);
      assert.equal(namespace.metadata.labels['pod-security.kubernetes.io/enforce'], 'restricted');
      assert.equal(namespace.metadata.labels['pod-security.kubernetes.io/enforce-version'], 'latest');

      for (const { owner, spec } of podSpecs(objects)) {
        const where = `${name}: ${owner}`;
        assert.equal(spec.automountServiceAccountToken, false, where);
        assert.equal(spec.hostNetwork ?? false, false, where);
        assert.equal(spec.securityContext.runAsUser, 991, where);
        for (const volume of spec.volumes ?? []) {
          const types = Object.keys(volume).filter((key) => key !== 'name');
          assert.ok(
            types.every((type) =>
              ['emptyDir', 'persistentVolumeClaim', 'configMap', 'secret'].includes(type),
            ),
            where,
          );
        }
        for (const container of spec.containers as Json[]) {
          const effective = { ...spec.securityContext, ...container.securityContext };
          assert.equal(effective.runAsNonRoot, true, where);
          assert.notEqual(effective.runAsUser, 0, where);
          assert.equal(effective.seccompProfile?.type, 'RuntimeDefault', where);
          assert.equal(effective.allowPrivilegeEscalation, false, where);
          assert.equal(effective.privileged ?? false, false, where);
          assert.deepEqual(container.securityContext.capabilities, { drop: ['ALL'] }, where);
        }
      }
    }
  });

  it('keeps secrets out of the ConfigMap and hands them to every Mastodon container from the Secret', () => {
    const objects = renderInstanceManifests(makeInput({ objectStorage: OBJECT_STORAGE, search: SEARCH }));
    const data: Record<string, string> = find(objects, 'ConfigMap', 'mastodon-env').data;
    assert.equal(data.LOCAL_DOMAIN, 'chess.woolly.test');
    assert.equal(data.WEB_DOMAIN, 'chess.woolly.test');
    assert.equal(data.RAILS_ENV, 'production');
    assert.equal(data.DB_HOST, '10.20.30.40');
    assert.equal(data.REDIS_HOST, 'redis');
    assert.equal(data.SMTP_FROM_ADDRESS, 'notifications@chess.woolly.test');
    const secretLooking = Object.keys(data).filter((key) =>
      /PASS|SECRET|KEY|TOKEN|OTP|VAPID|ACCESS/.test(key),
    );
    assert.deepEqual(secretLooking, []);

    for (const { owner, spec } of podSpecs(objects)) {
      // A Service named redis would otherwise inject REDIS_PORT=tcp://… over Mastodon's REDIS_PORT.
      assert.equal(spec.enableServiceLinks, false, owner);
      for (const container of spec.containers as Json[]) {
        if (container.name === 'redis') continue;
        assert.deepEqual(
          container.envFrom,
          [{ configMapRef: { name: 'mastodon-env' } }, { secretRef: { name: 'mastodon-secrets' } }],
          owner,
        );
      }
    }
  });

  it('configures S3 only with object storage and Elasticsearch only with search', () => {
    const plain = find(renderInstanceManifests(makeInput()), 'ConfigMap', 'mastodon-env').data;
    assert.deepEqual(
      Object.keys(plain).filter((key) => /^(S3|ES)_/.test(key)),
      [],
    );

    const full = find(
      renderInstanceManifests(
        makeInput({
          objectStorage: { ...OBJECT_STORAGE, aliasHost: 'media.chess.woolly.test' },
          search: SEARCH,
        }),
      ),
      'ConfigMap',
      'mastodon-env',
    ).data;
    assert.equal(full.S3_ENABLED, 'true');
    assert.equal(full.S3_BUCKET, 'chess-media');
    assert.equal(full.S3_ENDPOINT, 'https://s3.fr-par.scw.cloud');
    assert.equal(full.S3_REGION, 'fr-par');
    assert.equal(full.S3_PERMISSION, 'public-read');
    assert.equal(full.S3_ALIAS_HOST, 'media.chess.woolly.test');
    // Without these Mastodon would build media URLs on s3-<region>.amazonaws.com.
    assert.equal(full.S3_HOSTNAME, 's3.fr-par.scw.cloud');
    assert.equal(full.S3_PROTOCOL, 'https');
    assert.equal(full.ES_ENABLED, 'true');
    assert.equal(full.ES_HOST, SEARCH.host);
    assert.equal(full.ES_PORT, '9200');
    assert.equal(full.ES_PRESET, 'single_node_cluster');

    const noAlias = find(
      renderInstanceManifests(makeInput({ objectStorage: OBJECT_STORAGE })),
      'ConfigMap',
      'mastodon-env',
    ).data;
    assert.equal('S3_ALIAS_HOST' in noAlias, false);
    assert.equal('ES_ENABLED' in noAlias, false);
  });

  it('keeps local media on a ReadWriteMany volume mounted by web, sidekiq and media clean-up, only without object storage', () => {
    const local = renderInstanceManifests(makeInput({ limits: planByCode('large').limits }));
    const claim = find(local, 'PersistentVolumeClaim', 'mastodon-system');
    assert.deepEqual(claim.spec.accessModes, ['ReadWriteMany']);
    assert.equal(claim.spec.resources.requests.storage, `${planByCode('large').limits.storageGb}Gi`);
    assert.equal(find(local, 'ResourceQuota', 'mastodon').spec.hard.persistentvolumeclaims, '1');
    const mounting = podSpecs(local)
      .filter(({ spec }) =>
        spec.containers[0].volumeMounts?.some(
          (mount: Json) => mount.mountPath === '/opt/mastodon/public/system',
        ),
      )
      .map(({ owner }) => owner)
      .sort();
    assert.deepEqual(mounting, [
      'CronJob/media-remove',
      'CronJob/preview-cards-remove',
      'Deployment/sidekiq-default',
      'Deployment/sidekiq-federation',
      'Deployment/web',
    ]);

    const remote = renderInstanceManifests(makeInput({ objectStorage: OBJECT_STORAGE }));
    assert.deepEqual(ofKind(remote, 'PersistentVolumeClaim'), []);
    assert.equal(find(remote, 'ResourceQuota', 'mastodon').spec.hard.persistentvolumeclaims, '0');
    for (const { owner, spec } of podSpecs(remote)) {
      assert.equal(JSON.stringify(spec).includes('mastodon-system'), false, owner);
    }
  });

  for (const plan of PLAN_CATALOG) {
    it(`runs the scheduler queue in exactly one single-replica sidekiq and spreads all ${plan.limits.sidekiqConcurrency} threads (${plan.code})`, () => {
      const processes = sidekiqProcesses(renderInstanceManifests(makeInput({ limits: plan.limits })));
      const schedulers = processes.filter((process) => process.queues.includes('scheduler'));
      assert.equal(schedulers.length, 1);
      assert.equal(schedulers[0]?.replicas, 1);
      assert.equal(
        processes.reduce((sum, process) => sum + process.concurrency * process.replicas, 0),
        plan.limits.sidekiqConcurrency,
      );
      const served = processes.flatMap((process) => process.queues).sort();
      assert.deepEqual(served, ['default', 'ingress', 'mailers', 'pull', 'push', 'scheduler']);
      for (const process of processes) {
        assert.equal(process.strategy, 'Recreate', process.name);
        assert.equal(
          envOf(process.container).DB_POOL,
          String(process.concurrency),
          `${process.name} has a connection per thread`,
        );
      }
    });
  }

  it('uses one sidekiq up to 25 threads and splits default and federation queues above', () => {
    const names = (sidekiqConcurrency: number) =>
      sidekiqProcesses(
        renderInstanceManifests(makeInput({ limits: { ...planByCode('large').limits, sidekiqConcurrency } })),
      ).map((process) => process.name);
    assert.deepEqual(names(25), ['sidekiq']);
    assert.deepEqual(names(26), ['sidekiq-default', 'sidekiq-federation']);
    const split = sidekiqProcesses(
      renderInstanceManifests(makeInput({ limits: planByCode('large').limits })),
    );
    assert.deepEqual(split.find((process) => process.name === 'sidekiq-federation')?.queues, [
      'ingress',
      'pull',
    ]);
  });

  for (const plan of PLAN_CATALOG) {
    it(`fits the steady state in the plan and a rollout plus one task pod in the ResourceQuota (${plan.code})`, () => {
      const objects = renderInstanceManifests(makeInput({ limits: plan.limits }));
      const hard = find(objects, 'ResourceQuota', 'mastodon').spec.hard;
      assert.equal(hard['requests.storage'], `${plan.limits.storageGb}Gi`);
      assert.equal(hard['requests.cpu'], hard['limits.cpu']);
      assert.equal(hard['requests.memory'], hard['limits.memory']);

      const pods = podSpecs(objects);
      let steadyCpu = 0;
      let steadyMemory = 0;
      let surgeCpu = 0;
      let surgeMemory = 0;
      let taskCpu = 0;
      let taskMemory = 0;
      for (const { kind, replicas, spec } of pods) {
        const limits = podLimits(spec);
        for (const container of spec.containers as Json[]) {
          assert.ok(
            millicores(container.resources.requests.cpu) <= millicores(container.resources.limits.cpu),
          );
          assert.ok(
            mebibytes(container.resources.requests.memory) <= mebibytes(container.resources.limits.memory),
          );
        }
        if (kind === 'Deployment') {
          steadyCpu += limits.cpu * replicas;
          steadyMemory += limits.memory * replicas;
        } else {
          taskCpu = Math.max(taskCpu, limits.cpu);
          taskMemory = Math.max(taskMemory, limits.memory);
        }
      }
      for (const deployment of ofKind(objects, 'Deployment')) {
        if (deployment.spec.strategy.type !== 'RollingUpdate') continue;
        const limits = podLimits(deployment.spec.template.spec);
        surgeCpu += limits.cpu * deployment.spec.strategy.rollingUpdate.maxSurge;
        surgeMemory += limits.memory * deployment.spec.strategy.rollingUpdate.maxSurge;
      }

      assert.ok(steadyCpu <= plan.limits.cpuMillicores, `steady CPU ${steadyCpu}m fits the plan`);
      assert.ok(steadyMemory <= plan.limits.memoryMib, `steady memory ${steadyMemory}Mi fits the plan`);
      // cert-manager's HTTP-01 solver (100m / 64Mi limits) must also be admitted on top.
      assert.ok(
        steadyCpu + surgeCpu + taskCpu + 100 <= millicores(hard['limits.cpu']),
        'CPU quota admits a rollout',
      );
      assert.ok(
        steadyMemory + surgeMemory + taskMemory + 64 <= mebibytes(hard['limits.memory']),
        'memory quota admits a rollout',
      );
    });

    it(`keeps every connection pool together within the plan's ${plan.limits.dbConnections} database connections (${plan.code})`, () => {
      const objects = renderInstanceManifests(makeInput({ limits: plan.limits }));
      const config = find(objects, 'ConfigMap', 'mastodon-env').data;
      const pool = (container: Json) => Number(envOf(container).DB_POOL ?? config.DB_POOL);

      const web = find(objects, 'Deployment', 'web');
      const puma = web.spec.template.spec.containers[0];
      const workers = Number(envOf(puma).WEB_CONCURRENCY);
      const threads = Number(envOf(puma).MAX_THREADS);
      assert.ok(workers >= 1 && threads >= 1);
      assert.ok(pool(puma) >= threads, 'each Puma thread can get a connection');

      const streaming = find(objects, 'Deployment', 'streaming').spec.template.spec.containers[0];
      const sidekiq = sidekiqProcesses(objects).reduce(
        (sum, process) => sum + pool(process.container) * process.replicas,
        0,
      );
      const tasks = podSpecs(objects)
        .filter(({ kind }) => kind !== 'Deployment')
        .map(({ spec }) => spec.containers[0]);
      for (const task of tasks) {
        const args: string[] = task.args;
        const concurrency = args.includes('--concurrency')
          ? Number(args[args.indexOf('--concurrency') + 1])
          : 1;
        assert.ok(
          pool(task) > concurrency,
          `${task.name} has a connection per worker thread and one to iterate`,
        );
      }
      const oneTask = Math.max(...tasks.map(pool));
      const total = web.spec.replicas * workers * pool(puma) + pool(streaming) + sidekiq + oneTask;
      assert.ok(
        total <= plan.limits.dbConnections,
        `${total} connections fit in ${plan.limits.dbConnections}`,
      );
    });
  }

  it('adds a PodDisruptionBudget for web only when it runs more than one replica', () => {
    for (const plan of PLAN_CATALOG) {
      const budgets = ofKind(
        renderInstanceManifests(makeInput({ limits: plan.limits })),
        'PodDisruptionBudget',
      );
      if (plan.limits.webReplicas > 1) {
        assert.equal(budgets.length, 1, plan.code);
        assert.equal(budgets[0]?.spec.minAvailable, 1);
        assert.deepEqual(budgets[0]?.spec.selector.matchLabels, {
          'app.kubernetes.io/instance': NAMESPACE,
          'app.kubernetes.io/component': 'web',
        });
      } else {
        assert.deepEqual(budgets, [], plan.code);
      }
    }
  });

  it('runs web, streaming, sidekiq and tasks from images pinned to the version and flavor', () => {
    const imagesOf = (flavor: 'vanilla' | 'glitch') => {
      const objects = renderInstanceManifests(makeInput({ flavor, limits: planByCode('large').limits }));
      return new Set(
        podSpecs(objects).flatMap(({ spec }) => spec.containers.map((container: Json) => container.image)),
      );
    };
    assert.deepEqual([...imagesOf('vanilla')].sort(), [
      'docker.io/library/redis:7.4-alpine',
      'ghcr.io/mastodon/mastodon-streaming:v4.5.11',
      'ghcr.io/mastodon/mastodon:v4.5.11',
    ]);
    assert.deepEqual([...imagesOf('glitch')].sort(), [
      'docker.io/library/redis:7.4-alpine',
      'ghcr.io/glitch-soc/mastodon-streaming:v4.5.11',
      'ghcr.io/glitch-soc/mastodon:v4.5.11',
    ]);
    assert.throws(() => renderInstanceManifests(makeInput({ mastodonVersion: 'latest' })), AppError);
  });

  it('starts web and streaming with their commands, ports and health probes', () => {
    const objects = renderInstanceManifests(makeInput());
    const web = find(objects, 'Deployment', 'web');
    const puma = web.spec.template.spec.containers[0];
    assert.deepEqual(puma.args, ['bundle', 'exec', 'puma', '-C', 'config/puma.rb']);
    assert.deepEqual(puma.ports, [{ name: 'http', containerPort: 3000, protocol: 'TCP' }]);
    assert.equal(puma.readinessProbe.httpGet.path, '/health');
    assert.equal(puma.startupProbe.httpGet.path, '/health');
    assert.deepEqual(puma.livenessProbe.tcpSocket, { port: 'http' });
    assert.equal(web.spec.replicas, 1);
    assert.deepEqual(web.spec.strategy, {
      type: 'RollingUpdate',
      rollingUpdate: { maxSurge: 1, maxUnavailable: 0 },
    });

    const streaming = find(objects, 'Deployment', 'streaming').spec.template.spec.containers[0];
    assert.deepEqual(streaming.args, ['node', './streaming/index.js']);
    assert.equal(streaming.ports[0].containerPort, 4000);
    assert.equal(streaming.readinessProbe.httpGet.path, '/api/v1/streaming/health');

    const migrate = byComponent(objects, 'Job', 'db-migrate');
    const migrateContainer = migrate.spec.template.spec.containers[0];
    assert.deepEqual(migrateContainer.args, ['bundle', 'exec', 'rails', 'db:prepare']);
    assert.equal(envOf(migrateContainer).SKIP_POST_DEPLOYMENT_MIGRATIONS, 'true');
    assert.equal(migrate.spec.backoffLimit, 3);
    assert.ok(migrate.spec.ttlSecondsAfterFinished > 0);
    const postMigrate = byComponent(objects, 'Job', 'db-post-migrate').spec.template.spec.containers[0];
    assert.deepEqual(postMigrate.args, ['bundle', 'exec', 'rails', 'db:migrate']);
    assert.equal('SKIP_POST_DEPLOYMENT_MIGRATIONS' in envOf(postMigrate), false);

    const mediaRemove = find(objects, 'CronJob', 'media-remove');
    assert.deepEqual(mediaRemove.spec.jobTemplate.spec.template.spec.containers[0].args.slice(0, 5), [
      'bin/tootctl',
      'media',
      'remove',
      '--days',
      '7',
    ]);
    assert.match(mediaRemove.spec.schedule, /^\d{1,2} 3 \* \* \*$/);
  });

  it('routes the streaming API to streaming and the rest to web over TLS', () => {
    const objects = renderInstanceManifests(makeInput());
    const ingress = find(objects, 'Ingress', 'mastodon');
    assert.equal(ingress.spec.ingressClassName, 'nginx');
    assert.deepEqual(ingress.spec.tls, [{ hosts: ['chess.woolly.test'], secretName: `${NAMESPACE}-tls` }]);
    const paths = ingress.spec.rules[0].http.paths.map((path: Json) => [
      path.path,
      path.backend.service.name,
    ]);
    assert.deepEqual(paths, [
      ['/api/v1/streaming', 'streaming'],
      ['/', 'web'],
    ]);
    // The Certificate owns the secret; ingress-shim would fight it over a non-owned Certificate.
    assert.equal('cert-manager.io/cluster-issuer' in ingress.metadata.annotations, false);
    assert.deepEqual(find(objects, 'Service', 'web').spec.ports[0].port, 3000);
    assert.deepEqual(find(objects, 'Service', 'streaming').spec.ports[0].port, 4000);
    assert.deepEqual(find(objects, 'Service', 'redis').spec.ports[0].port, 6379);
  });

  describe('network policies', () => {
    const objects = renderInstanceManifests(
      makeInput({
        database: { host: 'pg.databases.svc.cluster.local', port: 6432, name: 'm', user: 'm' },
        search: SEARCH,
      }),
    );
    const policies = ofKind(objects, 'NetworkPolicy');
    const selects = (policy: Json, labels: Record<string, string>) => {
      const matchLabels: Record<string, string> = policy.spec.podSelector.matchLabels ?? {};
      return Object.entries(matchLabels).every(([key, value]) => labels[key] === value);
    };
    const podLabelsOf = (name: string) => find(objects, 'Deployment', name).spec.template.metadata.labels;

    it('denies all ingress and egress by default', () => {
      const deny = policies.find((policy) => policy.metadata.name === 'default-deny');
      assert.deepEqual(deny?.spec, { podSelector: {}, policyTypes: ['Ingress', 'Egress'] });
    });

    it('lets only the ingress controller reach web on 3000 and streaming on 4000', () => {
      for (const [name, port] of [
        ['web', 3000],
        ['streaming', 4000],
      ] as const) {
        const rules = policies
          .filter((policy) => selects(policy, podLabelsOf(name)) && policy.spec.ingress)
          .flatMap((policy) => policy.spec.ingress);
        assert.deepEqual(rules, [
          {
            from: [
              { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'ingress-nginx' } } },
            ],
            ports: [{ protocol: 'TCP', port }],
          },
        ]);
      }
    });

    it('lets Mastodon pods, and nothing else, reach redis', () => {
      const rules = policies
        .filter((policy) => selects(policy, podLabelsOf('redis')) && policy.spec.ingress)
        .flatMap((policy) => policy.spec.ingress);
      assert.deepEqual(rules, [
        {
          from: [{ podSelector: { matchLabels: { 'app.kubernetes.io/name': 'mastodon' } } }],
          ports: [{ protocol: 'TCP', port: 6379 }],
        },
      ]);
    });

    it('lets Mastodon pods reach DNS, redis, the database, SMTP, search and public web ports only', () => {
      for (const name of ['web', 'streaming', 'sidekiq']) {
        const egress: Json[] = policies
          .filter((policy) => selects(policy, podLabelsOf(name)) && policy.spec.egress)
          .flatMap((policy) => policy.spec.egress);
        const ports = (rule: Json) =>
          rule.ports.map((port: Json) => `${port.protocol}/${port.port}`).join(',');
        const byPorts = Object.fromEntries(egress.map((rule) => [ports(rule), rule.to ?? 'anywhere']));
        assert.deepEqual(byPorts['UDP/53,TCP/53'], [
          { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'kube-system' } } },
        ]);
        assert.deepEqual(byPorts['TCP/6379'], [
          {
            podSelector: {
              matchLabels: {
                'app.kubernetes.io/instance': NAMESPACE,
                'app.kubernetes.io/component': 'redis',
              },
            },
          },
        ]);
        assert.deepEqual(byPorts['TCP/6432'], [
          { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'databases' } } },
        ]);
        assert.deepEqual(byPorts['TCP/9200'], [
          { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'search' } } },
        ]);
        // A DNS name cannot be matched by NetworkPolicy, so SMTP is open on its port only.
        assert.equal(byPorts['TCP/587'], 'anywhere');
        const web: Json[] = byPorts['TCP/80,TCP/443'];
        assert.equal(web[0]?.ipBlock.cidr, '0.0.0.0/0');
        assert.ok(web[0]?.ipBlock.except.includes('169.254.0.0/16'), 'cloud metadata is not reachable');
        assert.equal(Object.keys(byPorts).length, 6, `${name} gets no other egress`);
      }
    });

    it('narrows the database rule to the address when the host is an IP', () => {
      const policy = find(renderInstanceManifests(makeInput()), 'NetworkPolicy', 'allow-mastodon-egress');
      const rule = policy.spec.egress.find((candidate: Json) => candidate.ports[0].port === 5432);
      assert.deepEqual(rule.to, [{ ipBlock: { cidr: '10.20.30.40/32' } }]);
    });
  });

  it('rolls Mastodon pods when the environment changes but not when only the generation does', () => {
    const templates = (input: InstanceRenderInput) =>
      Object.fromEntries(
        ofKind(renderInstanceManifests(input), 'Deployment').map((deployment) => [
          deployment.metadata.name,
          JSON.stringify(deployment.spec.template),
        ]),
      );
    const base = templates(makeInput());
    assert.deepEqual(templates(makeInput({ generation: 8 })), base);
    const changed = templates(
      makeInput({ smtp: { server: 'smtp.mail.test', port: 2525, fromAddress: 'n@chess.woolly.test' } }),
    );
    assert.equal(changed.redis, base.redis, 'redis does not read the Mastodon environment');
    for (const name of ['web', 'streaming', 'sidekiq']) {
      assert.notEqual(changed[name], base[name], `${name} rolls`);
    }
  });

  it('shares no object between places in the output, nor with the input', () => {
    for (const { name, input } of variants()) {
      const seen = new Set<object>();
      const walk = (value: unknown, path: string) => {
        if (typeof value !== 'object' || value === null) return;
        assert.equal(seen.has(value), false, `${name}: ${path} is shared`);
        seen.add(value);
        for (const [key, child] of Object.entries(value)) walk(child, `${path}.${key}`);
      };
      walk(input, 'input');
      walk(renderInstanceManifests(input), 'output');
    }
  });

  it('renders byte-identical output for the same input and leaves the input untouched', () => {
    for (const { input } of variants()) {
      const before = JSON.stringify(input);
      const first = JSON.stringify(renderInstanceManifests(input));
      const second = JSON.stringify(renderInstanceManifests(structuredClone(input)));
      assert.equal(first, second);
      assert.equal(JSON.stringify(input), before);
    }
  });

  it('scales a suspended server to zero and pauses its CronJobs, keeping volumes, config and secrets', () => {
    const running = renderInstanceManifests(makeInput({ limits: { ...planByCode('large').limits } }));
    const suspended = renderInstanceManifests(
      makeInput({ limits: { ...planByCode('large').limits }, suspended: true }),
    );
    const deployments = ofKind(suspended, 'Deployment');
    assert.ok(deployments.length >= 4);
    for (const object of deployments) {
      assert.equal(
        object.spec.replicas,
        object.metadata.name === 'maintenance' ? 1 : 0,
        object.metadata.name,
      );
    }
    const cronJobs = ofKind(suspended, 'CronJob');
    assert.ok(cronJobs.length > 0);
    for (const object of cronJobs) assert.equal(object.spec.suspend, true, object.metadata.name);
    for (const object of ofKind(running, 'CronJob')) assert.equal(object.spec.suspend, false);
    const kinds = (objects: KubeObject[]) =>
      objects.map((object) => `${object.kind}/${object.metadata.name}`);
    assert.ok(kinds(running).some((kind) => kind.startsWith('PodDisruptionBudget/')));
    const maintenance = ['ConfigMap/maintenance-page', 'Deployment/maintenance', 'Service/maintenance'];
    assert.deepEqual(
      kinds(suspended).filter((kind) => !maintenance.includes(kind)),
      kinds(running).filter((kind) => !kind.startsWith('PodDisruptionBudget/') && !kind.startsWith('Job/')),
      'the same objects but the disruption budget and the migrations (they run on resume)',
    );
    assert.deepEqual(
      maintenance.filter((kind) => kinds(suspended).includes(kind)),
      maintenance,
      'and the maintenance page',
    );
    assert.ok(!kinds(running).some((kind) => maintenance.includes(kind)));
  });

  it('shows a suspended server’s visitors a maintenance page: a 503 from a read-only nginx', () => {
    const suspended = renderInstanceManifests(makeInput({ suspended: true }));
    const page = find(suspended, 'Deployment', 'maintenance');
    assert.equal(page.spec.replicas, 1, 'the one workload still running');
    const nginx = page.spec.template.spec.containers[0];
    assert.equal(nginx.securityContext.readOnlyRootFilesystem, true);
    assert.deepEqual(nginx.args, ['nginx', '-c', '/etc/nginx/maintenance/nginx.conf', '-g', 'daemon off;']);
    const config = find(suspended, 'ConfigMap', 'maintenance-page');
    assert.match(config.data['nginx.conf'], /location \/ \{ return 503; \}/);
    assert.match(config.data['nginx.conf'], /pid \/tmp\/nginx\.pid;/);
    assert.match(config.data['index.html'], /chess\.woolly\.test is paused/);
    const ingress = find(suspended, 'Ingress', 'mastodon');
    assert.deepEqual(ingress.spec.rules[0].http.paths, [
      {
        path: '/',
        pathType: 'Prefix',
        backend: { service: { name: 'maintenance', port: { name: 'http' } } },
      },
    ]);
    const allowed = find(suspended, 'NetworkPolicy', 'allow-ingress-to-maintenance');
    assert.deepEqual(allowed.spec.ingress[0].ports, [{ protocol: 'TCP', port: 8080 }]);
    assert.equal(applyPhaseOf(find(suspended, 'Ingress', 'mastodon') as KubeObject), 'route');
    assert.equal(applyPhaseOf(page as KubeObject), 'config', 'the page is up before traffic moves to it');
  });

  it('names each run-once Job by its spec: the same Job across spec changes, a new one for a new version', () => {
    const jobs = (input: InstanceRenderInput) =>
      ofKind(renderInstanceManifests(input), 'Job').map((job) => job.metadata.name as string);
    const base = jobs(makeInput());
    assert.equal(base.length, 2);
    assert.match(base[0] ?? '', /^db-migrate-[0-9a-f]{10}$/);
    assert.deepEqual(jobs(makeInput({ generation: 8, limits: planByCode('large').limits })), base);
    const upgraded = jobs(makeInput({ mastodonVersion: 'v4.5.12' }));
    assert.equal(upgraded.filter((name) => base.includes(name)).length, 0, 'both migrations run again');
  });

  it('creates the owner account once, as Owner, without printing its password', () => {
    const objects = renderInstanceManifests(
      makeInput({ owner: { username: 'ada_l', email: 'ada@example.org' } }),
    );
    const job = byComponent(objects, 'Job', 'owner-account');
    const container = job.spec.template.spec.containers[0];
    assert.deepEqual(container.args.slice(0, 2), ['sh', '-c']);
    assert.match(
      container.args[2],
      /tootctl accounts create "\$OWNER_USERNAME" --email "\$OWNER_EMAIL" --confirmed --role Owner > \/dev\/null; bin\/rails runner "\$OWNER_TOKEN_RUBY"$/,
    );
    // The admin API token: read from the server's Secret (envFrom), never on the command line.
    const ruby = envOf(container).OWNER_TOKEN_RUBY ?? '';
    assert.match(
      ruby,
      /Doorkeeper::AccessToken\.find_or_create_by!\(token: ENV\.fetch\('ADMIN_API_TOKEN'\)\)/,
    );
    assert.match(ruby, /t\.scopes = 'admin:read'/);
    assert.match(ruby, /Account\.find_local!\(ENV\.fetch\('OWNER_USERNAME'\)\)/);
    assert.deepEqual(
      container.envFrom
        .map((source: { secretRef?: { name: string } }) => source.secretRef?.name)
        .filter(Boolean),
      [makeInput().secretName],
    );
    assert.equal(envOf(container).ADMIN_API_TOKEN, undefined, 'no token value in the Job itself');
    assert.equal(envOf(container).OWNER_USERNAME, 'ada_l');
    assert.equal(envOf(container).OWNER_EMAIL, 'ada@example.org');
    assert.equal(applyPhaseOf(job as KubeObject), 'owner-account');
    assert.equal(ofKind(renderInstanceManifests(makeInput()), 'Job').length, 2, 'no owner given, no Job');
    assert.throws(
      () => renderInstanceManifests(makeInput({ owner: { username: 'Ada; rm -rf', email: 'a@b.c' } })),
      (error) => error instanceof AppError && /not a Mastodon username/.test(error.detail),
    );
  });

  it('sorts objects into apply phases: migrations around the workloads, everything else first', () => {
    const phases = new Map<string, string[]>();
    for (const object of renderInstanceManifests(makeInput({ limits: planByCode('large').limits }))) {
      const phase = applyPhaseOf(object);
      phases.set(phase, [
        ...(phases.get(phase) ?? []),
        `${object.kind}/${object.metadata.labels?.['app.kubernetes.io/component'] ?? object.metadata.name}`,
      ]);
    }
    assert.deepEqual(phases.get('pre-migrate'), ['Job/db-migrate']);
    assert.deepEqual(phases.get('post-migrate'), ['Job/db-post-migrate']);
    assert.deepEqual(phases.get('workloads'), [
      'Deployment/web',
      'Deployment/streaming',
      'Deployment/sidekiq-default',
      'Deployment/sidekiq-federation',
      'CronJob/media-remove',
      'CronJob/preview-cards-remove',
    ]);
    assert.ok(phases.get('config')?.includes('Deployment/redis'), 'redis is up before migrations');
  });
});

describe('sizeWorkloads', () => {
  it('refuses a plan too small to run Mastodon', () => {
    const tiny: PlanLimits = { ...planByCode('starter').limits, memoryMib: 512 };
    assert.throws(
      () => sizeWorkloads(tiny),
      (error) => error instanceof AppError && error.code === 'unprocessable',
    );
  });

  it('refuses a plan whose database connections leave none for web', () => {
    const starved: PlanLimits = { ...planByCode('starter').limits, dbConnections: 15 };
    assert.throws(
      () => sizeWorkloads(starved),
      (error) => error instanceof AppError && /database connections/.test(error.detail),
    );
  });

  it('gives bigger plans more Puma capacity', () => {
    const capacity = PLAN_CATALOG.map(({ limits }) => {
      const { web } = sizeWorkloads(limits);
      return web.replicas * web.workers * web.threads;
    });
    assert.deepEqual(
      [...capacity].sort((a, b) => a - b),
      capacity,
    );
  });
});

describe('renderInstanceSecret', () => {
  it('renders a valid Opaque Secret with sorted, base64-encoded data', () => {
    const secret = renderInstanceSecret({
      namespace: NAMESPACE,
      name: 'mastodon-secrets',
      labels: { 'app.kubernetes.io/part-of': 'woolly' },
      values: { SECRET_KEY_BASE: 'a', DB_PASS: 'b' },
    }) as Json;
    assert.doesNotThrow(() => new Secret(secret).validate());
    assert.equal(secret.type, 'Opaque');
    assert.equal(secret.metadata.namespace, NAMESPACE);
    assert.deepEqual(secret.data, {
      DB_PASS: Buffer.from('b').toString('base64'),
      SECRET_KEY_BASE: Buffer.from('a').toString('base64'),
    });
    assert.equal('stringData' in secret, false);
  });
});

describe('renderBackupObjects', () => {
  const storage = {
    bucket: 'backups',
    endpoint: 'https://s3.example.net',
    region: 'eu-1',
    prefix: 'woolly/',
  };
  const objects = renderBackupObjects({
    instanceId: INSTANCE_ID,
    backupId: '9d1c4b2a-0000-4000-8000-000000000001',
    storage,
    credentials: { accessKeyId: 'AKIA', secretAccessKey: 'secret' },
  });

  it('renders a valid Job and its credentials Secret inside the server’s namespace', () => {
    assert.deepEqual(
      objects.map((object) => `${object.kind}/${object.metadata.name}`),
      ['Secret/backup-credentials', 'Job/backup-9d1c4b2a'],
    );
    for (const object of objects) {
      assert.equal(object.metadata.namespace, NAMESPACE);
      const Model = SCHEMAS[object.kind];
      assert.ok(Model);
      assert.doesNotThrow(() => new Model(object).validate(), object.kind);
    }
  });

  it('dumps with pg_dump as the server’s own database user and uploads to the bucket key', () => {
    const job = find(objects, 'Job', 'backup-9d1c4b2a').spec.template.spec;
    const dump = job.initContainers[0];
    const env = Object.fromEntries(
      dump.env.map((entry: Json) => [
        entry.name,
        entry.valueFrom.configMapKeyRef?.key ?? entry.valueFrom.secretKeyRef.key,
      ]),
    );
    assert.deepEqual(env, {
      PGHOST: 'DB_HOST',
      PGPORT: 'DB_PORT',
      PGDATABASE: 'DB_NAME',
      PGUSER: 'DB_USER',
      PGPASSWORD: 'DB_PASS',
    });
    assert.equal(
      job.containers[0].args[3],
      `s3://backups/woolly/${INSTANCE_ID}/9d1c4b2a-0000-4000-8000-000000000001.dump`,
    );
    for (const container of [...job.initContainers, ...job.containers]) {
      assert.equal(container.securityContext.runAsNonRoot, true);
      assert.equal(container.securityContext.readOnlyRootFilesystem, true);
    }
    assert.equal(job.securityContext.seccompProfile.type, 'RuntimeDefault');
  });
});
