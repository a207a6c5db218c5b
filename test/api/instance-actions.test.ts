/**
 * Changing a server over HTTP against a real PostgreSQL: plan changes and upgrades behind
 * If-Match, add-ons, suspend and resume, delete with a grace period and its undo, backups,
 * operations. The reconciler runs here as the worker would run it, onto the dry-run target,
 * so each change is followed through to the objects it renders.
 */
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { makeMasterKey, makeSecretBox } from '../../core/crypto.ts';
import { makeLogger } from '../../core/log.ts';
import { backupInstance, purgeInstance, reconcileInstance } from '../../provisioner/reconciler.ts';
import { call, startTestApp, type TestApp } from '../support/app.ts';
import { makeTestDatabase, type TestDatabase } from '../support/db.ts';
import { createOrganization, createUserWithToken, PROVISION_STEPS } from '../support/factories.ts';

let database: TestDatabase;
let app: TestApp;
let staff: string;
let owner: { userId: string; token: string };
let viewer: string;
let outsider: string;
let organizationId: string;
const box = makeSecretBox([makeMasterKey('test')]);
const log = makeLogger({ log: { level: 'error', format: 'json' } }, new PassThrough());
const reconcilerDeps = () => ({ db: database.db, box, log });

before(async () => {
  database = await makeTestDatabase();
  app = await startTestApp(database);
  staff = (await createUserWithToken(database.db, { staffRole: 'ops' })).token;
  owner = await createUserWithToken(database.db);
  organizationId = await createOrganization(database.db, owner.userId, 'owner');
  const viewerUser = await createUserWithToken(database.db);
  await database.db.membership.create({
    data: { organizationId, userId: viewerUser.userId, role: 'viewer' },
  });
  viewer = viewerUser.token;
  const stranger = await createUserWithToken(database.db);
  await createOrganization(database.db, stranger.userId);
  outsider = stranger.token;
});

after(async () => {
  await app.release();
  await database.release();
});

let serial = 0;
/** A server of the organization, ordered by staff (paid at once) and reconciled to running. */
async function runningInstance(plan = 'community', addons: string[] = []): Promise<string> {
  serial += 1;
  const placed = await call(`${app.url}/v1/orders`, {
    token: staff,
    body: { organizationId, plan, domain: `act-${serial}-${Date.now()}.woolly.test`, addons },
  });
  assert.equal(placed.status, 201, JSON.stringify(placed.body));
  await reconcileInstance(reconcilerDeps(), placed.body.instanceId);
  return placed.body.instanceId;
}

const get = (id: string, token = owner.token) => call(`${app.url}/v1/instances/${id}`, { token });

async function manifests(id: string) {
  const response = await call(`${app.url}/v1/instances/${id}/manifests`, { token: owner.token });
  assert.equal(response.status, 200);
  return response.body.data as { kind: string; metadata: { name: string }; spec?: { replicas?: number } }[];
}

const deployments = async (id: string) =>
  Object.fromEntries(
    (await manifests(id))
      .filter((object) => object.kind === 'Deployment')
      .map((object) => [object.metadata.name, object.spec?.replicas]),
  );

/** Every workload at zero replicas, and the maintenance page up in their place. */
const scaledToZero = (replicas: Record<string, number | undefined>) =>
  Object.entries(replicas).every(([name, count]) => count === (name === 'maintenance' ? 1 : 0)) &&
  replicas.maintenance === 1;

/** Every table a refused change could touch, in one string. */
async function snapshot(instanceId: string): Promise<string> {
  const { db } = database;
  return JSON.stringify([
    await db.instance.findUniqueOrThrow({ where: { id: instanceId } }),
    await db.instanceAddon.count({ where: { instanceId } }),
    await db.operation.count({ where: { instanceId } }),
    await db.event.count({ where: { instanceId } }),
    await db.backup.count({ where: { instanceId } }),
    await db.auditLog.count(),
  ]);
}

