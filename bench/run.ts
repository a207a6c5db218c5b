/**
 * `npm run bench [-- api]`: throughput and latency of Woolly's API next to a bare express
 * baseline serving the same bytes in the same process, so the figure that matters is the
 * ratio (what auth, validation, PostgreSQL and Prisma cost), not a machine-dependent number.
 * Results go to bench/results/<name>.json. Duration per scenario: BENCH_SECONDS (default 10).
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import autocannon from 'autocannon';
import express from 'express';
import { from as copyFrom } from 'pg-copy-streams';
import { makeApp } from '../api/app.ts';
import { listen } from '../api/server.ts';
import { aggregateUsage, bucketOf, recordUsage, type UsageSample, usageKeyOf } from '../billing/metering.ts';
import { loadConfig } from '../core/config.ts';
import { makeApiToken, makeSecretBox } from '../core/crypto.ts';
import { makePool, makePrisma, migrate, startEmbeddedPostgres } from '../core/db.ts';
import { makeLogger } from '../core/log.ts';
import { seedCatalog } from '../core/seed.ts';
import { registerCluster } from '../provisioner/clusters.ts';
import { resyncFleet } from '../provisioner/drift.ts';
import { enqueueUnsettledReconciles } from '../provisioner/index.ts';
import { namespaceFor } from '../provisioner/manifests/render-instance.ts';
import { reconcileInstance } from '../provisioner/reconciler.ts';
import { INSTANCE_KINDS, kubernetesTargetFor } from '../provisioner/targets/kubernetes.target.ts';
import {
  bindProvisionerRole,
  finishJob,
  finishRollouts,
  installCertificateCrd,
  type KubeApiServer,
  kubeconfigFor,
  kubeRequest,
  kubeSkipReason,
  startKubeApiServer,
} from '../test/support/kube-server.ts';
import { benchDashboard } from './dashboard.ts';

const seconds = Number(process.env.BENCH_SECONDS ?? 10);
const connections = 10;
const root = path.resolve(import.meta.dirname, '..');

type Scenario = {
  connections?: number;
  name: string;
  url: string;
  method?: 'GET' | 'POST';
  headers?: Record<string, string>;
  body?: () => string;
  /** Headers set per request (a fresh Idempotency-Key each time). */
  perRequestHeaders?: () => Record<string, string>;
};
type Result = { name: string; requestsPerSecond: number; p50Ms: number; p99Ms: number; non2xx: number };

async function measure(scenario: Scenario): Promise<Result> {
  const instance = autocannon({
    url: scenario.url,
    method: scenario.method ?? 'GET',
    connections: scenario.connections ?? connections,
    duration: seconds,
    headers: scenario.headers,
    requests:
      scenario.body || scenario.perRequestHeaders
        ? [
            {
              setupRequest: (request) => ({
                ...request,
                body: scenario.body?.(),
                headers: { ...request.headers, ...scenario.perRequestHeaders?.() },
              }),
            },
          ]
        : undefined,
  });
  const result = await instance;
  return {
    name: scenario.name,
    requestsPerSecond: Math.round(result.requests.average),
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    non2xx: result.non2xx,
  };
}

/**
 * autocannon stops by closing its sockets; handlers of requests in flight then still finish
 * their transactions. Wait for those before disconnecting, so no connection is cut mid-way.
 */
