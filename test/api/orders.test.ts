import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { call, startTestApp, type TestApp } from '../support/app.ts';
import { makeTestDatabase, type TestDatabase } from '../support/db.ts';
import { createOrganization, createUserWithToken } from '../support/factories.ts';

let database: TestDatabase;
let app: TestApp;
let staff: { userId: string; token: string };
let customer: { userId: string; token: string };
let customerOrg: string;

before(async () => {
  database = await makeTestDatabase();
  app = await startTestApp(database);
  staff = await createUserWithToken(database.db, { staffRole: 'admin' });
  customer = await createUserWithToken(database.db);
  customerOrg = await createOrganization(database.db, customer.userId, 'owner');
});

after(async () => {
  await app.release();
  await database.release();
});

/** Rows an order writes; a refused order must leave every count as it was. */
async function counts() {
  const db = database.db;
  const [orders, instances, addons, subscriptions, usage, audit, jobs] = await Promise.all([
    db.order.count(),
    db.instance.count(),
    db.instanceAddon.count(),
    db.subscription.count(),
    db.usageEvent.count(),
    db.auditLog.count(),
    db.$queryRaw<{ n: bigint }[]>`select count(*) as n from graphile_worker.jobs`.then((rows) =>
      Number(rows[0]?.n),
    ),
  ]);
  return { orders, instances, addons, subscriptions, usage, audit, jobs };
}

const order = (overrides: Record<string, unknown> = {}) => ({
  organizationId: customerOrg,
  plan: 'starter',
  domain: `c${Date.now().toString(36)}${Math.floor(Math.random() * 1e6)}.woolly.test`,
  addons: [],
  ...overrides,
});