describe('If-Match on the generation', () => {
  test('GET gives the generation as a strong ETag', async () => {
    const id = await runningInstance();
    const response = await get(id);
    assert.equal(response.headers.get('etag'), `"${response.body.generation}"`);
    assert.equal(response.body.status, 'running');
    assert.equal(response.body.deleteAfter, null);
  });

  test('a change without If-Match is refused with 428, a stale one with 412, and neither writes', async () => {
    const id = await runningInstance();
    const before = await snapshot(id);
    const missing = await call(`${app.url}/v1/instances/${id}`, {
      method: 'PATCH',
      token: owner.token,
      body: { plan: 'large' },
    });
    assert.equal(missing.status, 428);
    assert.match(missing.body.detail, /If-Match: "1"/);
    const stale = await call(`${app.url}/v1/instances/${id}`, {
      method: 'PATCH',
      token: owner.token,
      headers: { 'if-match': '"7"' },
      body: { plan: 'large' },
    });
    assert.equal(stale.status, 412);
    assert.equal(stale.body.type, 'https://woolly.dev/problems/precondition-failed');
    const malformed = await call(`${app.url}/v1/instances/${id}`, {
      method: 'PATCH',
      token: owner.token,
      headers: { 'if-match': 'W/"1"' },
      body: { plan: 'large' },
    });
    assert.equal(malformed.status, 400);
    assert.equal(await snapshot(id), before);
  });

  test('of five concurrent changes sent with the same ETag exactly one wins; the rest get 412', async () => {
    const id = await runningInstance('starter');
    const { headers } = await get(id);
    const etag = headers.get('etag') as string;
    const plans = ['community', 'large', 'community', 'large', 'community'];
    const responses = await Promise.all(
      plans.map((plan) =>
        call(`${app.url}/v1/instances/${id}`, {
          method: 'PATCH',
          token: owner.token,
          headers: { 'if-match': etag },
          body: { plan },
        }),
      ),
    );
    const statuses = responses.map((response) => response.status).sort();
    assert.deepEqual(statuses, [202, 412, 412, 412, 412]);
    const after = await get(id);
    assert.equal(after.body.generation, 2);
    assert.equal(await database.db.operation.count({ where: { instanceId: id, kind: 'resize' } }), 1);
  });
});

