/**
 * Ordering through Stripe Checkout and keeping each server's subscription in line, on a real
 * PostgreSQL. Flows that need Stripe to remember (a Checkout that became a subscription, items
 * changed) run against the stateful stand-in (test/support/stripe-stand-in.ts); the requests
 * themselves are checked against Stripe's API description by stripe-mock at the end.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { billingReactions, sponsorshipReactions } from '../../billing/index.ts';
import { makeStripeClient, makeStripeGateway, type StripeGateway } from '../../billing/stripe-gateway.ts';
import {
  mirrorServerSubscription,
  SYNC_SUBSCRIPTION_TASK,
  syncSubscription,
} from '../../billing/subscriptions.ts';
import { processStripeEvent, recordStripeEvent } from '../../billing/webhooks.ts';
import { makeLogger } from '../../core/log.ts';
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

const STRIPE_ENV = {
  WOOLLY_BILLING_PROVIDER: 'stripe',
  WOOLLY_STRIPE_SECRET_KEY: 'sk_test_subscriptions',
  WOOLLY_STRIPE_WEBHOOK_SECRET: 'whsec_subscriptions',
};
const log = makeLogger({ log: { level: 'error', format: 'json' } });

let database: TestDatabase;
let stand: StripeStandIn;
/** What the app talks to: the stand-in, made to fail on demand. */
let unreachable = false;
let app: TestApp;
let customer: { userId: string; token: string };
let organizationId: string;

const gateway = (): StripeGateway => ({
  ...stand.gateway,
  async createCheckoutSession(params, key) {
    if (unreachable) throw new Error('connect ECONNREFUSED (injected)');
    return stand.gateway.createCheckoutSession(params, key);
  },
});

before(async () => {
  database = await makeTestDatabase();
  stand = stripeStandIn();
  app = await startTestApp(database, STRIPE_ENV, { stripeGateway: gateway() });
  customer = await createUserWithToken(database.db, {
    scopes: ['instances:read', 'instances:write', 'billing:read'],
  });
  organizationId = await createOrganization(database.db, customer.userId, 'owner');
});

after(async () => {
  await app?.release();
  await database?.release();
});

const uniqueDomain = () => `s${Date.now().toString(36)}${Math.floor(Math.random() * 1e6)}.woolly.test`;

async function placeOrder(body: Record<string, unknown> = {}) {
  return call(`${app.url}/v1/orders`, {
    method: 'POST',
    token: customer.token,
    body: { organizationId, plan: 'community', domain: uniqueDomain(), addons: ['object_storage'], ...body },
  });
}

type PlacedOrder = {
  id: string;
  instanceId: string;
  status: string;
  checkout: { url: string; expiresAt: string } | null;
};

async function orderPaidAtCheckout(): Promise<{ order: PlacedOrder; subscriptionId: string }> {
  const response = await placeOrder();
  assert.equal(response.status, 201);
  const order = response.body as PlacedOrder;
  const row = await database.db.order.findUniqueOrThrow({ where: { id: order.id } });
  const { subscription } = stand.simulateCheckoutPaid(row.checkoutSessionId as string);
  await deliver('checkout.session.completed', { id: row.checkoutSessionId as string });
  return { order, subscriptionId: subscription.id };
}

const deps = () => ({
  db: database.db,
  log,
  gateway: stand.gateway,
  reactions: billingReactions({ settings: { graceDays: 7, retentionDays: 30, deletionGraceHours: 24 } }),
  sponsorships: sponsorshipReactions,
});

/** Stores an event as the webhook intake does and processes it as its job would. */
async function deliver(type: string, object: { id: string }) {
  const event = stand.event(type, object);
  await recordStripeEvent(database.db, event, JSON.stringify(event));
  return processStripeEvent(deps(), event.id);
}

async function jobs(task: string, key: string): Promise<number> {
  const [row] = await database.db.$queryRaw<{ n: number }[]>`
    select count(*)::int as n from graphile_worker.jobs where task_identifier = ${task} and key = ${key}`;
  return row?.n ?? 0;
}