async function drain(db: ReturnType<typeof makePrisma>): Promise<void> {
  for (let waited = 0; waited < 10_000; waited += 100) {
    const [busy] = await db.$queryRaw<{ n: bigint }[]>`
      select count(*) as n from pg_stat_activity
       where datname = current_database() and pid <> pg_backend_pid() and state <> 'idle'`;
    if (Number(busy?.n) === 0) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function serve(app: express.Express): Promise<{ url: string; close(): Promise<void> }> {
  const server = listen(app, 0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

async function benchApi(databaseUrl: string): Promise<Record<string, unknown>> {
  const db = makePrisma(databaseUrl);
  await seedCatalog(db);
  const token = makeApiToken();
  const user = await db.user.create({
    data: {
      email: `bench-${Date.now()}@example.test`,
      staffRole: 'admin',
      apiTokens: {
        create: { name: 'bench', prefix: token.prefix, tokenHash: token.hash, scopes: ['admin'] },
      },
    },
  });
  const org = await db.organization.create({
    data: {
      name: 'Bench',
      slug: `bench-${Date.now()}`,
      memberships: { create: { userId: user.id, role: 'owner' } },
    },
  });
  const plan = await db.plan.findUniqueOrThrow({ where: { code: 'starter' } });
  await db.instance.createMany({
    data: Array.from({ length: 1000 }, (_, i) => ({
      organizationId: org.id,
      planId: plan.id,
      domain: `bench-${i}-${Date.now()}.woolly.test`,
      mastodonVersion: 'v4.5.11',
      status: 'running' as const,
      spec: {},
    })),
  });

  // One server provisioned for real onto the dry-run target: its operation with steps and
  // its events, as GET /v1/instances/:id returns them.
  const provisioned = await db.instance.create({
    data: {
      organizationId: org.id,
      planId: plan.id,
      domain: `detail-${Date.now()}.woolly.test`,
      mastodonVersion: 'v4.5.11',
      status: 'provisioning',
      spec: {},
    },
  });
  const config = loadConfig({
    NODE_ENV: 'production',
    DATABASE_URL: databaseUrl,
    WOOLLY_MASTER_KEYS: `b:${Buffer.alloc(32).toString('base64')}`,
    WOOLLY_SESSION_SECRET: 'bench-session-secret-of-at-least-32-characters',
    LOG_LEVEL: 'warn',
    // The bench measures throughput, not the limiter.
    WOOLLY_RATE_LIMIT_PER_MINUTE: '1000000',
    WOOLLY_RATE_LIMIT_ANONYMOUS_PER_MINUTE: '1000000',
  });
  const log = makeLogger(config, new PassThrough().resume());
  await reconcileInstance({ db, box: makeSecretBox(config.masterKeys), log }, provisioned.id);

  const pool = makePool(databaseUrl);
  const woolly = await serve(makeApp({ db, pool, config, log }));
  const auth = { authorization: `Bearer ${token.token}`, 'content-type': 'application/json' };
  const detailUrl = `${woolly.url}/v1/instances/${provisioned.id}`;
  const detailBody = await (await fetch(detailUrl, { headers: auth })).text();

  const bare = express();
  bare.get('/hello', (_req, res) => {
    res.json({ hello: 'world' });
  });
  bare.get('/detail', (_req, res) => {
    res.type('application/json').send(detailBody);
  });
  bare.post('/orders', express.json(), (req, res) => {
    res.status(201).json({ ...req.body, id: crypto.randomUUID(), status: 'paid' });
  });
  const baseline = await serve(bare);

  let sequence = 0;
  const orderBody = () =>
    JSON.stringify({
      organizationId: org.id,
      plan: 'starter',
      domain: `o${process.pid}x${sequence++}.woolly.test`,
      addons: [],
    });

  const scenarios: Record<string, Scenario> = {
    hello: { name: 'baseline: bare express "hello"', url: `${baseline.url}/hello` },
    sameBytes: {
      name: 'baseline: bare express, the same bytes as the detail',
      url: `${baseline.url}/detail`,
    },
    detail: { name: 'GET /v1/instances/:id (token)', url: detailUrl, headers: auth },
    detail200: {
      name: 'GET /v1/instances/:id (token), 200 connections',
      url: detailUrl,
      headers: auth,
      connections: 200,
    },
    list: {
      name: 'GET /v1/instances?limit=50 (token, 1,000 instances)',
      url: `${woolly.url}/v1/instances?limit=50`,
      headers: auth,
    },
    echo: {
      name: 'baseline: bare express POST, JSON echo',
      url: `${baseline.url}/orders`,
      method: 'POST',
      headers: auth,
      body: orderBody,
    },
    order: {
      name: 'POST /v1/orders with Idempotency-Key (order + instance + subscription + job)',
      url: `${woolly.url}/v1/orders`,
      method: 'POST',
      headers: auth,
      body: orderBody,
      perRequestHeaders: () => ({ 'idempotency-key': crypto.randomUUID() }),
    },
  };
  const results: Record<string, Result> = {};
  for (const [key, scenario] of Object.entries(scenarios)) {
    results[key] = await measure(scenario);
    console.log(JSON.stringify(results[key]));
  }
  await woolly.close();
  await baseline.close();
  await drain(db);
  await db.$disconnect();
  await pool.end();
  const ratio = (a: string, b: string) =>
    +((results[a]?.requestsPerSecond ?? 0) / (results[b]?.requestsPerSecond ?? 1)).toFixed(3);
  return {
    seconds,
    results,
    ratios: {
      detailVsHello: ratio('detail', 'hello'),
      detailVsSameBytes: ratio('detail', 'sameBytes'),
      listVsHello: ratio('list', 'hello'),
      orderVsEcho: ratio('order', 'echo'),
    },
  };
}

/**
 * The provisioner's own cost: provisioning onto the dry-run target (every step but the
 * cluster's work: rendering, sealing secrets, recording steps, storing ~25 objects), next to
 * a baseline that only writes the same objects in one multi-row insert per server; and a
 * fleet resync over servers that are all settled. Then, when kube-apiserver and etcd are built,
 * the same against the real test API server (`benchKubeFleet`).
 */
async function benchReconcile(databaseUrl: string): Promise<Record<string, unknown>> {
  const db = makePrisma(databaseUrl);
  await seedCatalog(db);
  const pool = makePool(databaseUrl);
  const count = Number(process.env.BENCH_INSTANCES ?? 200);
  const fleet = Number(process.env.BENCH_FLEET ?? 1000);
  const user = await db.user.create({ data: { email: `bench-${Date.now()}@example.test` } });
  const org = await db.organization.create({
    data: {
      name: 'Bench',
      slug: `bench-r-${Date.now()}`,
      memberships: { create: { userId: user.id, role: 'owner' } },
    },
  });
  const plan = await db.plan.findUniqueOrThrow({ where: { code: 'community' } });
  const make = (prefix: string, n: number, status: 'provisioning' | 'running') =>
    db.instance.createManyAndReturn({
      data: Array.from({ length: n }, (_, i) => ({
        organizationId: org.id,
        planId: plan.id,
        domain: `${prefix}-${i}-${Date.now()}.woolly.test`,
        mastodonVersion: 'v4.5.11',
        status,
        spec: {},
        observedGeneration: status === 'running' ? 1 : 0,
      })),
      select: { id: true },
    });
  const config = loadConfig({
    WOOLLY_MASTER_KEYS: `b:${Buffer.alloc(32).toString('base64')}`,
    LOG_LEVEL: 'warn',
  });
  const deps = {
    db,
    box: makeSecretBox(config.masterKeys),
    log: makeLogger(config, new PassThrough().resume()),
  };

  const measureEach = async (ids: { id: string }[], work: (id: string) => Promise<unknown>) => {
    const cpu = process.cpuUsage();
    const started = performance.now();
    for (const { id } of ids) await work(id);
    const used = process.cpuUsage(cpu);
    return {
      servers: ids.length,
      wallMsPerServer: +((performance.now() - started) / ids.length).toFixed(2),
      cpuMsPerServer: +((used.user + used.system) / 1000 / ids.length).toFixed(2),
    };
  };

  const provisioned = await measureEach(await make('r', count, 'provisioning'), (id) =>
    reconcileInstance(deps, id),
  );
  const objects = await db.dryRunObject.count();
  const manifests = (
    await db.dryRunObject.findMany({ take: objects / count, select: { manifest: true } })
  ).map((row) => JSON.stringify(row.manifest));
  const baseline = await measureEach(await make('b', count, 'running'), (id) =>
    pool.query(
      `insert into "DryRunObject" (id, "instanceId", "apiVersion", kind, name, manifest, generation)
       select gen_random_uuid(), $1::uuid, 'v1', 'ConfigMap', 'o' || n, m::jsonb, 1
         from unnest($2::text[]) with ordinality as t(m, n)`,
      [id, manifests],
    ),
  );

  await make('settled', fleet, 'running');
  const resyncStarted = performance.now();
  const queued = await enqueueUnsettledReconciles(db);
  const resyncMs = performance.now() - resyncStarted;
  const settled = await db.instance.findMany({
    where: { status: 'running' },
    select: { id: true },
    take: fleet,
  });
  const noop = await measureEach(settled, (id) => reconcileInstance(deps, id));
  const dryRun = {
    provision: { ...provisioned, objectsPerServer: objects / count },
    baselineInsertSameObjects: baseline,
    resync: { fleet: settled.length, queued, msToFindUnsettled: +resyncMs.toFixed(1), noopReconcile: noop },
  };
  console.log(JSON.stringify(dryRun, null, 2));

  const skip = kubeSkipReason();
  let kube: Record<string, unknown> = { skipped: skip };
  if (skip) console.log(`bench reconcile: real-cluster part skipped: ${skip}`);
  else kube = await benchKubeFleet({ ...deps, databaseUrl, organizationId: org.id, planId: plan.id });

  await pool.end();
  await db.$disconnect();
  const results = { ...dryRun, kube };
  const kubeResync = kube.resync as { wallMs: number; baselineMs: number } | undefined;
  return {
    results,
    ratios: {
      provisionWallVsBaseline: +(provisioned.wallMsPerServer / baseline.wallMsPerServer).toFixed(1),
      ...(kubeResync ? { kubeResyncVsRawList: +(kubeResync.wallMs / kubeResync.baselineMs).toFixed(2) } : {}),
    },
  };
}

/**
 * The same raw request for every page of every kind Woolly's objects have, across all
 * namespaces, metadata only: what the drift observation fetches, with none of its processing.
 */
async function rawListAll(server: KubeApiServer): Promise<number> {
  const get = (path: string) =>
    new Promise<{ items?: unknown[]; metadata?: { continue?: string } }>((resolve, reject) => {
      https
        .get(
          `${server.url}${path}`,
          {
            ca: server.caCert,
            headers: {
              authorization: `Bearer ${server.adminToken}`,
              accept: 'application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1',
            },
          },
          (response) => {
            let text = '';
            response.setEncoding('utf8');
            response.on('data', (chunk: string) => {
              text += chunk;
            });
            response.on('end', () => resolve(JSON.parse(text)));
          },
        )
        .on('error', reject);
    });
  const plurals: Record<string, string> = {
    Namespace: 'namespaces',
    Secret: 'secrets',
    ResourceQuota: 'resourcequotas',
    LimitRange: 'limitranges',
    ConfigMap: 'configmaps',
    Service: 'services',
    PersistentVolumeClaim: 'persistentvolumeclaims',
    NetworkPolicy: 'networkpolicies',
    Ingress: 'ingresses',
    Deployment: 'deployments',
    CronJob: 'cronjobs',
    PodDisruptionBudget: 'poddisruptionbudgets',
    Certificate: 'certificates',
  };
  let items = 0;
  for (const kind of [{ apiVersion: 'v1', kind: 'Namespace' }, ...INSTANCE_KINDS]) {
    const plural = plurals[kind.kind];
    if (!plural) continue;
    const base = `/${kind.apiVersion.includes('/') ? 'apis' : 'api'}/${kind.apiVersion}/${plural}`;
    let token: string | undefined;
    do {
      const query = new URLSearchParams({ labelSelector: 'app.kubernetes.io/part-of=woolly', limit: '500' });
      if (token) query.set('continue', token);
      const page = await get(`${base}?${query}`);
      items += page.items?.length ?? 0;
      token = page.metadata?.continue || undefined;
    } while (token);
  }
  return items;
}

/**
 * Stand-in for the Job controller and the Deployment controller, which do not run beside the
 * test API server: every Job in the namespace completes and every rollout finishes.
 */
async function playControllers(server: KubeApiServer, namespace: string): Promise<void> {
  const jobs = await kubeRequest(server, 'GET', `/apis/batch/v1/namespaces/${namespace}/jobs`);
  for (const job of jobs.body.items as {
    metadata: { name: string };
    status?: { conditions?: unknown[] };
  }[]) {
    if (!job.status?.conditions?.length) await finishJob(server, namespace, job.metadata.name, 'Complete');
  }
  await finishRollouts(server, namespace);
}

/**
 * The provisioner against the real test API server (kube-apiserver and etcd, in their own
 * processes on the same 2 cores): a fleet of BENCH_KUBE_FLEET servers provisioned through
 * `reconcileInstance`, BENCH_KUBE_CONCURRENCY at a time, each with its real role and database
 * on the bench's PostgreSQL, the controllers played between passes; then a full no-op resync
 * over the fleet (drift observation and the database pass) next to a raw list of the same objects.
 */
async function benchKubeFleet(input: {
  db: ReturnType<typeof makePrisma>;
  box: ReturnType<typeof makeSecretBox>;
  log: ReturnType<typeof makeLogger>;
  databaseUrl: string;
  organizationId: string;
  planId: string;
}): Promise<Record<string, unknown>> {
  const { db } = input;
  // 80 by default, not the 1,000, which takes many minutes on this 2-core machine
  // (README); BENCH_KUBE_FLEET=1000 works (the test API server's Service range fits 1,365).
  const fleet = Number(process.env.BENCH_KUBE_FLEET ?? 80);
  const concurrency = Number(process.env.BENCH_KUBE_CONCURRENCY ?? 4);
  const provisioner = 'woolly-provisioner';
  const server = await startKubeApiServer({ users: [{ name: provisioner }] });
  try {
    await installCertificateCrd(server);
    await bindProvisionerRole(server, provisioner);
    const kubeconfig = kubeconfigFor(server, provisioner);
    await registerCluster(db, input.box, {
      name: 'bench-apiserver',
      region: 'local',
      capacity: fleet,
      kubeconfig,
      databaseAdminUrl: input.databaseUrl,
    });
    const created = await db.instance.createManyAndReturn({
      data: Array.from({ length: fleet }, (_, i) => ({
        organizationId: input.organizationId,
        planId: input.planId,
        domain: `kube-${i}-${Date.now()}.woolly.test`,
        mastodonVersion: 'v4.5.11',
        status: 'provisioning' as const,
        spec: {},
      })),
      select: { id: true },
    });

    // Objects counted as the target applies them (a Job waited on is applied again each pass).
    let applied = 0;
    const deps = {
      db,
      box: input.box,
      log: input.log,
      // The cluster's one client, as `connect` uses it, only counting what it applies.
      targetFor: () => {
        const target = kubernetesTargetFor(kubeconfig);
        return {
          ...target,
          apply: async (...args: Parameters<typeof target.apply>) => {
            const result = await target.apply(...args);
            applied += result.applied;
            return result;
          },
        };
      },
    };

    let pending = created.map((row) => row.id);
    let passes = 0;
    let reconcileMs = 0;
    let controllersMs = 0;
    let cpuMicros = 0;
    const started = performance.now();
    while (pending.length > 0) {
      passes++;
      if (passes > 10) throw new Error(`${pending.length} servers not running after 10 passes`);
      const waiting: string[] = [];
      const queue = [...pending];
      const cpu = process.cpuUsage();
      const passStarted = performance.now();
      await Promise.all(
        Array.from({ length: concurrency }, async () => {
          for (let id = queue.shift(); id; id = queue.shift()) {
            if ((await reconcileInstance(deps, id)).state === 'waiting') waiting.push(id);
          }
        }),
      );
      reconcileMs += performance.now() - passStarted;
      const used = process.cpuUsage(cpu);
      cpuMicros += used.user + used.system;
      const playStarted = performance.now();
      const toPlay = [...waiting];
      await Promise.all(
        Array.from({ length: concurrency }, async () => {
          for (let id = toPlay.shift(); id; id = toPlay.shift())
            await playControllers(server, namespaceFor(id));
        }),
      );
      controllersMs += performance.now() - playStarted;
      console.log(
        `bench reconcile: pass ${passes}: ${pending.length - waiting.length} of ${pending.length} running, ${((performance.now() - started) / 1000).toFixed(0)} s`,
      );
      pending = waiting;
    }
    const provisionMs = performance.now() - started;
    const running = await db.instance.count({
      where: { status: 'running', cluster: { name: 'bench-apiserver' } },
    });

    // A full no-op resync: every server observed on the cluster, none drifted.
    const resyncDeps = { db, box: input.box, log: input.log };
    const cpu = process.cpuUsage();
    const resyncStarted = performance.now();
    const report = await resyncFleet(resyncDeps);
    const resyncMs = performance.now() - resyncStarted;
    const resyncCpu = process.cpuUsage(cpu);
    if (report.drifted !== 0 || report.observed !== fleet)
      throw new Error(`a no-op resync found drift: ${JSON.stringify(report)}`);
    const baselineStarted = performance.now();
    const listed = await rawListAll(server);
    const baselineMs = performance.now() - baselineStarted;
    const observeStarted = performance.now();
    await kubernetesTargetFor(kubeconfig).observe(new Set(created.map((row) => row.id)));
    const observeMs = performance.now() - observeStarted;

    const kube = {
      fleet,
      concurrency,
      running,
      passes,
      objectsApplied: applied,
      provision: {
        wallSeconds: +(provisionMs / 1000).toFixed(1),
        reconcileSeconds: +(reconcileMs / 1000).toFixed(1),
        controllersSeconds: +(controllersMs / 1000).toFixed(1),
        objectsAppliedPerSecond: Math.round(applied / (reconcileMs / 1000)),
        cpuMsPerProvisioning: +(cpuMicros / 1000 / fleet).toFixed(1),
      },
      resync: {
        report,
        wallMs: Math.round(resyncMs),
        cpuMs: Math.round((resyncCpu.user + resyncCpu.system) / 1000),
        observeOnlyMs: Math.round(observeMs),
        baselineMs: Math.round(baselineMs),
        baselineObjects: listed,
      },
    };
    console.log(JSON.stringify(kube, null, 2));
    return kube;
  } finally {
    await server.release();
  }
}

/**
 * The usage ledger: a day of samples for BENCH_METERED_INSTANCES servers (default 10,000):
 * hourly storage, and one active-users sample each, written by `recordUsage` (batched, keyed,
 * duplicates skipped), then the period aggregated; next to a raw COPY of the same rows into a
 * table of the same shape and indexes, in the same PostgreSQL.
 */
async function benchMetering(databaseUrl: string): Promise<Record<string, unknown>> {
  const db = makePrisma(databaseUrl);
  await seedCatalog(db);
  const pool = makePool(databaseUrl);
  const count = Number(process.env.BENCH_METERED_INSTANCES ?? 10_000);
  try {
    const user = await db.user.create({ data: { email: `bench-m-${Date.now()}@example.test` } });
    const org = await db.organization.create({ data: { name: 'Bench', slug: `bench-m-${Date.now()}` } });
    await db.membership.create({ data: { organizationId: org.id, userId: user.id, role: 'owner' } });
    const plan = await db.plan.findUniqueOrThrow({ where: { code: 'community' } });
    const ids: string[] = [];
    for (let start = 0; start < count; start += 1000) {
      const made = await db.instance.createManyAndReturn({
        data: Array.from({ length: Math.min(1000, count - start) }, (_, i) => ({
          organizationId: org.id,
          planId: plan.id,
          domain: `m-${start + i}.woolly.test`,
          mastodonVersion: 'v4.5.11',
          status: 'running' as const,
          spec: {},
        })),
        select: { id: true },
      });
      ids.push(...made.map((instance) => instance.id));
    }
    const now = Date.now();
    const day = bucketOf('active_users', new Date(now - 86_400_000));
    const samples: UsageSample[] = ids.flatMap((instanceId, n) => [
      ...Array.from({ length: 24 }, (_, h) => ({
        instanceId,
        meter: 'storage_gb_hours' as const,
        quantity: (n % 50) + h,
        bucket: new Date(day.getTime() + h * 3_600_000),
      })),
      { instanceId, meter: 'active_users' as const, quantity: n % 500, bucket: day },
    ]);

    // Baseline: the same rows, COPY'd into a table with the ledger's columns and indexes.
    await pool.query('create table "UsageEventCopy" (like "UsageEvent" including all)');
    const copyStarted = performance.now();
    const client = await pool.connect();
    try {
      const stream = client.query(
        copyFrom(
          'copy "UsageEventCopy" ("instanceId", meter, quantity, "occurredAt", "idempotencyKey") from stdin',
        ),
      );
      const lines = (function* () {
        for (let start = 0; start < samples.length; start += 10_000) {
          yield samples
            .slice(start, start + 10_000)
            .map(
              (s) =>
                `${s.instanceId}\t${s.meter}\t${s.quantity}\t${s.bucket.toISOString()}\t${usageKeyOf(s)}\n`,
            )
            .join('');
        }
      })();
      await pipeline(Readable.from(lines), stream);
    } finally {
      client.release();
    }
    const copyMs = performance.now() - copyStarted;

    const cpu = process.cpuUsage();
    const started = performance.now();
    const { recorded } = await recordUsage(pool, samples, now);
    const ingestMs = performance.now() - started;
    const ingestCpu = process.cpuUsage(cpu);
    const retried = performance.now();
    const again = await recordUsage(pool, samples.slice(0, 50_000), now);
    const retryMs = performance.now() - retried;
    const aggregated = performance.now();
    const { aggregates } = await aggregateUsage(pool, {
      start: day,
      end: new Date(day.getTime() + 86_400_000),
    });
    const aggregateMs = performance.now() - aggregated;
    if (recorded !== samples.length || again.recorded !== 0 || aggregates !== count * 2) {
      throw new Error(
        `metering bench: recorded ${recorded}, retried ${again.recorded}, aggregates ${aggregates}`,
      );
    }
    const perSecond = (rows: number, ms: number) => Math.round(rows / (ms / 1000));
    const result = {
      instances: count,
      samples: samples.length,
      recordUsage: {
        samplesPerSecond: perSecond(samples.length, ingestMs),
        ms: Math.round(ingestMs),
        cpuMs: Math.round((ingestCpu.user + ingestCpu.system) / 1000),
      },
      retryOfDuplicates: { samples: 50_000, samplesPerSecond: perSecond(50_000, retryMs) },
      aggregate: { aggregates, ms: Math.round(aggregateMs) },
      baselineCopy: { samplesPerSecond: perSecond(samples.length, copyMs), ms: Math.round(copyMs) },
      ratios: { recordUsageVsCopy: Number((copyMs / ingestMs).toFixed(2)) },
    };
    console.log(JSON.stringify(result, null, 2));
    return result;
  } finally {
    await pool.end();
    await db.$disconnect();
  }
}

const benches: Record<string, (databaseUrl: string) => Promise<Record<string, unknown>>> = {
  api: benchApi,
  reconcile: benchReconcile,
  metering: benchMetering,
  dashboard: benchDashboard,
};
const names = process.argv.slice(2).length > 0 ? process.argv.slice(2) : Object.keys(benches);
const unknown = names.filter((name) => !benches[name]);
if (unknown.length > 0) {
  console.error(`bench: unknown benchmark ${unknown.join(', ')}; known: ${Object.keys(benches).join(', ')}`);
  process.exit(2);
}

const dir = await mkdtemp(path.join(os.tmpdir(), 'woolly-bench-'));
const pg = await startEmbeddedPostgres({
  dir,
  port: 54390 + Math.floor(Math.random() * 500),
  database: 'woolly_bench',
});
try {
  await migrate(pg.url);
  await mkdir(path.join(root, 'bench', 'results'), { recursive: true });
  for (const name of names) {
    const result: Record<string, unknown> = {
      name,
      at: new Date().toISOString(),
      node: process.version,
      cpus: os.availableParallelism(),
      ...(await benches[name]?.(pg.url)),
    };
    await writeFile(
      path.join(root, 'bench', 'results', `${name}.json`),
      `${JSON.stringify(result, null, 2)}\n`,
    );
    console.log(`bench ${name}:`, JSON.stringify(result.ratios));
  }
} finally {
  await pg.release();
  await rm(dir, { recursive: true, force: true });
}