describe('plan changes and upgrades', () => {
  test('a plan change resizes the workloads once the reconciler has run', async () => {
    const id = await runningInstance('starter');
    assert.equal((await deployments(id)).web, 1);
    const changed = await call(`${app.url}/v1/instances/${id}`, {
      method: 'PATCH',
      token: owner.token,
      headers: { 'if-match': '"1"' },
      body: { plan: 'large' },
    });
    assert.equal(changed.status, 202, JSON.stringify(changed.body));
    assert.equal(changed.headers.get('etag'), '"2"');
    assert.equal(changed.body.status, 'updating');
    assert.equal(changed.body.plan.code, 'large');
    assert.equal(changed.body.observedGeneration, 1, 'not yet applied');
    const operation = changed.body.operations.at(-1);
    assert.deepEqual([operation.kind, operation.status, operation.generation], ['resize', 'running', 2]);

    await reconcileInstance(reconcilerDeps(), id);
    const done = await get(id);
    assert.equal(done.body.status, 'running');
    assert.equal(done.body.observedGeneration, 2);
    assert.equal(done.body.operations.at(-1).status, 'succeeded');
    assert.equal((await deployments(id)).web, 3);
    const audit = await database.db.auditLog.findFirstOrThrow({
      where: { action: 'instance.update', targetId: id },
    });
    assert.deepEqual(audit.data, { plan: 'large' });
    assert.equal(audit.actorUserId, owner.userId);
  });

  test('an upgrade rolls the images to the new tag; downgrades and no-ops are refused', async () => {
    const id = await runningInstance();
    const patch = (mastodonVersion: string, generation: number) =>
      call(`${app.url}/v1/instances/${id}`, {
        method: 'PATCH',
        token: owner.token,
        headers: { 'if-match': `"${generation}"` },
        body: { mastodonVersion },
      });
    const before = await snapshot(id);
    const downgrade = await patch('v4.4.9', 1);
    assert.equal(downgrade.status, 422);
    assert.match(downgrade.body.detail, /only run forward/);
    assert.equal((await patch('v4.5.11', 1)).status, 422, 'the same version changes nothing');
    assert.equal(await snapshot(id), before);

    const upgraded = await patch('v4.5.12', 1);
    assert.equal(upgraded.status, 202);
    assert.equal(upgraded.body.operations.at(-1).kind, 'upgrade');
    await reconcileInstance(reconcilerDeps(), id);
    const web = (await manifests(id)).find(
      (object) => object.kind === 'Deployment' && object.metadata.name === 'web',
    );
    assert.match(JSON.stringify(web), /ghcr\.io\/mastodon\/mastodon:v4\.5\.12/);
  });

  test('the domain can never change, and a plan that cannot carry the add-ons is refused', async () => {
    const id = await runningInstance('community', ['elasticsearch']);
    const before = await snapshot(id);
    const domain = await call(`${app.url}/v1/instances/${id}`, {
      method: 'PATCH',
      token: owner.token,
      headers: { 'if-match': '"1"' },
      body: { domain: 'other.woolly.test' },
    });
    assert.equal(domain.status, 400);
    assert.deepEqual(domain.body.errors, [{ field: 'domain', message: 'is not a known field' }]);
    const smaller = await call(`${app.url}/v1/instances/${id}`, {
      method: 'PATCH',
      token: owner.token,
      headers: { 'if-match': '"1"' },
      body: { plan: 'starter' },
    });
    assert.equal(smaller.status, 422);
    assert.match(smaller.body.detail, /cannot carry elasticsearch/);
    assert.equal(await snapshot(id), before);
  });

  test('viewers may look but not change (403); outsiders do not see the server (404)', async () => {
    const id = await runningInstance();
    const before = await snapshot(id);
    const body = { plan: 'large' };
    const headers = { 'if-match': '"1"' };
    assert.equal(
      (await call(`${app.url}/v1/instances/${id}`, { method: 'PATCH', token: viewer, headers, body })).status,
      403,
    );
    assert.equal(
      (await call(`${app.url}/v1/instances/${id}`, { method: 'PATCH', token: outsider, headers, body }))
        .status,
      404,
    );
    assert.equal(
      (await call(`${app.url}/v1/instances/${id}/suspend`, { method: 'POST', token: owner.token })).status,
      403,
    );
    assert.equal(await snapshot(id), before);
  });
});

