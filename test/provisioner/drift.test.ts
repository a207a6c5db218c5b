/**
 * Drift: the fleet resync compares running servers with what the real test API server holds.
 * Two servers are provisioned to running on it; no controller runs there, so where the Job
 * controller and the Deployment controller would report, the test writes that status itself.
 */
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { makeMasterKey, makeSecretBox } from '../../core/crypto.ts';
import { makeLogger } from '../../core/log.ts';
import { registerCluster } from '../../provisioner/clusters.ts';
import { dropInstanceDatabase } from '../../provisioner/database.ts';
import { resyncFleet } from '../../provisioner/drift.ts';
import { namespaceFor } from '../../provisioner/manifests/render-instance.ts';
import { reconcileInstance } from '../../provisioner/reconciler.ts';
import { makeKubernetesTarget } from '../../provisioner/targets/kubernetes.target.ts';
import { adminUrl, makeTestDatabase, type TestDatabase } from '../support/db.ts';
import { createOrganization, createUserWithToken } from '../support/factories.ts';
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
} from '../support/kube-server.ts';

// Without the binaries, skip locally (naming build.sh); under CI=true, fail.
const skip = kubeSkipReason();

const PROVISIONER = 'woolly-provisioner';
let server: KubeApiServer;
let database: TestDatabase;
const box = makeSecretBox([makeMasterKey('drift')]);
const log = makeLogger({ log: { level: 'error', format: 'json' } }, new PassThrough().resume());
const deps = () => ({ db: database.db, box, log });
/** The resync's deps, listing in pages of 7 so that the continue tokens are followed. */
const resyncDeps = () => ({
  ...deps(),
  targetFor: () => makeKubernetesTarget(kubeconfigFor(server, PROVISIONER), { observePageSize: 7 }),
});
let drifted: string;
let untouched: string;

/** Stand-in for the Job and Deployment controllers: every Job completes, every rollout finishes. */
async function playControllers(namespace: string): Promise<void> {
  const jobs = await kubeRequest(server, 'GET', `/apis/batch/v1/namespaces/${namespace}/jobs`);
  for (const job of jobs.body.items as {
    metadata: { name: string };
    status?: { conditions?: unknown[] };
  }[]) {
    if (!job.status?.conditions?.length) await finishJob(server, namespace, job.metadata.name, 'Complete');
  }
  await finishRollouts(server, namespace);
}

async function provisionToRunning(instanceId: string): Promise<void> {
  for (let pass = 0; pass < 10; pass++) {
    if ((await reconcileInstance(deps(), instanceId)).state === 'done') return;
    await playControllers(namespaceFor(instanceId));
  }
  assert.fail(`instance ${instanceId} not running after 10 passes`);
}

const service = (instanceId: string, name: string) =>
  kubeRequest(server, 'GET', `/api/v1/namespaces/${namespaceFor(instanceId)}/services/${name}`);

/** Every row the resync could write, counted. */
async function rowCounts() {
  const { db } = database;
  const [jobs] = await db.$queryRaw<{ n: bigint }[]>`select count(*) as n from graphile_worker.jobs`;
  return {
    operations: await db.operation.count(),
    steps: await db.operationStep.count(),
    events: await db.event.count(),
    jobs: Number(jobs?.n),
    statuses: (await db.instance.findMany({ select: { id: true, status: true, statusReason: true } })).sort(
      (a, b) => a.id.localeCompare(b.id),
    ),
  };
}

before(
  async () => {
    if (skip) return;
    server = await startKubeApiServer({ users: [{ name: PROVISIONER }] });
    await installCertificateCrd(server);
    await bindProvisionerRole(server, PROVISIONER);
    database = await makeTestDatabase();
    const { db } = database;
    await registerCluster(db, box, {
      name: 'test-apiserver',
      region: 'local',
      capacity: 5,
      kubeconfig: kubeconfigFor(server, PROVISIONER),
      databaseAdminUrl: adminUrl(),
    });
    const { userId } = await createUserWithToken(db);
    const organizationId = await createOrganization(db, userId);
    const plan = await db.plan.findUniqueOrThrow({ where: { code: 'community' } });
    const make = async (domain: string) =>
      (
        await db.instance.create({
          data: {
            organizationId,
            planId: plan.id,
            domain,
            mastodonVersion: 'v4.5.11',
            status: 'provisioning',
            spec: {},
          },
        })
      ).id;
    drifted = await make('drifted.woolly.test');
    untouched = await make('untouched.woolly.test');
    await provisionToRunning(drifted);
    await provisionToRunning(untouched);
  },
  { timeout: 180_000 },
);