describe('ordering through Checkout (stateful stand-in)', () => {
  test('an order opens Checkout for its plan, add-ons and metered prices; the organization gets one customer', async () => {
    const first = await placeOrder();
    assert.equal(first.status, 201);
    const order = first.body as PlacedOrder;
    assert.equal(order.status, 'pending_payment');
    assert.ok(order.checkout?.url.startsWith('https://checkout.stripe.test/'));
    const row = await database.db.order.findUniqueOrThrow({ where: { id: order.id } });
    const session = stand.sessions.get(row.checkoutSessionId as string) as unknown as {
      line_items: { price: string; quantity?: number }[];
      metadata: Record<string, string>;
      customer: string;
    };
    const keys = session.line_items.map(
      (line) => [...stand.prices.values()].find((p) => p.id === line.price)?.lookup_key,
    );
    assert.deepEqual(keys, [
      'plan:community',
      'addon:object_storage',
      'usage:storage_gb_hours:community',
      'usage:active_users:community',
    ]);
    assert.deepEqual(
      session.line_items.map((line) => line.quantity),
      [1, 1, undefined, undefined],
      'metered prices carry no quantity',
    );
    assert.equal(session.metadata.instanceId, order.instanceId);
    const organization = await database.db.organization.findUniqueOrThrow({ where: { id: organizationId } });
    assert.equal(session.customer, organization.stripeCustomerId);

    const second = await placeOrder({ addons: [] });
    assert.equal(second.status, 201);
    const secondRow = await database.db.order.findUniqueOrThrow({
      where: { id: (second.body as PlacedOrder).id },
    });
    const secondSession = stand.sessions.get(secondRow.checkoutSessionId as string);
    assert.equal(secondSession?.customer, organization.stripeCustomerId, 'the same customer');
    const ours = [...stand.customers.values()].filter((c) => c.metadata.organizationId === organizationId);
    assert.equal(ours.length, 1);
  });

  test('Stripe unreachable: a 503 naming the order, which is kept unpaid; POST checkout opens it later', async () => {
    unreachable = true;
    const response = await placeOrder();
    unreachable = false;
    assert.equal(response.status, 503);
    const problem = response.body as { code: string; detail: string };
    assert.equal(problem.code, 'payment_provider_unavailable');
    const orderId = /Order ([0-9a-f-]{36})/.exec(problem.detail)?.[1];
    assert.ok(orderId, problem.detail);
    const kept = await database.db.order.findUniqueOrThrow({ where: { id: orderId } });
    assert.equal(kept.status, 'pending_payment');
    assert.equal(kept.checkoutSessionId, null);

    const opened = await call(`${app.url}/v1/orders/${orderId}/checkout`, {
      method: 'POST',
      token: customer.token,
    });
    assert.equal(opened.status, 200);
    const again = await call(`${app.url}/v1/orders/${orderId}/checkout`, {
      method: 'POST',
      token: customer.token,
    });
    assert.deepEqual(again.body, opened.body, 'an open session is reused');
    const shown = await call(`${app.url}/v1/orders/${orderId}`, { token: customer.token });
    assert.deepEqual((shown.body as PlacedOrder).checkout, opened.body);
  });

  test('payment provisions the server once, whatever the order and number of deliveries', async () => {
    const response = await placeOrder();
    const order = response.body as PlacedOrder;
    const row = await database.db.order.findUniqueOrThrow({ where: { id: order.id } });
    const sessionId = row.checkoutSessionId as string;
    const { subscription } = stand.simulateCheckoutPaid(sessionId);

    // The subscription's own event may come first: retried until the Checkout is processed.
    const early = stand.event('customer.subscription.created', { id: subscription.id });
    await recordStripeEvent(database.db, early, JSON.stringify(early));
    await assert.rejects(processStripeEvent(deps(), early.id), /no server subscription/);

    for (let delivery = 0; delivery < 3; delivery++) {
      assert.equal(await deliver('checkout.session.completed', { id: sessionId }), 'processed');
    }
    assert.equal(await processStripeEvent(deps(), early.id), 'processed');

    const paid = await database.db.order.findUniqueOrThrow({ where: { id: order.id } });
    assert.equal(paid.status, 'paid');
    const instance = await database.db.instance.findUniqueOrThrow({
      where: { id: order.instanceId },
      include: { subscription: true, events: true },
    });
    assert.equal(instance.status, 'provisioning');
    assert.equal(instance.subscription?.provider, 'stripe');
    assert.equal(instance.subscription?.providerId, subscription.id);
    assert.equal(instance.subscription?.priceMinor, 5900 + 500, 'plan and add-on');
    assert.equal(instance.events.filter((event) => event.type === 'instance.provisioning').length, 1);
    assert.equal(
      await database.db.auditLog.count({ where: { action: 'order.paid', targetId: order.id } }),
      1,
    );
    assert.equal(await jobs('instance:reconcile', order.instanceId), 1);
  });

  test('cancelling an unpaid order closes its Checkout; one paid meanwhile answers 409 and provisions', async () => {
    const open = (await placeOrder()).body as PlacedOrder;
    const cancelled = await call(`${app.url}/v1/orders/${open.id}/cancel`, {
      method: 'POST',
      token: customer.token,
    });
    assert.equal(cancelled.status, 200);
    const openRow = await database.db.order.findUniqueOrThrow({ where: { id: open.id } });
    assert.equal(stand.sessions.get(openRow.checkoutSessionId as string)?.status, 'expired');

    const racing = (await placeOrder()).body as PlacedOrder;
    const racingRow = await database.db.order.findUniqueOrThrow({ where: { id: racing.id } });
    stand.simulateCheckoutPaid(racingRow.checkoutSessionId as string);
    const refused = await call(`${app.url}/v1/orders/${racing.id}/cancel`, {
      method: 'POST',
      token: customer.token,
    });
    assert.equal(refused.status, 409);
    assert.equal(
      (await database.db.order.findUniqueOrThrow({ where: { id: racing.id } })).status,
      'pending_payment',
    );
    await deliver('checkout.session.completed', { id: racingRow.checkoutSessionId as string });
    assert.equal(
      (await database.db.instance.findUniqueOrThrow({ where: { id: racing.instanceId } })).status,
      'provisioning',
    );
  });

  test('a Checkout paid for an order cancelled in the same moment ends its subscription at once', async () => {
    const order = (await placeOrder()).body as PlacedOrder;
    const row = await database.db.order.findUniqueOrThrow({ where: { id: order.id } });
    const { subscription } = stand.simulateCheckoutPaid(row.checkoutSessionId as string);
    // The cancellation won the race: it committed between Stripe taking the payment and the event.
    await database.db.order.update({
      where: { id: order.id },
      data: { status: 'cancelled', instanceId: null },
    });
    await database.db.instance.delete({ where: { id: order.instanceId } });
    await deliver('checkout.session.completed', { id: row.checkoutSessionId as string });
    assert.equal(stand.subscriptions.get(subscription.id)?.status, 'canceled');
    const entry = await database.db.auditLog.findFirstOrThrow({
      where: { action: 'order.paid_after_cancel', targetId: order.id },
    });
    assert.equal((entry.data as { refund: string }).refund, 'needed');
    assert.equal(await database.db.subscription.count({ where: { providerId: subscription.id } }), 0);
  });
});