describe('add-ons', () => {
  test('object storage and search added through the API: their stack is planned on the dry-run target and wired into Mastodon', async () => {
    const id = await runningInstance('community');
    for (const code of ['object_storage', 'elasticsearch']) {
      const added = await call(`${app.url}/v1/instances/${id}/addons`, {
        token: owner.token,
        body: { code },
      });
      assert.equal(added.status, 202, JSON.stringify(added.body));
    }
    assert.equal(
      (await call(`${app.url}/v1/instances/${id}/addon-stack`, { token: owner.token })).body.state,
      'none',
    );
    await reconcileInstance(reconcilerDeps(), id);

    const stack = await call(`${app.url}/v1/instances/${id}/addon-stack`, { token: owner.token });
    assert.equal(stack.status, 200, JSON.stringify(stack.body));
    assert.equal(stack.body.state, 'planned');
    assert.equal(stack.body.stackName, `woolly-addons/instance-${id}`);
    const planned = (stack.body.resources as { type: string; name: string }[]).map(
      (r) => `${r.type} ${r.name}`,
    );
    for (const expected of [
      'kubernetes:apps/v1:StatefulSet object-storage',
      'kubernetes:apps/v1:StatefulSet search',
      'kubernetes:batch/v1:Job object-storage-bucket',
      'kubernetes:networking.k8s.io/v1:NetworkPolicy allow-ingress-to-search',
    ]) {
      assert.ok(planned.includes(expected), `${expected} in ${planned.join(', ')}`);
    }
    const { domain } = (await get(id)).body;
    const namespace = `mastodon-${id.replaceAll('-', '').slice(0, 12)}`;
    assert.deepEqual(stack.body.outputs.objectStorage, {
      bucket: 'mastodon',
      endpoint: `http://object-storage.${namespace}.svc.cluster.local:9000`,
      region: 'us-east-1',
      aliasHost: `${domain}/mastodon`,
      route: { path: '/mastodon/', service: 'object-storage', port: 9000 },
    });
    assert.deepEqual(stack.body.outputs.search, {
      host: `search.${namespace}.svc.cluster.local`,
      port: 9200,
      scheme: 'https',
      user: 'admin',
    });
    const step = await database.db.operationStep.findFirstOrThrow({
      where: { operation: { instanceId: id }, name: 'addons' },
      orderBy: { startedAt: 'desc' },
    });
    assert.match(step.detail ?? '', /^dry-run: stack instance-\S+ would hold 11 resources: /);

    // biome-ignore lint/suspicious/noExplicitAny: the objects are checked field by field below.
    const objects = (await manifests(id)) as any[];
    const find = (kind: string, name: string) =>
      objects.find((object) => object.kind === kind && object.metadata.name.startsWith(name));
    const env = find('ConfigMap', 'mastodon-env').data;
    assert.equal(env.S3_ENABLED, 'true');
    assert.equal(env.S3_BUCKET, 'mastodon');
    assert.equal(env.S3_ALIAS_HOST, `${domain}/mastodon`);
    assert.equal(env.ES_ENABLED, 'true');
    assert.equal(env.ES_HOST, `https://search.${namespace}.svc.cluster.local`);
    assert.deepEqual(
      ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'ES_PASS', 'ES_USER'].filter(
        (key) => !(key in find('Secret', 'mastodon-secrets').data),
      ),
      [],
    );
    assert.equal(find('PersistentVolumeClaim', 'mastodon-system'), undefined, 'media live in the bucket');
    const paths = find('Ingress', 'mastodon').spec.rules[0].http.paths;
    assert.deepEqual(paths.find((path: { path: string }) => path.path === '/mastodon/').backend, {
      service: { name: 'object-storage', port: { number: 9000 } },
    });
    assert.equal(find('ResourceQuota', 'mastodon').spec.hard.persistentvolumeclaims, '2');
    assert.deepEqual(find('Job', 'search-deploy-').spec.template.spec.containers[0].args.slice(0, 3), [
      'bin/tootctl',
      'search',
      'deploy',
    ]);
    // The generated credentials are sealed: nowhere in what the API shows.
    const credentials = await database.db.secretRecord.findFirstOrThrow({
      where: { instanceId: id, name: 'ADDON_CREDENTIALS' },
    });
    const sealed = JSON.parse(box.open(credentials, `instance:${id}:ADDON_CREDENTIALS`)) as Record<
      string,
      string
    >;
    const shown = JSON.stringify([stack.body, objects]);
    for (const value of Object.values(sealed)) assert.ok(!shown.includes(value), 'a credential was shown');

    for (const code of ['object_storage', 'elasticsearch']) {
      const removed = await call(`${app.url}/v1/instances/${id}/addons/${code}`, {
        method: 'DELETE',
        token: owner.token,
      });
      assert.equal(removed.status, 202);
    }
    await reconcileInstance(reconcilerDeps(), id);
    const gone = await call(`${app.url}/v1/instances/${id}/addon-stack`, { token: owner.token });
    assert.deepEqual([gone.body.state, gone.body.resources], ['destroyed', []]);
    // biome-ignore lint/suspicious/noExplicitAny: as above.
    const after = (await manifests(id)) as any[];
    const afterEnv = after.find((object) => object.metadata.name === 'mastodon-env').data;
    assert.equal(afterEnv.S3_ENABLED, undefined);
    assert.equal(afterEnv.ES_ENABLED, undefined);
    assert.ok(
      after.some((object) => object.metadata.name === 'mastodon-system'),
      'media back on the volume',
    );
  });

  test('added and removed through the plan’s allowance, each change reconciled', async () => {
    const id = await runningInstance('starter');
    const add = (code: string) =>
      call(`${app.url}/v1/instances/${id}/addons`, { token: owner.token, body: { code } });
    const before = await snapshot(id);
    const notOnPlan = await add('elasticsearch');
    assert.equal(notOnPlan.status, 422);
    assert.equal(await snapshot(id), before);

    const added = await add('object_storage');
    assert.equal(added.status, 202);
    assert.deepEqual(added.body.addons, ['object_storage']);
    assert.equal((await add('object_storage')).status, 409, 'already there');
    await reconcileInstance(reconcilerDeps(), id);

    const removed = await call(`${app.url}/v1/instances/${id}/addons/object_storage`, {
      method: 'DELETE',
      token: owner.token,
    });
    assert.equal(removed.status, 202);
    assert.deepEqual(removed.body.addons, []);
    const missing = await call(`${app.url}/v1/instances/${id}/addons/object_storage`, {
      method: 'DELETE',
      token: owner.token,
    });
    assert.equal(missing.status, 404);
    await reconcileInstance(reconcilerDeps(), id);
    const done = await get(id);
    assert.deepEqual([done.body.status, done.body.observedGeneration], ['running', 3]);
    const kinds = (
      await database.db.operation.findMany({ where: { instanceId: id }, orderBy: { startedAt: 'asc' } })
    ).map((operation) => operation.kind);
    assert.deepEqual(kinds, ['provision', 'configure', 'configure']);
  });
});