after(async () => {
  for (const id of [drifted, untouched]) {
    if (id) await dropInstanceDatabase(adminUrl(), namespaceFor(id).replaceAll('-', '_'));
  }
  await database?.release();
  await server?.release();
});

describe('drift on a real API server', { skip }, () => {
  it('sends a server whose Service was deleted back through the reconciler, and leaves the other alone', async () => {
    const { db } = database;
    const deleted = await kubeRequest(
      server,
      'DELETE',
      `/api/v1/namespaces/${namespaceFor(drifted)}/services/web`,
    );
    assert.equal(deleted.status, 200, JSON.stringify(deleted.body));
    const untouchedBefore = {
      operations: await db.operation.count({ where: { instanceId: untouched } }),
      events: await db.event.count({ where: { instanceId: untouched } }),
    };

    const report = await resyncFleet(resyncDeps());
    assert.deepEqual(report, { queued: 0, observed: 2, drifted: 1, failedClusters: [] });

    const row = await db.instance.findUniqueOrThrow({ where: { id: drifted } });
    assert.equal(row.status, 'updating');
    assert.equal(row.statusReason, 'drift: Service web missing');
    const events = await db.event.findMany({ where: { instanceId: drifted, type: 'instance.drift' } });
    assert.equal(events.length, 1);
    const queued = await db.$queryRaw<{ key: string }[]>`
      select key from graphile_worker.jobs where task_identifier = 'instance:reconcile'`;
    assert.deepEqual(
      queued.map((job) => job.key),
      [drifted],
      'a reconcile is queued for the drifted server only',
    );

    const other = await db.instance.findUniqueOrThrow({ where: { id: untouched } });
    assert.equal(other.status, 'running');
    assert.deepEqual(
      {
        operations: await db.operation.count({ where: { instanceId: untouched } }),
        events: await db.event.count({ where: { instanceId: untouched } }),
      },
      untouchedBefore,
      'no new Operation, no Event',
    );

    // The reconciler applies everything again, as the queued job would.
    assert.deepEqual(await reconcileInstance(deps(), drifted), { state: 'done' });
    assert.equal((await service(drifted, 'web')).status, 200, 'the Service is back');
    const back = await db.instance.findUniqueOrThrow({ where: { id: drifted } });
    assert.equal(back.status, 'running');
    assert.equal(back.statusReason, null);
    assert.equal(back.observedGeneration, row.observedGeneration, 'the same generation, applied again');
  });

  it('changes nothing when nothing drifted', async () => {
    const before = await rowCounts();
    const report = await resyncFleet(resyncDeps());
    assert.deepEqual(report, { queued: 0, observed: 2, drifted: 0, failedClusters: [] });
    assert.deepEqual(await rowCounts(), before);
  });

  it('counts an object put back at an older generation as drift', async () => {
    const patched = await kubeRequest(
      server,
      'PATCH',
      `/api/v1/namespaces/${namespaceFor(untouched)}/configmaps/mastodon-env`,
      { metadata: { annotations: { 'woolly.dev/generation': '0' } } },
      'application/merge-patch+json',
    );
    assert.equal(patched.status, 200, JSON.stringify(patched.body));
    const report = await resyncFleet(resyncDeps());
    assert.equal(report.drifted, 1);
    const row = await database.db.instance.findUniqueOrThrow({ where: { id: untouched } });
    assert.equal(row.status, 'updating');
    assert.equal(row.statusReason, 'drift: ConfigMap mastodon-env at generation 0, not 1');
  });
});