describe('keeping the subscription in line (stateful stand-in)', () => {
  async function runningServer() {
    const { order, subscriptionId } = await orderPaidAtCheckout();
    await database.db.instance.update({ where: { id: order.instanceId }, data: { status: 'running' } });
    return { instanceId: order.instanceId, subscriptionId };
  }
  const lookupKeys = (subscriptionId: string) =>
    stand.subscriptions
      .get(subscriptionId)
      ?.items.data.map((item) => item.price.lookup_key)
      .sort();

  test('plan and add-on changes reach Stripe once, prorated, and a second sync sends nothing', async () => {
    const { instanceId, subscriptionId } = await runningServer();
    const etag = async () =>
      (await call(`${app.url}/v1/instances/${instanceId}`, { token: customer.token })).headers.get(
        'etag',
      ) as string;
    const resized = await call(`${app.url}/v1/instances/${instanceId}`, {
      method: 'PATCH',
      token: customer.token,
      headers: { 'if-match': await etag() },
      body: { plan: 'large' },
    });
    assert.equal(resized.status, 202);
    const added = await call(`${app.url}/v1/instances/${instanceId}/addons`, {
      method: 'POST',
      token: customer.token,
      headers: { 'if-match': await etag() },
      body: { code: 'elasticsearch' },
    });
    assert.equal(added.status, 202);
    assert.equal(
      await jobs(SYNC_SUBSCRIPTION_TASK, `${SYNC_SUBSCRIPTION_TASK}:${instanceId}`),
      1,
      'one job for both',
    );

    const writesBefore = stand.writes.length;
    assert.equal(await syncSubscription({ db: database.db, gateway: stand.gateway }, instanceId), 'updated');
    assert.deepEqual(lookupKeys(subscriptionId), [
      'addon:elasticsearch',
      'addon:object_storage',
      'plan:large',
      'usage:active_users:large',
      'usage:search_hours:large',
      'usage:storage_gb_hours:large',
    ]);
    const sent = stand.writes.slice(writesBefore);
    assert.equal(sent.length, 1);
    assert.equal(
      (sent[0]?.params as { proration_behavior?: string } | undefined)?.proration_behavior,
      'create_prorations',
    );
    const local = await database.db.subscription.findUniqueOrThrow({ where: { instanceId } });
    assert.equal(local.priceMinor, 19900 + 500 + 1500);

    assert.equal(await syncSubscription({ db: database.db, gateway: stand.gateway }, instanceId), 'in_line');
    assert.equal(stand.writes.length, writesBefore + 1);
  });

  test('cancel at period end: Stripe is told, the server runs on, and the period end deletes it', async () => {
    const { instanceId, subscriptionId } = await runningServer();
    const put = (cancelAtPeriodEnd: boolean) =>
      call(`${app.url}/v1/instances/${instanceId}/subscription`, {
        method: 'PUT',
        token: customer.token,
        body: { cancelAtPeriodEnd },
      });
    assert.equal((await put(true)).status, 200);
    await syncSubscription({ db: database.db, gateway: stand.gateway }, instanceId);
    assert.equal(stand.subscriptions.get(subscriptionId)?.cancel_at_period_end, true);
    assert.equal(
      (await database.db.instance.findUniqueOrThrow({ where: { id: instanceId } })).status,
      'running',
    );

    assert.equal((await put(false)).status, 200);
    await syncSubscription({ db: database.db, gateway: stand.gateway }, instanceId);
    assert.equal(stand.subscriptions.get(subscriptionId)?.cancel_at_period_end, false, 'withdrawn');

    assert.equal((await put(true)).status, 200);
    await syncSubscription({ db: database.db, gateway: stand.gateway }, instanceId);
    stand.simulatePeriodEnd(subscriptionId);
    for (let delivery = 0; delivery < 2; delivery++) {
      await deliver('customer.subscription.deleted', { id: subscriptionId });
    }
    const instance = await database.db.instance.findUniqueOrThrow({
      where: { id: instanceId },
      include: { subscription: true },
    });
    assert.equal(instance.status, 'deleting');
    assert.ok(instance.deleteAfter, 'restorable until the purge');
    assert.equal(instance.subscription?.status, 'cancelled');
    const shown = await call(`${app.url}/v1/instances/${instanceId}/subscription`, { token: customer.token });
    assert.equal((shown.body as { status: string }).status, 'cancelled');
    assert.equal((await put(false)).status, 409, 'an ended subscription cannot be kept');
  });

  test('a purged server ends its Stripe subscription', async () => {
    const { instanceId, subscriptionId } = await runningServer();
    await database.db.instance.update({ where: { id: instanceId }, data: { status: 'deleted' } });
    await database.db.subscription.update({ where: { instanceId }, data: { status: 'cancelled' } });
    assert.equal(
      await syncSubscription({ db: database.db, gateway: stand.gateway }, instanceId),
      'cancelled',
    );
    assert.equal(stand.subscriptions.get(subscriptionId)?.status, 'canceled');
    assert.equal(
      await syncSubscription({ db: database.db, gateway: stand.gateway }, instanceId),
      'ended_already',
    );
  });

  test('a late, older copy of a subscription event never wins: the mirror re-reads Stripe', async () => {
    const { instanceId, subscriptionId } = await runningServer();
    const remote = stand.subscriptions.get(subscriptionId);
    assert.ok(remote);
    remote.cancel_at_period_end = true;
    await deliver('customer.subscription.updated', { id: subscriptionId });
    // A delivery of an earlier update, carrying the old state, arrives last.
    await deliver('customer.subscription.updated', { id: subscriptionId });
    const local = await database.db.subscription.findUniqueOrThrow({ where: { instanceId } });
    assert.equal(local.cancelAtPeriodEnd, true);
  });

  test('a refund is recorded on its invoice and leaves the server alone', async () => {
    const { instanceId, subscriptionId } = await runningServer();
    const invoice = [...stand.invoices.values()].find(
      (candidate) => candidate.parent?.subscription_details?.subscription === subscriptionId,
    );
    assert.ok(invoice);
    await deliver('invoice.paid', { id: invoice.id });
    const charge = stand.simulateRefund(invoice.id, 1000);
    await deliver('charge.refunded', { id: charge.id });
    const mirrored = await database.db.invoice.findUniqueOrThrow({ where: { providerId: invoice.id } });
    assert.equal(mirrored.refundedMinor, 1000);
    assert.equal(mirrored.instanceId, instanceId);
    assert.deepEqual((mirrored.lines as { service: string }[]).map((line) => line.service).sort(), [
      'addon',
      'community_fees',
      'plan',
      'storage',
    ]);
    assert.equal(
      (await database.db.instance.findUniqueOrThrow({ where: { id: instanceId } })).status,
      'running',
    );
  });

  test('mirroring a subscription Woolly does not know is retried, not dropped', async () => {
    const stranger = await stand.gateway.retrieveSubscription(
      stand.simulateCheckoutPaid(
        (
          await stand.gateway.createCheckoutSession(
            { mode: 'subscription', line_items: [{ price: stand.price('plan:starter').id, quantity: 1 }] },
            'stranger',
          )
        ).id,
      ).subscription.id,
    );
    await assert.rejects(
      database.db.$transaction((tx) => mirrorServerSubscription(tx, stranger, deps().reactions)),
      /no server subscription/,
    );
  });
});