describe('suspend and resume (staff)', () => {
  test('suspending scales every workload to zero and keeps the rest; resuming brings it back', async () => {
    const id = await runningInstance('large');
    const objectsBefore = (await manifests(id)).length;
    const suspended = await call(`${app.url}/v1/instances/${id}/suspend`, {
      token: staff,
      body: { reason: 'abuse report 42' },
    });
    assert.equal(suspended.status, 202, JSON.stringify(suspended.body));
    assert.equal(suspended.body.status, 'updating');
    await reconcileInstance(reconcilerDeps(), id);
    const after = await get(id);
    assert.equal(after.body.status, 'suspended');
    assert.equal(after.body.statusReason, 'suspended: abuse report 42');
    assert.ok(scaledToZero(await deployments(id)));
    assert.equal(
      (await manifests(id)).length,
      objectsBefore - 4 + 3,
      'all but the disruption budget, the migration Jobs (run again on resume) and the owner Job stay, and the maintenance page is added',
    );
    const ingress = (await manifests(id)).find((object) => object.kind === 'Ingress') as unknown as {
      spec: { rules: { http: { paths: { backend: { service: { name: string } } }[] } }[] };
    };
    assert.equal(ingress.spec.rules[0]?.http.paths[0]?.backend.service.name, 'maintenance');
    assert.equal(
      (await call(`${app.url}/v1/instances/${id}/suspend`, { method: 'POST', token: staff })).status,
      409,
    );

    const resumed = await call(`${app.url}/v1/instances/${id}/resume`, { method: 'POST', token: staff });
    assert.equal(resumed.status, 202);
    await reconcileInstance(reconcilerDeps(), id);
    assert.equal((await get(id)).body.status, 'running');
    assert.equal((await deployments(id)).web, 3);
    assert.equal(
      (await call(`${app.url}/v1/instances/${id}/resume`, { method: 'POST', token: staff })).status,
      409,
    );
  });
});