describe('POST /v1/orders refuses bad input with problem+json and writes nothing', () => {
  const cases: [string, () => Parameters<typeof call>[1], number, string][] = [
    [
      'malformed JSON',
      () => ({ token: customer.token, rawBody: '{"plan": "starter",' }),
      400,
      'malformed_json',
    ],
    [
      'a body that is not JSON',
      () => ({
        token: customer.token,
        rawBody: 'plan=starter',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
      }),
      415,
      'unsupported_media_type',
    ],
    [
      'an unknown plan',
      () => ({ token: customer.token, body: order({ plan: 'gigantic' }) }),
      422,
      'unprocessable',
    ],
    [
      'an add-on the plan cannot carry',
      () => ({ token: customer.token, body: order({ addons: ['elasticsearch'] }) }),
      422,
      'unprocessable',
    ],
    [
      'a region no cluster runs in',
      () => ({ token: customer.token, body: order({ region: 'mars-1' }) }),
      422,
      'unprocessable',
    ],
    [
      'a region that is not a region name',
      () => ({ token: customer.token, body: order({ region: 'EU Central' }) }),
      400,
      'validation_failed',
    ],
    [
      'an unknown add-on',
      () => ({ token: customer.token, body: order({ addons: ['bitcoin_miner'] }) }),
      422,
      'unprocessable',
    ],
    [
      'an invalid domain',
      () => ({ token: customer.token, body: order({ domain: '-bad-.woolly.test' }) }),
      400,
      'validation_failed',
    ],
    [
      'a domain outside the base domain that the organization has not verified',
      () => ({ token: customer.token, body: order({ domain: 'chess.example.org' }) }),
      422,
      'unprocessable',
    ],
    [
      'a reserved name',
      () => ({ token: customer.token, body: order({ domain: 'www.woolly.test' }) }),
      400,
      'validation_failed',
    ],
    [
      'a missing field',
      () => ({ token: customer.token, body: { plan: 'starter', domain: 'x.woolly.test' } }),
      400,
      'validation_failed',
    ],
    [
      'an unknown field',
      () => ({ token: customer.token, body: order({ status: 'running' }) }),
      400,
      'validation_failed',
    ],
    ['no token', () => ({ body: order() }), 401, 'unauthenticated'],
    ['an invalid token', () => ({ token: 'wly_not-a-real-token', body: order() }), 401, 'unauthenticated'],
    ['a read-only token', () => ({ token: readOnly.token, body: order() }), 403, 'forbidden'],
    ['a foreign organization', () => ({ token: outsider.token, body: order() }), 404, 'not_found'],
  ];
  let readOnly: { token: string };
  let outsider: { token: string };
  before(async () => {
    readOnly = await createUserWithToken(database.db, { scopes: ['instances:read'] });
    outsider = await createUserWithToken(database.db);
  });

  for (const [name, request, status, code] of cases) {
    test(`${name} → ${status} ${code}`, async () => {
      const before = await counts();
      const response = await call(`${app.url}/v1/orders`, { method: 'POST', ...request() });
      assert.equal(response.status, status);
      assert.match(response.headers.get('content-type') ?? '', /^application\/problem\+json/);
      assert.equal(response.body.code, code);
      assert.equal(response.body.status, status);
      assert.equal(response.body.type, `https://woolly.dev/problems/${code.replaceAll('_', '-')}`);
      assert.equal(typeof response.body.detail, 'string');
      assert.equal(response.body.requestId, response.headers.get('x-request-id'));
      assert.deepEqual(await counts(), before);
    });
  }

  test('field errors name the offending fields', async () => {
    const response = await call(`${app.url}/v1/orders`, {
      token: customer.token,
      body: order({ plan: 'starter', addons: ['elasticsearch', 'nope'] }),
    });
    assert.deepEqual(
      response.body.errors.map((error: { field: string }) => error.field),
      ['addons.0', 'addons.1'],
    );
  });

  test('an order may name the region of a cluster; the instance keeps it for placement', async () => {
    const inRegion = await call(`${app.url}/v1/orders`, {
      token: customer.token,
      body: order({ region: 'local' }),
    });
    assert.equal(inRegion.status, 201, JSON.stringify(inRegion.body));
    const anywhere = await call(`${app.url}/v1/orders`, { token: customer.token, body: order() });
    assert.equal(anywhere.status, 201);
    const spec = async (id: string) => (await database.db.instance.findUniqueOrThrow({ where: { id } })).spec;
    assert.deepEqual(await spec(inRegion.body.instanceId), { region: 'local' });
    assert.deepEqual(await spec(anywhere.body.instanceId), {});
  });

  test('a duplicate domain → 409 domain_unavailable, and the first order stands alone', async () => {
    const body = order();
    const first = await call(`${app.url}/v1/orders`, { token: customer.token, body });
    assert.equal(first.status, 201);
    const before = await counts();
    const upperCased = await call(`${app.url}/v1/orders`, {
      token: customer.token,
      body: { ...body, domain: body.domain.toUpperCase() },
    });
    assert.equal(upperCased.status, 409);
    assert.equal(upperCased.body.code, 'domain_unavailable');
    assert.deepEqual(await counts(), before);
  });

  test('racing orders for one domain: exactly one wins', async () => {
    const body = order();
    const responses = await Promise.all(
      Array.from({ length: 5 }, () => call(`${app.url}/v1/orders`, { token: customer.token, body })),
    );
    assert.deepEqual(responses.map((r) => r.status).sort(), [201, 409, 409, 409, 409]);
    assert.equal(await database.db.instance.count({ where: { domain: body.domain } }), 1);
  });
});