describe('the requests checkout and sync send (stripe-mock)', { skip: stripeMockSkipReason() }, () => {
  let mock: StripeMock;
  let mockApp: TestApp;
  /**
   * The real gateway over stripe-mock. stripe-mock knows no lookup keys (it answers every
   * price search with its one fixture price), so after the real search is sent, and checked,
   * that fixture price stands for every catalog price asked for.
   */
  const overMock = (): StripeGateway => {
    const settings = { secretKey: STRIPE_MOCK_API_KEY, apiUrl: `http://127.0.0.1:${mock.port}` };
    const real = makeStripeGateway(settings);
    const client = makeStripeClient(settings, { maxNetworkRetries: 0 });
    return {
      ...real,
      async pricesByLookupKey(keys) {
        await real.pricesByLookupKey(keys);
        const [fixture] = (await client.prices.list({ limit: 1 })).data;
        assert.ok(fixture);
        return new Map(keys.map((key) => [key, { ...fixture, lookup_key: key }]));
      },
    };
  };
  before(async () => {
    mock = await startStripeMock();
    mockApp = await startTestApp(database, STRIPE_ENV, { stripeGateway: overMock() });
  });
  after(async () => {
    await mockApp?.release();
    mock?.release();
  });

  test('an order opens a Checkout session Stripe accepts', async () => {
    const fresh = await createOrganization(database.db, customer.userId, 'owner');
    const response = await call(`${mockApp.url}/v1/orders`, {
      method: 'POST',
      token: customer.token,
      body: {
        organizationId: fresh,
        plan: 'community',
        domain: uniqueDomain(),
        addons: ['object_storage', 'elasticsearch'],
      },
    });
    assert.equal(response.status, 201, JSON.stringify(response.body));
    // stripe-mock's fixture session expired long ago, so the order shows no open Checkout.
    const placed = await database.db.order.findUniqueOrThrow({
      where: { id: (response.body as PlacedOrder).id },
    });
    assert.match(placed.checkoutSessionId ?? '', /^cs_/);
    const organization = await database.db.organization.findUniqueOrThrow({ where: { id: fresh } });
    assert.match(organization.stripeCustomerId ?? '', /^cus_/);
  });

  test('a subscription sync, cancellation, Checkout expiry and refund lookup are requests Stripe accepts', async () => {
    const real = overMock();
    const { instanceId } = await (async () => {
      const { order } = await orderPaidAtCheckout();
      await database.db.instance.update({ where: { id: order.instanceId }, data: { status: 'running' } });
      return { instanceId: order.instanceId };
    })();
    // stripe-mock's fixture subscription carries none of Woolly's prices: every item is added.
    assert.equal(await syncSubscription({ db: database.db, gateway: real }, instanceId), 'updated');
    const cancelled = await real.cancelSubscription('sub_mock', 'cancel:sub_mock');
    assert.ok(cancelled.id);
    await real.expireCheckoutSession('cs_mock', 'checkout-expire:cs_mock');
    const invoice = await real.invoiceIdOfPaymentIntent('pi_mock');
    assert.equal(typeof invoice, 'string', 'the fixture invoice payment names its invoice');
  });
});
