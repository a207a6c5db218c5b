/**
 * The foundation's slice, end to end, against the real `woolly start` process and a real
 * PostgreSQL: ops credentials at first start → bearer token → POST /v1/orders → Order and
 * Instance in one transaction → instance:reconcile job → manifests on the dry-run target →
 * provisioning → running (dry-run) → GET /v1/instances/:id with steps and manifests →
 * ledger entry → dashboard page listing the instance in Chromium.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { makeSecretBox } from '../../core/crypto.ts';
import { call } from '../support/app.ts';
import { launchChromium } from '../support/browser.ts';
import { makeTestDatabase, type TestDatabase } from '../support/db.ts';
import { PROVISION_STEPS } from '../support/factories.ts';

const root = path.resolve(import.meta.dirname, '..', '..');
const masterKey = randomBytes(32);
let database: TestDatabase;
let dataDir: string;
let woolly: ChildProcess;
let stdout = '';
let stderr = '';
let baseUrl: string;
let opsToken: string;

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${what}\nstdout:\n${stdout}\nstderr:\n${stderr.slice(-4000)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

before(async () => {
  database = await makeTestDatabase();
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'woolly-e2e-'));
  woolly = spawn(process.execPath, ['--import', 'tsx', 'bin/woolly.ts', 'start'], {
    cwd: root,
    env: {
      PATH: process.env.PATH,
      NODE_ENV: 'test',
      DATABASE_URL: database.url,
      HOST: '127.0.0.1',
      PORT: '0',
      WOOLLY_DATA_DIR: dataDir,
      WOOLLY_MASTER_KEYS: `e2e:${masterKey.toString('base64')}`,
      LOG_LEVEL: 'debug',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  woolly.stdout?.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  woolly.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  baseUrl = await waitFor(
    'the ready line',
    async () => stdout.match(/Woolly is ready at (http:\/\/\S+)/)?.[1],
  );
  opsToken = stdout.match(/API token: (wly_\S+)/)?.[1] ?? '';
});

after(async () => {
  if (woolly.exitCode === null) {
    woolly.kill('SIGTERM');
    await new Promise((resolve) => woolly.once('exit', resolve));
  }
  await database.release();
  await rm(dataDir, { recursive: true, force: true });
});

test('first start prints the ops credentials once, and they work', async () => {
  assert.match(stdout, /email: +ops@woolly\.test/);
  assert.match(stdout, /password: +\S{20,}/);
  assert.match(opsToken, /^wly_[A-Za-z0-9_-]{43}$/);
  const health = await call(`${baseUrl}/healthz`);
  assert.equal(health.status, 200);
  const ready = await call(`${baseUrl}/readyz`);
  assert.deepEqual(ready.body, { status: 'ready' });
  const me = await call(`${baseUrl}/v1/organizations`, { token: opsToken });
  assert.equal(me.status, 200);
});

test('an order becomes a running dry-run server, with every arrow recorded', async () => {
  const org = await call(`${baseUrl}/v1/organizations`, {
    token: opsToken,
    body: { name: 'Chess Club', slug: 'chess-club' },
  });
  assert.equal(org.status, 201);

  const rowsBefore = await database.db.order.count();
  const placed = await call(`${baseUrl}/v1/orders`, {
    token: opsToken,
    body: {
      organizationId: org.body.id,
      plan: 'community',
      domain: 'Chess.Woolly.Test',
      addons: ['object_storage'],
    },
  });
  assert.equal(placed.status, 201, JSON.stringify(placed.body));
  assert.equal(placed.body.status, 'paid');
  assert.equal(await database.db.order.count(), rowsBefore + 1);
  const instanceId = placed.body.instanceId as string;

  // Order and Instance were written together; the Instance never existed without its Order.
  const order = await database.db.order.findUniqueOrThrow({
    where: { id: placed.body.id },
    include: { instance: true },
  });
  assert.equal(order.instance?.domain, 'chess.woolly.test');

  const running = await waitFor('the instance to run', async () => {
    const response = await call(`${baseUrl}/v1/instances/${instanceId}`, { token: opsToken });
    return response.body.status === 'running' ? response.body : undefined;
  });

  assert.equal(running.dryRun, true);
  assert.match(running.statusReason, /dry-run/);
  assert.equal(running.observedGeneration, running.generation);
  assert.deepEqual(
    running.events.map((event: { type: string }) => event.type),
    ['instance.provisioning', 'instance.running'],
  );

  const [operation] = running.operations;
  assert.equal(operation.kind, 'provision');
  assert.equal(operation.status, 'succeeded');
  assert.deepEqual(
    operation.steps.map((step: { name: string }) => step.name),
    PROVISION_STEPS,
  );
  for (const step of operation.steps) {
    assert.ok(Number.isFinite(step.durationMs) && step.durationMs >= 0, `${step.name} has a duration`);
    assert.ok(Date.parse(step.startedAt) <= Date.parse(step.finishedAt));
  }

  const manifests = (await call(`${baseUrl}/v1/instances/${instanceId}/manifests`, { token: opsToken })).body
    .data;
  const manifest = (kind: string, name: string) =>
    manifests.find(
      (object: { kind: string; metadata: { name: string } }) =>
        object.kind === kind && object.metadata.name === name,
    );
  // In apply order: the namespace and its secret first, the pre-deploy migration before the
  // workloads, the post-deploy migration after them, the owner's account last.
  const applyOrder: string[] = manifests.map(
    (object: { kind: string; metadata: { name: string } }) => `${object.kind}/${object.metadata.name}`,
  );
  assert.deepEqual(
    applyOrder.slice(0, 2).map((entry) => entry.split('/')[0]),
    ['Namespace', 'Secret'],
  );
  const at = (prefix: string) => {
    const index = applyOrder.findIndex((entry) => entry === prefix || entry.startsWith(`${prefix}-`));
    assert.ok(index >= 0, `${prefix} is listed`);
    return index;
  };
  assert.ok(at('Job/db-migrate') < at('Deployment/web'));
  assert.ok(at('Deployment/sidekiq') < at('Ingress/mastodon'), 'traffic once the workloads run');
  assert.ok(at('Ingress/mastodon') < at('Job/db-post-migrate'));
  assert.equal(at('Job/owner-account'), applyOrder.length - 1);
  for (const name of ['web', 'streaming', 'sidekiq'])
    assert.ok(manifest('Deployment', name), `Deployment ${name}`);
  for (const name of ['web', 'streaming']) assert.ok(manifest('Service', name), `Service ${name}`);
  assert.equal(manifest('ConfigMap', 'mastodon-env').data.LOCAL_DOMAIN, 'chess.woolly.test');
  const ingress = manifests.find((object: { kind: string }) => object.kind === 'Ingress');
  assert.equal(ingress.spec.rules[0].host, 'chess.woolly.test');

  // Billing: the subscription started, once, at the order's monthly price.
  const subscription = await database.db.subscription.findUniqueOrThrow({ where: { instanceId } });
  assert.equal(subscription.status, 'active');
  assert.equal(subscription.priceMinor, 5900 + 500);

  // The job ran once and is gone from the queue.
  const jobs = await database.db.$queryRaw<
    { n: bigint }[]
  >`select count(*) as n from graphile_worker._private_jobs`;
  assert.equal(Number(jobs[0]?.n), 0);

  // Secrets: sealed in the database, shown nowhere.
  const box = makeSecretBox([{ id: 'e2e', key: masterKey }]);
  const records = await database.db.secretRecord.findMany({ where: { instanceId } });
  assert.ok(records.length >= 8);
  const body = JSON.stringify([running, manifests]);
  for (const record of records) {
    const value = box.open(record, `instance:${instanceId}:${record.name}`);
    assert.ok(!body.includes(value), `${record.name} is not in the API response`);
    assert.ok(!stderr.includes(value) && !stdout.includes(value), `${record.name} is not logged`);
  }
  assert.ok(!stderr.includes(opsToken), 'the ops token is not logged');
});

test('bad input on the running process changes nothing', async () => {
  const count = () => Promise.all([database.db.order.count(), database.db.instance.count()]);
  const before = await count();
  const malformed = await call(`${baseUrl}/v1/orders`, { token: opsToken, rawBody: '{"plan":' });
  assert.equal(malformed.status, 400);
  const noToken = await call(`${baseUrl}/v1/orders`, { body: { plan: 'starter' } });
  assert.equal(noToken.status, 401);
  const duplicate = await call(`${baseUrl}/v1/orders`, {
    token: opsToken,
    body: {
      organizationId: (await database.db.organization.findFirstOrThrow()).id,
      plan: 'starter',
      domain: 'chess.woolly.test',
    },
  });
  assert.equal(duplicate.status, 409);
  assert.deepEqual(await count(), before);
});

test('the dashboard page lists the instances with their status', async (t) => {
  const browser = await launchChromium(t);
  if (!browser) return;
  try {
    const page = await browser.newPage();
    const password = /password: +(\S{20,})/.exec(stdout)?.[1] ?? '';
    await page.goto(`${baseUrl}/`);
    await page.getByLabel('E-mail').fill('ops@woolly.test');
    await page.getByLabel('Password').fill(password);
    await page.getByRole('button', { name: 'Sign in' }).click();
    const row = page.locator('tbody tr', { hasText: 'chess.woolly.test' });
    await row.waitFor({ timeout: 10_000 });
    assert.match(await row.innerText(), /chess\.woolly\.test\s+running\s+dry-run\s+Community\s+dry-run/);
    const shots = path.join(root, 'test-artifacts');
    await mkdir(shots, { recursive: true });
    await page.screenshot({ path: path.join(shots, 'dashboard-fleet.png'), fullPage: true });
  } finally {
    await browser.close();
  }
});

test('the API reference page renders the served OpenAPI document', async (t) => {
  const document = await call(`${baseUrl}/v1/openapi.json`);
  assert.equal(document.status, 200);
  assert.equal(document.body.openapi, '3.1.0');
  assert.ok(document.body.paths['/v1/orders'].post);
  const browser = await launchChromium(t);
  if (!browser) return;
  try {
    const page = await browser.newPage();
    const failed: string[] = [];
    page.on('requestfailed', (request) => failed.push(request.url()));
    await page.goto(`${baseUrl}/docs`);
    await page.getByText('Order a hosted Mastodon server').first().waitFor({ timeout: 15_000 });
    assert.ok(await page.getByText('/v1/instances/{id}').first().isVisible());
    assert.deepEqual(failed, [], 'the page loads nothing from outside');
    await page.screenshot({ path: path.join(root, 'test-artifacts', 'api-reference.png') });
  } finally {
    await browser.close();
  }
});

test('SIGTERM stops the process cleanly', async () => {
  woolly.kill('SIGTERM');
  const code = await new Promise((resolve) => woolly.once('exit', resolve));
  assert.equal(code, 0);
});
