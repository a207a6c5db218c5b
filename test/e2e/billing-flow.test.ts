/**
 * Billing end to end, on a real PostgreSQL with a real job runner: order → Checkout → signed
 * webhook → provisioned (dry-run cluster) → usage sampled → meter events reported → a renewal
 * fails → dunning suspends the server → the invoice is paid → the server resumes at once.
 *
 * Stripe itself is two things here: the meter events go through the real `stripe` client to
 * stripe-mock (so each is checked against Stripe's API description), while Checkout,
 * subscriptions and invoices, which Stripe must remember between calls, are the stateful
 * stand-in (test/support/stripe-stand-in.ts).
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import Stripe from 'stripe';
import { DUNNING_TASK } from '../../billing/dunning.ts';
import { billingTasks, REPORT_USAGE_TASK } from '../../billing/index.ts';
import { SAMPLE_SEARCH_TASK } from '../../billing/samplers.ts';
import { makeMasterKey, makeSecretBox } from '../../core/crypto.ts';
import { makePool } from '../../core/db.ts';
import { makeLogger } from '../../core/log.ts';
import { startWorker } from '../../core/worker.ts';
import { provisionerTasks } from '../../provisioner/tasks.ts';
import { call, startTestApp, type TestApp } from '../support/app.ts';
import { makeTestDatabase, type TestDatabase } from '../support/db.ts';
import { createOrganization, createUserWithToken } from '../support/factories.ts';
import {
  STRIPE_MOCK_API_KEY,
  type StripeMock,
  startStripeMock,
  stripeMockSkipReason,
} from '../support/stripe-mock.ts';
import { type StripeStandIn, stripeStandIn } from '../support/stripe-stand-in.ts';

const WEBHOOK_SECRET = 'whsec_billing_flow';
const log = makeLogger({ log: { level: 'error', format: 'json' } });
const box = makeSecretBox([makeMasterKey('test')]);

let database: TestDatabase;
let mock: StripeMock;
let stand: StripeStandIn;
let app: TestApp;
let pool: ReturnType<typeof makePool>;
let worker: Awaited<ReturnType<typeof startWorker>>;
let billing: ReturnType<typeof billingTasks>;

before(async () => {
  if (stripeMockSkipReason()) return;
  database = await makeTestDatabase();
  mock = await startStripeMock();
  stand = stripeStandIn();
  pool = makePool(database.url);
  app = await startTestApp(
    database,
    {
      WOOLLY_BILLING_PROVIDER: 'stripe',
      WOOLLY_STRIPE_SECRET_KEY: STRIPE_MOCK_API_KEY,
      WOOLLY_STRIPE_WEBHOOK_SECRET: WEBHOOK_SECRET,
    },
    { stripeGateway: stand.gateway },
  );
  billing = billingTasks({
    db: database.db,
    pool,
    log,
    box,
    config: {
      stripe: { secretKey: STRIPE_MOCK_API_KEY, webhookSecret: WEBHOOK_SECRET, apiUrl: mock.url },
      dunning: { graceDays: 7, retentionDays: 30 },
      deletionGraceHours: 24,
    },
    gateway: stand.gateway,
  });
  worker = await startWorker({
    databaseUrl: database.url,
    concurrency: 4,
    log,
    tasks: { ...provisionerTasks({ db: database.db, box, log, waitPollMs: 100 }), ...billing.tasks },
    crontab: '',
    pollIntervalMs: 50,
  });
});

after(async () => {
  await worker?.release();
  await app?.release();
  await pool?.end();
  await mock?.release();
  await database?.release();
});

async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined | null | false>,
  timeoutMs = 30_000,
) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Posts the event Stripe would send, signed with the endpoint's secret, to the API. */
async function deliver(type: string, object: { id: string }): Promise<string> {
  const event = stand.event(type, object);
  const payload = JSON.stringify(event);
  const response = await call(`${app.url}/v1/webhooks/stripe`, {
    method: 'POST',
    rawBody: payload,
    headers: {
      'stripe-signature': Stripe.webhooks.generateTestHeaderString({ payload, secret: WEBHOOK_SECRET }),
    },
  });
  assert.equal(response.status, 200);
  return event.id;
}

const processed = (eventId: string) =>
  waitFor(
    `Stripe event ${eventId} processed`,
    async () => (await database.db.webhookEvent.findUnique({ where: { id: eventId } }))?.processedAt,
  );

const statusOf = async (instanceId: string) =>
  (await database.db.instance.findUniqueOrThrow({ where: { id: instanceId } })).status;