describe('delete with a grace period', () => {
  test('delete stops the server and schedules the purge; restore undoes both', async () => {
    const id = await runningInstance();
    const deleted = await call(`${app.url}/v1/instances/${id}`, { method: 'DELETE', token: owner.token });
    assert.equal(deleted.status, 202);
    assert.equal(deleted.body.status, 'deleting');
    const purgeAt = Date.parse(deleted.body.deleteAfter);
    assert.ok(Math.abs(purgeAt - (Date.now() + 168 * 3_600_000)) < 60_000, 'a week from now by default');
    const jobs = () =>
      database.db.$queryRaw<{ key: string; run_at: Date }[]>`
        select key, run_at from graphile_worker.jobs where key = ${`purge:${id}`}`;
    const [job] = await jobs();
    assert.equal(job?.run_at.getTime(), purgeAt);

    await reconcileInstance(reconcilerDeps(), id);
    const stopped = await get(id);
    assert.equal(stopped.body.status, 'deleting', 'stays deleting while the grace period runs');
    assert.ok(scaledToZero(await deployments(id)));

    const restored = await call(`${app.url}/v1/instances/${id}/restore`, {
      method: 'POST',
      token: owner.token,
    });
    assert.equal(restored.status, 202);
    assert.equal(restored.body.deleteAfter, null);
    assert.deepEqual(await jobs(), []);
    await reconcileInstance(reconcilerDeps(), id);
    assert.equal((await get(id)).body.status, 'running');
    assert.ok(Object.values(await deployments(id)).every((replicas) => (replicas ?? 0) > 0));
  });

  test('after the grace period the purge removes objects and secrets and ends the subscription', async () => {
    const id = await runningInstance();
    assert.equal(
      (await call(`${app.url}/v1/instances/${id}`, { method: 'DELETE', token: owner.token })).status,
      202,
    );
    await reconcileInstance(reconcilerDeps(), id);
    await purgeInstance(reconcilerDeps(), id);
    assert.equal((await get(id)).body.status, 'deleting', 'a purge before its time does nothing');

    await database.db.instance.update({ where: { id }, data: { deleteAfter: new Date(Date.now() - 1000) } });
    const late = await call(`${app.url}/v1/instances/${id}/restore`, { method: 'POST', token: owner.token });
    assert.equal(late.status, 409);
    assert.match(late.body.detail, /grace period is over/);

    await purgeInstance(reconcilerDeps(), id);
    const purged = await get(id);
    assert.equal(purged.body.status, 'deleted');
    assert.deepEqual(
      purged.body.operations.at(-1).steps.map((step: { name: string }) => step.name),
      ['final-backup', 'addons', 'remove-objects', 'database', 'secrets'],
    );
    assert.deepEqual(await manifests(id), []);
    assert.equal(await database.db.secretRecord.count({ where: { instanceId: id } }), 0);
    const subscription = await database.db.subscription.findUniqueOrThrow({ where: { instanceId: id } });
    assert.equal(subscription.status, 'cancelled');

    const again = await call(`${app.url}/v1/instances/${id}`, { method: 'DELETE', token: owner.token });
    assert.equal(again.status, 409);
    const reuse = await call(`${app.url}/v1/orders`, {
      token: staff,
      body: { organizationId, plan: 'starter', domain: purged.body.domain },
    });
    assert.equal(reuse.status, 409, 'a deleted server’s domain is never given out again');
  });
});

describe('backups', () => {
  test('one at a time; on the dry-run target the backup is recorded as skipped', async () => {
    const id = await runningInstance();
    const requested = await call(`${app.url}/v1/instances/${id}/backups`, {
      method: 'POST',
      token: owner.token,
    });
    assert.equal(requested.status, 202);
    assert.equal(requested.body.status, 'pending');
    const second = await call(`${app.url}/v1/instances/${id}/backups`, {
      method: 'POST',
      token: owner.token,
    });
    assert.equal(second.status, 409);
    assert.equal(
      (await call(`${app.url}/v1/instances/${id}/backups`, { method: 'POST', token: viewer })).status,
      403,
    );

    await backupInstance(reconcilerDeps(), id, requested.body.id);
    const list = await call(`${app.url}/v1/instances/${id}/backups`, { token: viewer });
    assert.equal(list.status, 200);
    assert.deepEqual(
      list.body.data.map((backup: { id: string; status: string }) => [backup.id, backup.status]),
      [[requested.body.id, 'skipped']],
    );
    assert.equal((await call(`${app.url}/v1/instances/${id}/backups`, { token: outsider })).status, 404);
  });
});