describe('placing an order', () => {
  test("a customer's order waits for payment: no subscription, no job", async () => {
    const before = await counts();
    const response = await call(`${app.url}/v1/orders`, {
      token: customer.token,
      body: order({ addons: ['object_storage'] }),
    });
    assert.equal(response.status, 201);
    assert.equal(response.body.status, 'pending_payment');
    assert.deepEqual(response.body.total, { amountMinor: 1900 + 500, currency: 'eur' });
    const instance = await database.db.instance.findUniqueOrThrow({
      where: { id: response.body.instanceId },
    });
    assert.equal(instance.status, 'pending_payment');
    const after = await counts();
    assert.deepEqual(after, {
      ...before,
      orders: before.orders + 1,
      instances: before.instances + 1,
      addons: before.addons + 1,
      audit: before.audit + 1,
    });
  });

  test('staff approval of payment starts the subscription and queues provisioning, once', async () => {
    const placed = await call(`${app.url}/v1/orders`, { token: customer.token, body: order() });
    const byCustomer = await call(`${app.url}/v1/orders/${placed.body.id}/approve-payment`, {
      method: 'POST',
      token: customer.token,
    });
    assert.equal(byCustomer.status, 403);
    const approved = await call(`${app.url}/v1/orders/${placed.body.id}/approve-payment`, {
      method: 'POST',
      token: staff.token,
    });
    assert.equal(approved.status, 200);
    assert.equal(approved.body.status, 'paid');
    const instanceId = placed.body.instanceId as string;
    assert.equal(
      (await database.db.instance.findUniqueOrThrow({ where: { id: instanceId } })).status,
      'provisioning',
    );
    const subscription = await database.db.subscription.findUniqueOrThrow({ where: { instanceId } });
    assert.equal(subscription.status, 'active');
    assert.equal(subscription.provider, 'none');
    assert.equal(subscription.priceMinor, placed.body.total.amountMinor);
    const jobs = await database.db.$queryRaw<{ key: string; task: string }[]>`
      select j.key, t.identifier as task from graphile_worker._private_jobs j
      join graphile_worker._private_tasks t on t.id = j.task_id where j.key = ${instanceId}`;
    assert.deepEqual(jobs, [{ key: instanceId, task: 'instance:reconcile' }]);

    const again = await call(`${app.url}/v1/orders/${placed.body.id}/approve-payment`, {
      method: 'POST',
      token: staff.token,
    });
    assert.equal(again.status, 409);
    assert.equal(await database.db.subscription.count({ where: { instanceId } }), 1);
  });

  test('another customer cannot see the order or its instance (404, not 403)', async () => {
    const placed = await call(`${app.url}/v1/orders`, { token: customer.token, body: order() });
    const outsider = await createUserWithToken(database.db);
    const orderResponse = await call(`${app.url}/v1/orders/${placed.body.id}`, { token: outsider.token });
    const instanceResponse = await call(`${app.url}/v1/instances/${placed.body.instanceId}`, {
      token: outsider.token,
    });
    assert.equal(orderResponse.status, 404);
    assert.equal(instanceResponse.status, 404);
    const list = await call(`${app.url}/v1/instances`, { token: outsider.token });
    assert.deepEqual(list.body.data, []);
    const own = await call(`${app.url}/v1/instances/${placed.body.instanceId}`, { token: customer.token });
    assert.equal(own.status, 200);
    assert.equal(own.body.status, 'pending_payment');
  });

  test('a viewer of the organization may not order for it', async () => {
    const viewer = await createUserWithToken(database.db);
    await database.db.membership.create({
      data: { organizationId: customerOrg, userId: viewer.userId, role: 'viewer' },
    });
    const response = await call(`${app.url}/v1/orders`, { token: viewer.token, body: order() });
    assert.equal(response.status, 404);
  });

  test('a revoked token no longer authenticates', async () => {
    const user = await createUserWithToken(database.db);
    await database.db.apiToken.updateMany({
      where: { userId: user.userId },
      data: { revokedAt: new Date() },
    });
    const response = await call(`${app.url}/v1/instances`, { token: user.token });
    assert.equal(response.status, 401);
  });

  test('the catalog is public and lists the seeded plans with limits', async () => {
    const response = await call(`${app.url}/v1/plans`);
    assert.equal(response.status, 200);
    assert.deepEqual(
      response.body.data.map((plan: { code: string }) => plan.code),
      ['starter', 'community', 'large'],
    );
    for (const plan of response.body.data) {
      assert.ok(
        plan.limits.activeUsers > 0 && plan.limits.storageGb > 0 && plan.limits.sidekiqConcurrency > 0,
      );
    }
  });
});
