/**
 * Sponsorships in billing: the Checkout a sponsor pays at, and what Stripe's events about it
 * do. Requests are checked against stripe-mock (Stripe's own API description) where Stripe
 * need not remember anything; flows that need it to (a Checkout paid, a renewal failed) run
 * against the stateful stand-in of test/support/stripe-stand-in.ts.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { PassThrough } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import type Stripe from 'stripe';
import {
  activateSponsorship,
  creditSponsorPayment,
  openSponsorCheckout,
  sponsorshipReactions,
  syncSponsorship,
} from '../../billing/sponsorships.ts';
import { makeStripeGateway, type StripeGateway, type StripeInvoice } from '../../billing/stripe-gateway.ts';
import type { SubscriptionReactions } from '../../billing/subscriptions.ts';
import { processStripeEvent, recordStripeEvent, STRIPE_WEBHOOK_TASK } from '../../billing/webhooks.ts';
import { makeLogger } from '../../core/log.ts';
import { makeTestDatabase, type TestDatabase } from '../support/db.ts';
import { createOrganization, createUserWithToken } from '../support/factories.ts';
import {
  STRIPE_MOCK_API_KEY,
  type StripeMock,
  startStripeMock,
  stripeMockSkipReason,
} from '../support/stripe-mock.ts';
import { type StripeStandIn, stripeStandIn } from '../support/stripe-stand-in.ts';

const PUBLIC_URL = 'https://woolly.example';
const log = makeLogger({ log: { level: 'error', format: 'json' } }, new PassThrough());

let database: TestDatabase;

before(async () => {
  database = await makeTestDatabase();
});

after(async () => {
  await database.release();
});

/**
 * A running server with its own paid subscription, and its organization (with a Stripe
 * customer when `customerId` is given): what a sponsor pays toward.
 */
async function runningServer(customerId: string | null) {
  const { userId } = await createUserWithToken(database.db);
  const organizationId = await createOrganization(database.db, userId);
  if (customerId) {
    await database.db.organization.update({
      where: { id: organizationId },
      data: { stripeCustomerId: customerId },
    });
  }
  const plan = await database.db.plan.findUniqueOrThrow({ where: { code: 'community' } });
  const instance = await database.db.instance.create({
    data: {
      organizationId,
      planId: plan.id,
      domain: `s-${randomUUID().slice(0, 8)}.woolly.test`,
      mastodonVersion: 'v4.5.11',
      status: 'running',
      spec: { addons: [] },
      generation: 3,
      observedGeneration: 3,
    },
  });
  const now = new Date();
  await database.db.subscription.create({
    data: {
      instanceId: instance.id,
      organizationId,
      provider: 'stripe',
      providerId: `sub_server_${randomUUID().slice(0, 8)}`,
      status: 'active',
      priceMinor: plan.priceMinor,
      currency: plan.currency,
      currentPeriodStart: now,
      currentPeriodEnd: new Date(now.getTime() + 30 * 86_400_000),
    },
  });
  return { organizationId, instanceId: instance.id, domain: instance.domain };
}

/** A pending sponsorship of `instanceId`, as the public checkout writes it. */
async function pendingSponsorship(
  server: { organizationId: string; instanceId: string },
  sponsor: { tier?: string; displayName?: string | null; showName?: boolean } = {},
) {
  return database.db.sponsorship.create({
    data: {
      organizationId: server.organizationId,
      instanceId: server.instanceId,
      tier: sponsor.tier ?? 'gold',
      sponsorEmail: `sponsor-${randomUUID().slice(0, 8)}@example.test`,
      displayName: sponsor.displayName === undefined ? 'Ada' : sponsor.displayName,
      showName: sponsor.showName ?? true,
      amountMinor: 1500,
      currency: 'eur',
      status: 'pending',
    },
  });
}

/** Everything about the server a sponsor must never change: its row, its subscription, its events, jobs. */
async function serverState(instanceId: string) {
  const instance = await database.db.instance.findUniqueOrThrow({ where: { id: instanceId } });
  const subscription = await database.db.subscription.findUniqueOrThrow({ where: { instanceId } });
  const events = await database.db.event.count({ where: { instanceId } });
  // Every delivery queues its own processing job; any other job would be the server's.
  const [jobs] = await database.db.$queryRaw<{ n: number }[]>`
    select count(*)::int as n from graphile_worker.jobs where task_identifier <> ${STRIPE_WEBHOOK_TASK}`;
  return { instance, subscription, events, jobs: jobs?.n };
}