describe('operations', () => {
  test('listed newest first, a page at a time, and readable one by one', async () => {
    const id = await runningInstance('starter');
    for (const [generation, plan] of [
      [1, 'community'],
      [2, 'large'],
    ] as const) {
      const response = await call(`${app.url}/v1/instances/${id}`, {
        method: 'PATCH',
        token: owner.token,
        headers: { 'if-match': `"${generation}"` },
        body: { plan },
      });
      assert.equal(response.status, 202);
    }
    await reconcileInstance(reconcilerDeps(), id);
    const first = await call(`${app.url}/v1/instances/${id}/operations?limit=2`, { token: viewer });
    assert.equal(first.status, 200);
    assert.deepEqual(
      first.body.data.map((operation: { generation: number }) => operation.generation),
      [3, 2],
    );
    assert.ok(first.body.nextCursor);
    const rest = await call(
      `${app.url}/v1/instances/${id}/operations?limit=2&cursor=${first.body.nextCursor}`,
      {
        token: viewer,
      },
    );
    assert.deepEqual(
      rest.body.data.map((operation: { kind: string }) => operation.kind),
      ['provision'],
    );
    assert.equal(rest.body.nextCursor, null);
    assert.equal(
      first.body.data.every((operation: { status: string }) => operation.status === 'succeeded'),
      true,
      'the reconcile that applied generation 3 also settled the superseded generation 2',
    );

    const one = await call(`${app.url}/v1/operations/${rest.body.data[0].id}`, { token: viewer });
    assert.equal(one.status, 200);
    assert.deepEqual(
      one.body.steps.map((step: { name: string }) => step.name),
      PROVISION_STEPS,
    );
    assert.equal(
      (await call(`${app.url}/v1/operations/${rest.body.data[0].id}`, { token: outsider })).status,
      404,
    );
    assert.equal((await call(`${app.url}/v1/instances/${id}/operations`, { token: outsider })).status, 404);
  });
});

describe('order cancellation', () => {
  test('an unpaid order is cancelled, its instance removed and its domain free again', async () => {
    const domain = `cancel-${Date.now()}.woolly.test`;
    const placed = await call(`${app.url}/v1/orders`, {
      token: owner.token,
      body: { organizationId, plan: 'starter', domain },
    });
    assert.equal(placed.body.status, 'pending_payment');
    assert.equal(
      (await call(`${app.url}/v1/orders/${placed.body.id}/cancel`, { method: 'POST', token: viewer })).status,
      404,
    );
    assert.equal(
      (await call(`${app.url}/v1/orders/${placed.body.id}/cancel`, { method: 'POST', token: outsider }))
        .status,
      404,
    );

    const cancelled = await call(`${app.url}/v1/orders/${placed.body.id}/cancel`, {
      method: 'POST',
      token: owner.token,
    });
    assert.equal(cancelled.status, 200);
    assert.deepEqual(
      [cancelled.body.status, cancelled.body.instanceId, cancelled.body.domain],
      ['cancelled', null, domain],
    );
    assert.equal(await database.db.instance.count({ where: { id: placed.body.instanceId } }), 0);
    const audit = await database.db.auditLog.findFirstOrThrow({
      where: { action: 'order.cancel', targetId: placed.body.id },
    });
    assert.equal(audit.organizationId, organizationId);

    assert.equal(
      (await call(`${app.url}/v1/orders/${placed.body.id}/cancel`, { method: 'POST', token: owner.token }))
        .status,
      409,
    );
    const again = await call(`${app.url}/v1/orders`, {
      token: owner.token,
      body: { organizationId, plan: 'starter', domain },
    });
    assert.equal(again.status, 201, 'the domain of a server that never ran can be ordered again');
  });

  test('a paid order cannot be cancelled: the server is deleted instead', async () => {
    const placed = await call(`${app.url}/v1/orders`, {
      token: staff,
      body: { organizationId, plan: 'starter', domain: `paid-${Date.now()}.woolly.test` },
    });
    const refused = await call(`${app.url}/v1/orders/${placed.body.id}/cancel`, {
      method: 'POST',
      token: owner.token,
    });
    assert.equal(refused.status, 409);
    assert.match(refused.body.detail, /delete the server instead/);
  });
});