test('order → Checkout → webhook → provisioned → usage reported → renewal fails → suspended → paid → resumed', {
  skip: stripeMockSkipReason(),
  timeout: 120_000,
}, async () => {
  const customer = await createUserWithToken(database.db);
  const organizationId = await createOrganization(database.db, customer.userId, 'owner');

  // The order, and where to pay it.
  const ordered = await call(`${app.url}/v1/orders`, {
    method: 'POST',
    token: customer.token,
    body: { organizationId, plan: 'community', domain: 'flow.woolly.test', addons: ['elasticsearch'] },
  });
  assert.equal(ordered.status, 201, JSON.stringify(ordered.body));
  const {
    id: orderId,
    instanceId,
    checkout,
  } = ordered.body as {
    id: string;
    instanceId: string;
    checkout: { url: string };
  };
  assert.ok(checkout.url);

  // The buyer pays; Stripe says so; the server is provisioned.
  const sessionId = (await database.db.order.findUniqueOrThrow({ where: { id: orderId } }))
    .checkoutSessionId as string;
  const { subscription } = stand.simulateCheckoutPaid(sessionId);
  await processed(await deliver('checkout.session.completed', { id: sessionId }));
  await processed(await deliver('customer.subscription.created', { id: subscription.id }));
  await waitFor('the server running', async () => (await statusOf(instanceId)) === 'running');

  // Usage: the server has had search for three hours (the add-on attached then).
  await database.db.instanceAddon.updateMany({
    where: { instanceId },
    data: { createdAt: new Date(Date.now() - 3 * 3_600_000 - 60_000) },
  });
  await billing.tasks[SAMPLE_SEARCH_TASK]?.({}, {} as never);
  const samples = await database.db.usageEvent.findMany({ where: { instanceId, meter: 'search_hours' } });
  assert.ok(samples.length >= 2 && samples.length <= 3, `${samples.length} hours sampled`);
  await billing.tasks[REPORT_USAGE_TASK]?.({}, {} as never);
  const unreported = await database.db.usageEvent.count({ where: { instanceId, reportedAt: null } });
  assert.equal(unreported, 0, 'every sample reported to the meter (stripe-mock accepted each)');

  // A renewal fails: past due, a grace period, then suspension.
  const failed = stand.simulateRenewalFailed(subscription.id);
  await processed(await deliver('invoice.payment_failed', { id: failed.id }));
  const pastDue = await database.db.subscription.findUniqueOrThrow({ where: { instanceId } });
  assert.equal(pastDue.status, 'past_due');
  assert.ok(
    pastDue.graceEndsAt && pastDue.graceEndsAt > new Date(),
    'the server runs on through the grace period',
  );
  assert.equal(await statusOf(instanceId), 'running');
  // Seven days pass.
  await database.db.subscription.update({
    where: { instanceId },
    data: { graceEndsAt: new Date(Date.now() - 1000) },
  });
  await billing.tasks[DUNNING_TASK]?.({}, { job: { id: 'flow' }, logger: { info() {} } } as never);
  await waitFor('the server suspended', async () => (await statusOf(instanceId)) === 'suspended');

  // The invoice is paid: the server resumes at once, and the invoice is mirrored paid.
  stand.simulateInvoicePaid(failed.id);
  await processed(await deliver('invoice.paid', { id: failed.id }));
  await waitFor('the server running again', async () => (await statusOf(instanceId)) === 'running');
  const settled = await database.db.subscription.findUniqueOrThrow({ where: { instanceId } });
  assert.equal(settled.status, 'active');
  assert.equal(settled.suspendedAt, null);
  const invoice = await database.db.invoice.findUniqueOrThrow({ where: { providerId: failed.id } });
  assert.equal(invoice.status, 'paid');
  assert.equal(invoice.amountPaidMinor, 5900 + 1500);
  const types = (await database.db.event.findMany({ where: { instanceId }, orderBy: { id: 'asc' } })).map(
    (event) => event.type,
  );
  for (const expected of [
    'instance.provisioning',
    'billing.payment_failed',
    'billing.suspended',
    'billing.payment_recovered',
  ]) {
    assert.ok(types.includes(expected), `${expected} in ${types.join(', ')}`);
  }
  assert.ok(
    (await database.db.auditLog.count({
      where: { targetId: instanceId, actor: { startsWith: 'system:' } },
    })) >= 3,
    'every dunning step has an audit row',
  );
});