/** Opens the sponsorship's Checkout at the stand-in and pays it, as the sponsor would. */
async function paidCheckout(stand: StripeStandIn, sponsorship: { id: string; instanceId: string }) {
  await openSponsorCheckout(
    { db: database.db, gateway: stand.gateway, publicUrl: PUBLIC_URL },
    {
      sponsorship: { ...sponsorship, tier: 'gold', sponsorEmail: 'ada@example.test' },
      priceId: stand.price('sponsor:gold').id,
      domain: 'chess.woolly.test',
    },
  );
  const { checkoutSessionId } = await database.db.sponsorship.findUniqueOrThrow({
    where: { id: sponsorship.id },
  });
  const { subscription, invoice } = stand.simulateCheckoutPaid(checkoutSessionId as string);
  return { sessionId: checkoutSessionId as string, subscription, invoice };
}

const inTx = <T>(run: (tx: Parameters<Parameters<TestDatabase['db']['$transaction']>[0]>[0]) => Promise<T>) =>
  database.db.$transaction(run);

describe('requests checked against stripe-mock', { skip: stripeMockSkipReason() }, () => {
  let mock: StripeMock;
  let gateway: StripeGateway;
  const sent: { method: string; params: unknown; idempotencyKey: string }[] = [];

  before(async () => {
    mock = await startStripeMock();
    const real = makeStripeGateway({ secretKey: STRIPE_MOCK_API_KEY, apiUrl: mock.url });
    gateway = {
      ...real,
      async createCheckoutSession(params, idempotencyKey) {
        sent.push({ method: 'createCheckoutSession', params, idempotencyKey });
        return real.createCheckoutSession(params, idempotencyKey);
      },
      async createBalanceTransaction(customerId, params, idempotencyKey) {
        sent.push({ method: 'createBalanceTransaction', params: { customerId, ...params }, idempotencyKey });
        return real.createBalanceTransaction(customerId, params, idempotencyKey);
      },
    };
  });

  after(async () => {
    await mock?.release();
  });

  test("a sponsor's Checkout is a subscription to the tier's price, marked as a sponsorship, keyed by the sponsorship", async () => {
    const server = await runningServer(null);
    const sponsorship = await pendingSponsorship(server);
    const checkout = await openSponsorCheckout(
      { db: database.db, gateway, publicUrl: PUBLIC_URL },
      {
        sponsorship: { ...sponsorship, tier: 'gold' },
        priceId: 'price_sponsor_gold',
        domain: server.domain,
      },
    );
    const request = sent.findLast((entry) => entry.method === 'createCheckoutSession');
    const params = request?.params as Stripe.Checkout.SessionCreateParams;
    const metadata = { kind: 'sponsorship', sponsorshipId: sponsorship.id, instanceId: server.instanceId };
    assert.equal(params.mode, 'subscription');
    assert.deepEqual(params.line_items, [{ price: 'price_sponsor_gold', quantity: 1 }]);
    assert.equal(params.customer_email, sponsorship.sponsorEmail);
    assert.equal(params.client_reference_id, sponsorship.id);
    assert.deepEqual(params.metadata, metadata);
    assert.deepEqual(params.subscription_data?.metadata, metadata);
    assert.equal(params.success_url, `${PUBLIC_URL}/sponsor/${server.domain}?status=paid`);
    assert.equal(params.cancel_url, `${PUBLIC_URL}/sponsor/${server.domain}?status=cancelled`);
    assert.equal(request?.idempotencyKey, `sponsor-checkout:${sponsorship.id}`);
    assert.match(checkout.url, /^https:\/\/checkout\.stripe\.com\//);
    const stored = await database.db.sponsorship.findUniqueOrThrow({ where: { id: sponsorship.id } });
    assert.match(stored.checkoutSessionId ?? '', /^cs_/);
    assert.equal(stored.status, 'pending');
  });

  test("a paid sponsor invoice credits the organization's Stripe balance with a request Stripe accepts", async () => {
    const server = await runningServer('cus_hosting_org');
    const sponsorship = await pendingSponsorship(server, { displayName: 'Ada', showName: true });
    const invoice = sponsorInvoice({ sponsorshipId: sponsorship.id, amountPaid: 1500 });
    await inTx((tx) => creditSponsorPayment(tx, gateway, invoice));
    const request = sent.findLast((entry) => entry.method === 'createBalanceTransaction');
    assert.deepEqual(request?.params, {
      customerId: 'cus_hosting_org',
      amount: -1500,
      currency: 'eur',
      description: 'Sponsorship gold from Ada',
      metadata: {
        kind: 'sponsorship_credit',
        sponsorshipId: sponsorship.id,
        instanceId: server.instanceId,
        invoiceId: invoice.id,
      },
    });
    assert.equal(request?.idempotencyKey, `sponsor-credit:${invoice.id}`);
    const payment = await database.db.sponsorshipPayment.findUniqueOrThrow({
      where: { providerInvoiceId: invoice.id },
    });
    assert.equal(payment.amountMinor, 1500);
    assert.match(payment.creditTransactionId ?? '', /^cbtxn_/);
    assert.ok(payment.creditedAt);
  });
});

/** A paid invoice of a sponsor's subscription, as Stripe would have it. */
function sponsorInvoice(options: {
  sponsorshipId: string;
  amountPaid: number;
  status?: StripeInvoice['status'];
}): StripeInvoice {
  return {
    id: `in_${randomUUID().replaceAll('-', '').slice(0, 20)}`,
    customer: 'cus_sponsor',
    status: options.status ?? 'paid',
    total: options.amountPaid,
    amount_paid: options.status === 'open' ? 0 : options.amountPaid,
    currency: 'eur',
    period_start: 1_798_761_600,
    period_end: 1_801_440_000,
    due_date: null,
    status_transitions: {
      finalized_at: null,
      marked_uncollectible_at: null,
      paid_at: 1_798_761_700,
      voided_at: null,
    },
    parent: {
      type: 'subscription_details',
      quote_details: null,
      subscription_details: {
        subscription: 'sub_unlinked',
        metadata: { kind: 'sponsorship', sponsorshipId: options.sponsorshipId },
      },
    },
    lines: { object: 'list', data: [], has_more: false, url: '' },
    metadata: {},
  } as unknown as StripeInvoice;
}

describe('activation (stateful stand-in)', () => {
  test('a paid Checkout makes the sponsorship active, linked to its subscription and customer', async () => {
    const stand = stripeStandIn();
    const server = await runningServer(null);
    const sponsorship = await pendingSponsorship(server);
    const { sessionId, subscription } = await paidCheckout(stand, sponsorship);
    const session = await stand.gateway.retrieveCheckoutSession(sessionId);
    for (let delivery = 0; delivery < 2; delivery++) {
      await inTx((tx) => activateSponsorship(tx, stand.gateway, session));
    }
    const active = await database.db.sponsorship.findUniqueOrThrow({ where: { id: sponsorship.id } });
    assert.equal(active.status, 'active');
    assert.equal(active.providerId, subscription.id);
    assert.equal(active.stripeCustomerId, subscription.customer);
    assert.ok(active.startedAt);
    assert.equal(active.endedAt, null);
  });

  test('the subscription arriving before its Checkout gives the same result', async () => {
    const stand = stripeStandIn();
    const server = await runningServer(null);
    const sponsorship = await pendingSponsorship(server);
    const { sessionId, subscription } = await paidCheckout(stand, sponsorship);
    await inTx((tx) => syncSponsorship(tx, subscription));
    const early = await database.db.sponsorship.findUniqueOrThrow({ where: { id: sponsorship.id } });
    await inTx(async (tx) =>
      activateSponsorship(tx, stand.gateway, await stand.gateway.retrieveCheckoutSession(sessionId)),
    );
    const after = await database.db.sponsorship.findUniqueOrThrow({ where: { id: sponsorship.id } });
    assert.equal(after.status, 'active');
    assert.equal(after.providerId, subscription.id);
    assert.deepEqual(after.startedAt, early.startedAt, 'the start is the first time it was seen active');
  });

  test('an unpaid Checkout leaves the sponsorship pending', async () => {
    const stand = stripeStandIn();
    const server = await runningServer(null);
    const sponsorship = await pendingSponsorship(server);
    await openSponsorCheckout(
      { db: database.db, gateway: stand.gateway, publicUrl: PUBLIC_URL },
      {
        sponsorship: { ...sponsorship, tier: 'gold' },
        priceId: stand.price('sponsor:gold').id,
        domain: server.domain,
      },
    );
    const { checkoutSessionId } = await database.db.sponsorship.findUniqueOrThrow({
      where: { id: sponsorship.id },
    });
    const open = await stand.gateway.retrieveCheckoutSession(checkoutSessionId as string);
    await inTx((tx) => activateSponsorship(tx, stand.gateway, open));
    const row = await database.db.sponsorship.findUniqueOrThrow({ where: { id: sponsorship.id } });
    assert.equal(row.status, 'pending');
    assert.equal(row.providerId, null);
  });

  test('a Checkout naming no known sponsorship throws, so the job is retried', async () => {
    const stand = stripeStandIn();
    const session = await stand.gateway.createCheckoutSession(
      {
        mode: 'subscription',
        line_items: [{ price: stand.price('sponsor:gold').id, quantity: 1 }],
        client_reference_id: randomUUID(),
        metadata: { kind: 'sponsorship', sponsorshipId: randomUUID() },
      },
      randomUUID(),
    );
    stand.simulateCheckoutPaid(session.id);
    const paid = await stand.gateway.retrieveCheckoutSession(session.id);
    await assert.rejects(
      inTx((tx) => activateSponsorship(tx, stand.gateway, paid)),
      /names no known sponsorship/,
    );
  });
});

describe('status sync (stateful stand-in)', () => {
  test("a sponsor's failed renewal makes it past due, paying makes it active, cancelling ends it for good", async () => {
    const stand = stripeStandIn();
    const server = await runningServer(null);
    const sponsorship = await pendingSponsorship(server);
    const { subscription } = await paidCheckout(stand, sponsorship);
    const statusAfter = async () => {
      await inTx(async (tx) =>
        syncSponsorship(tx, await stand.gateway.retrieveSubscription(subscription.id)),
      );
      return database.db.sponsorship.findUniqueOrThrow({ where: { id: sponsorship.id } });
    };
    assert.equal((await statusAfter()).status, 'active');
    const failed = stand.simulateRenewalFailed(subscription.id);
    assert.equal((await statusAfter()).status, 'past_due');
    stand.simulateInvoicePaid(failed.id);
    assert.equal((await statusAfter()).status, 'active');
    const activeCopy = await stand.gateway.retrieveSubscription(subscription.id);
    await stand.gateway.cancelSubscription(subscription.id, randomUUID());
    const ended = await statusAfter();
    assert.equal(ended.status, 'canceled');
    assert.ok(ended.endedAt);
    await inTx((tx) => syncSponsorship(tx, activeCopy));
    const still = await database.db.sponsorship.findUniqueOrThrow({ where: { id: sponsorship.id } });
    assert.equal(still.status, 'canceled', 'an older copy never revives a canceled sponsorship');
    assert.deepEqual(still.endedAt, ended.endedAt);
  });

  test('a subscription of no known sponsorship throws, so the job is retried', async () => {
    const stand = stripeStandIn();
    const session = await stand.gateway.createCheckoutSession(
      {
        mode: 'subscription',
        line_items: [{ price: stand.price('sponsor:gold').id, quantity: 1 }],
        subscription_data: { metadata: { kind: 'sponsorship', sponsorshipId: randomUUID() } },
      },
      randomUUID(),
    );
    const { subscription } = stand.simulateCheckoutPaid(session.id);
    await assert.rejects(
      inTx((tx) => syncSponsorship(tx, subscription)),
      /no sponsorship for Stripe subscription/,
    );
  });
});

describe('crediting the hosting organization (stateful stand-in)', () => {
  test('three deliveries of one paid invoice, even at once, record one payment and credit once', async () => {
    const stand = stripeStandIn();
    const orgCustomer = await stand.gateway.createCustomer({ name: 'hosting' }, randomUUID());
    const server = await runningServer(orgCustomer.id);
    const sponsorship = await pendingSponsorship(server, { displayName: 'Ada', showName: true });
    const { invoice } = await paidCheckout(stand, sponsorship);
    await Promise.all(
      [1, 2, 3].map(() =>
        inTx(async (tx) =>
          creditSponsorPayment(tx, stand.gateway, await stand.gateway.retrieveInvoice(invoice.id)),
        ),
      ),
    );
    const payments = await database.db.sponsorshipPayment.findMany({
      where: { sponsorshipId: sponsorship.id },
    });
    assert.equal(payments.length, 1);
    assert.equal(payments[0]?.amountMinor, 1500);
    assert.equal(payments[0]?.providerInvoiceId, invoice.id);
    const credits = stand.writes.filter((write) => write.method === 'createBalanceTransaction');
    assert.equal(credits.length, 1, 'Stripe was asked once');
    assert.equal(credits[0]?.idempotencyKey, `sponsor-credit:${invoice.id}`);
    const customer = stand.customers.get(orgCustomer.id);
    assert.equal(customer?.balance, -1500, "the organization's next invoice is 15 € lower");
    assert.equal(customer?.balanceTransactions[0]?.description, 'Sponsorship gold from Ada');
    assert.equal(payments[0]?.creditTransactionId, customer?.balanceTransactions[0]?.id);
  });

  test('a sponsor who chose not to be shown is "an anonymous sponsor" on the invoice, never by name or address', async () => {
    const stand = stripeStandIn();
    const orgCustomer = await stand.gateway.createCustomer({ name: 'hosting' }, randomUUID());
    const server = await runningServer(orgCustomer.id);
    const sponsorship = await pendingSponsorship(server, { displayName: 'Secret Sam', showName: false });
    const { invoice } = await paidCheckout(stand, sponsorship);
    await inTx((tx) => creditSponsorPayment(tx, stand.gateway, invoice));
    const [credit] = stand.customers.get(orgCustomer.id)?.balanceTransactions ?? [];
    assert.equal(credit?.description, 'Sponsorship gold from an anonymous sponsor');
    const sent = JSON.stringify(stand.writes.find((write) => write.method === 'createBalanceTransaction'));
    assert.ok(!sent.includes('Secret Sam') && !sent.includes(sponsorship.sponsorEmail));
  });

  test('an organization without a Stripe customer gets one, and the credit', async () => {
    const stand = stripeStandIn();
    const server = await runningServer(null);
    const sponsorship = await pendingSponsorship(server);
    const { invoice } = await paidCheckout(stand, sponsorship);
    await inTx((tx) => creditSponsorPayment(tx, stand.gateway, invoice));
    const organization = await database.db.organization.findUniqueOrThrow({
      where: { id: server.organizationId },
    });
    assert.ok(organization.stripeCustomerId);
    assert.notEqual(organization.stripeCustomerId, invoice.customer, "not the sponsor's own customer");
    assert.equal(stand.customers.get(organization.stripeCustomerId)?.balance, -1500);
  });

  test('an unpaid sponsor invoice records and credits nothing', async () => {
    const stand = stripeStandIn();
    const orgCustomer = await stand.gateway.createCustomer({ name: 'hosting' }, randomUUID());
    const server = await runningServer(orgCustomer.id);
    const sponsorship = await pendingSponsorship(server);
    const { subscription } = await paidCheckout(stand, sponsorship);
    const open = stand.simulateRenewalFailed(subscription.id);
    await inTx((tx) => creditSponsorPayment(tx, stand.gateway, open));
    assert.equal(await database.db.sponsorshipPayment.count({ where: { providerInvoiceId: open.id } }), 0);
    assert.equal(stand.customers.get(orgCustomer.id)?.balance, 0);
  });
});

describe("a sponsor's payments never touch the server (through the webhook dispatch)", () => {
  test("a sponsor's failed payment and cancellation leave the server running and its subscription untouched", async () => {
    const stand = stripeStandIn();
    const orgCustomer = await stand.gateway.createCustomer({ name: 'hosting' }, randomUUID());
    const server = await runningServer(orgCustomer.id);
    const sponsorship = await pendingSponsorship(server);
    const serverReactions: string[] = [];
    const reactions: SubscriptionReactions = {
      pastDue: async () => void serverReactions.push('pastDue'),
      settled: async () => void serverReactions.push('settled'),
      ended: async () => void serverReactions.push('ended'),
    };
    const deliver = async (type: string, object: { id: string }) => {
      const event = stand.event(type, object);
      await recordStripeEvent(database.db, event, JSON.stringify(event));
      const outcome = await processStripeEvent(
        { db: database.db, log, gateway: stand.gateway, reactions, sponsorships: sponsorshipReactions },
        event.id,
      );
      assert.equal(outcome, 'processed');
    };
    const { sessionId, subscription, invoice } = await paidCheckout(stand, sponsorship);
    await deliver('checkout.session.completed', { id: sessionId });
    await deliver('invoice.paid', { id: invoice.id });
    const before = await serverState(server.instanceId);

    const failed = stand.simulateRenewalFailed(subscription.id);
    await deliver('invoice.payment_failed', { id: failed.id });
    await deliver('customer.subscription.updated', { id: subscription.id });
    assert.equal(
      (await database.db.sponsorship.findUniqueOrThrow({ where: { id: sponsorship.id } })).status,
      'past_due',
    );
    await stand.gateway.cancelSubscription(subscription.id, randomUUID());
    await deliver('customer.subscription.deleted', { id: subscription.id });

    const ended = await database.db.sponsorship.findUniqueOrThrow({ where: { id: sponsorship.id } });
    assert.equal(ended.status, 'canceled');
    assert.deepEqual(serverReactions, [], 'dunning never heard of the sponsor');
    const afterwards = await serverState(server.instanceId);
    assert.deepEqual(afterwards, before);
    assert.equal(afterwards.instance.status, 'running');
    assert.equal(afterwards.subscription.status, 'active');
    assert.equal(stand.customers.get(orgCustomer.id)?.balance, -1500, 'only the paid invoice was credited');
  });
});
