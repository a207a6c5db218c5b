import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { PassThrough } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import Stripe from 'stripe';
import type { StripeGateway, StripeInvoice } from '../../billing/stripe-gateway.ts';
import { processStripeEvent, STRIPE_WEBHOOK_TASK, stripeWebhookTasks } from '../../billing/webhooks.ts';
import { makeLogger } from '../../core/log.ts';
import { startWorker } from '../../core/worker.ts';
import { call, startTestApp, type TestApp } from '../support/app.ts';
import { makeTestDatabase, type TestDatabase } from '../support/db.ts';
import { createOrganization, createUserWithToken } from '../support/factories.ts';
import { stripeStandIn } from '../support/stripe-stand-in.ts';

const WEBHOOK_SECRET = `whsec_${randomBytes(24).toString('hex')}`;

/**
 * The stateful stand-in for Stripe's API (test/support/stripe-stand-in.ts), its invoice reads
 * counted and made to fail on demand. stripe-mock cannot serve here: it is stateless and
 * answers every retrieve with the same fixture.
 */
function statefulStripeStandIn() {
  const stand = stripeStandIn();
  const reads = new Map<string, number>();
  let failNextRead = false;
  const gateway: StripeGateway = {
    ...stand.gateway,
    async retrieveInvoice(id) {
      if (failNextRead) {
        failNextRead = false;
        throw new Error('Stripe is unreachable (injected)');
      }
      reads.set(id, (reads.get(id) ?? 0) + 1);
      return stand.gateway.retrieveInvoice(id);
    },
  };
  return {
    gateway,
    /** Sets the invoice as Stripe has it now. */
    setInvoice(invoice: Pick<StripeInvoice, 'id' | 'customer' | 'status'> & Partial<StripeInvoice>) {
      stand.invoices.set(invoice.id, {
        total: 1200,
        amount_paid: 0,
        currency: 'eur',
        period_start: 1_798_761_600,
        period_end: 1_801_440_000,
        due_date: null,
        status_transitions: {
          finalized_at: null,
          marked_uncollectible_at: null,
          paid_at: null,
          voided_at: null,
        },
        parent: null,
        lines: { object: 'list', data: [], has_more: false, url: '' },
        metadata: {},
        ...invoice,
      });
    },
    reads: (id: string) => reads.get(id) ?? 0,
    failNextRead() {
      failNextRead = true;
    },
  };
}

/** These invoices belong to no subscription: nothing here may set off dunning or sponsorships. */
const unexpected = async (): Promise<never> => {
  throw new Error('no subscription is involved in these tests');
};
const noSubscriptions = {
  reactions: { pastDue: unexpected, settled: unexpected, ended: unexpected },
  sponsorships: { activate: unexpected, sync: unexpected, credit: unexpected },
};

let database: TestDatabase;
let app: TestApp;
let stripe: ReturnType<typeof statefulStripeStandIn>;
const logLines: string[] = [];
const logStream = new PassThrough();
logStream.on('data', (chunk: Buffer) => logLines.push(chunk.toString('utf8')));
const log = makeLogger({ log: { level: 'debug', format: 'json' } }, logStream);

before(async () => {
  database = await makeTestDatabase();
  app = await startTestApp(database, {
    WOOLLY_BILLING_PROVIDER: 'stripe',
    WOOLLY_STRIPE_SECRET_KEY: 'sk_test_webhooks',
    WOOLLY_STRIPE_WEBHOOK_SECRET: WEBHOOK_SECRET,
    // Low, so the test shows Stripe's deliveries are not held to it.
    WOOLLY_RATE_LIMIT_ANONYMOUS_PER_MINUTE: '2',
  });
  stripe = statefulStripeStandIn();
});

after(async () => {
  await app.release();
  await database.release();
});

const newId = (prefix: string) => `${prefix}_${randomBytes(12).toString('hex')}`;

/** Links `customer` to an organization of its own, as Checkout will. */
async function linkCustomer(customer: string): Promise<string> {
  const { userId } = await createUserWithToken(database.db);
  const organizationId = await createOrganization(database.db, userId);
  await database.db.organization.update({
    where: { id: organizationId },
    data: { stripeCustomerId: customer },
  });
  return organizationId;
}

/** A Stripe customer with its organization. */
async function newCustomer(): Promise<string> {
  const id = newId('cus');
  await linkCustomer(id);
  return id;
}

/** A Stripe event as Stripe sends it: pretty-printed, so only the raw bytes verify. */
function stripeEvent(type: string, object: Record<string, unknown>, id = newId('evt')): string {
  return JSON.stringify(
    {
      id,
      object: 'event',
      api_version: Stripe.API_VERSION,
      created: Math.floor(Date.now() / 1000),
      type,
      data: { object },
      livemode: false,
      pending_webhooks: 1,
      request: { id: null, idempotency_key: null },
    },
    null,
    2,
  );
}

function sign(payload: string, options: { secret?: string; timestamp?: number } = {}): string {
  return Stripe.webhooks.generateTestHeaderString({
    payload,
    secret: options.secret ?? WEBHOOK_SECRET,
    ...(options.timestamp === undefined ? {} : { timestamp: options.timestamp }),
  });
}

function deliver(payload: string, signature: string | null = sign(payload), url = app.url) {
  return call(`${url}/v1/webhooks/stripe`, {
    method: 'POST',
    rawBody: payload,
    headers: signature === null ? {} : { 'stripe-signature': signature },
  });
}

const eventIdOf = (payload: string) => (JSON.parse(payload) as { id: string }).id;

async function storedEvents(id: string) {
  return database.db.webhookEvent.findMany({ where: { id } });
}

async function queuedJobs(key: string): Promise<number> {
  const [row] = await database.db.$queryRaw<{ n: number }[]>`
    select count(*)::int as n from graphile_worker.jobs where task_identifier = ${STRIPE_WEBHOOK_TASK} and key = ${key}`;
  return row?.n ?? 0;
}

/** Runs a real job runner over the queue until every webhook job is done; fails on a failed job. */
async function processQueued(): Promise<void> {
  const worker = await startWorker({
    databaseUrl: database.url,
    concurrency: 4,
    log,
    tasks: stripeWebhookTasks({
      db: database.db,
      log,
      gateway: stripe.gateway,
      ...noSubscriptions,
    }),
    crontab: '',
    pollIntervalMs: 50,
  });
  try {
    const deadline = Date.now() + 20_000;
    for (;;) {
      const rows = await database.db.$queryRaw<{ pending: number; failed: string | null }[]>`
        select count(*)::int as pending, max(last_error) as failed
          from graphile_worker.jobs where task_identifier = ${STRIPE_WEBHOOK_TASK}`;
      const { pending, failed } = rows[0] ?? { pending: 0, failed: null };
      if (failed) assert.fail(`a webhook job failed: ${failed}`);
      if (pending === 0) return;
      if (Date.now() > deadline) assert.fail('webhook jobs still queued after 20 s');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  } finally {
    await worker.release();
  }
}

async function mirrored(invoiceId: string) {
  return database.db.invoice.findMany({ where: { providerId: invoiceId } });
}

describe('POST /v1/webhooks/stripe refuses what Stripe did not sign, and stores nothing', () => {
  const refusals: [string, () => { payload: string; signature: string | null }][] = [
    [
      'a signature made with another secret',
      () => {
        const payload = stripeEvent('invoice.paid', { id: newId('in') });
        return { payload, signature: sign(payload, { secret: 'whsec_someone_else' }) };
      },
    ],
    [
      'a body changed after signing',
      () => {
        const payload = stripeEvent('invoice.paid', { id: newId('in') });
        return {
          payload: payload.replace('"livemode": false', '"livemode": true'),
          signature: sign(payload),
        };
      },
    ],
    [
      'a signed timestamp older than the 300 s tolerance',
      () => {
        const payload = stripeEvent('invoice.paid', { id: newId('in') });
        return { payload, signature: sign(payload, { timestamp: Math.floor(Date.now() / 1000) - 301 }) };
      },
    ],
    [
      'no Stripe-Signature header',
      () => ({ payload: stripeEvent('invoice.paid', { id: newId('in') }), signature: null }),
    ],
  ];
  for (const [what, make] of refusals) {
    test(`${what}: 400 invalid_signature`, async () => {
      const { payload, signature } = make();
      const response = await deliver(payload, signature);
      assert.equal(response.status, 400);
      assert.equal(response.body.code, 'invalid_signature');
      assert.equal(response.body.title, 'The webhook signature is invalid');
      assert.deepEqual(await storedEvents(eventIdOf(payload)), []);
      assert.equal(await queuedJobs(eventIdOf(payload)), 0);
    });
  }

  test('a signature from within the tolerance is accepted (the same event 299 s old)', async () => {
    const payload = stripeEvent('customer.created', { id: newId('cus') });
    const response = await deliver(
      payload,
      sign(payload, { timestamp: Math.floor(Date.now() / 1000) - 299 }),
    );
    assert.equal(response.status, 200);
    await processQueued();
  });
});

test('three deliveries of one event store one row, queue one job and mirror the invoice once, none refused by the anonymous rate limit', async () => {
  const invoiceId = newId('in');
  const customer = newId('cus');
  const organizationId = await linkCustomer(customer);
  stripe.setInvoice({ id: invoiceId, customer, status: 'paid', total: 4200 });
  const payload = stripeEvent('invoice.paid', { id: invoiceId, customer, status: 'paid' });
  const signature = sign(payload);
  const eventId = eventIdOf(payload);

  // Above the anonymous limit of 2 a minute set for this app: Stripe's retries still pass.
  for (let delivery = 1; delivery <= 3; delivery++) {
    const response = await deliver(payload, signature);
    assert.equal(response.status, 200, `delivery ${delivery}: ${JSON.stringify(response.body)}`);
    assert.deepEqual(response.body, { received: true });
  }
  const [stored, ...others] = await storedEvents(eventId);
  assert.ok(stored);
  assert.equal(others.length, 0);
  assert.equal(stored.provider, 'stripe');
  assert.equal(stored.type, 'invoice.paid');
  assert.equal((stored.payload as { id: string }).id, eventId);
  assert.equal(stored.processedAt, null, 'answered before processing');
  assert.equal(await queuedJobs(eventId), 1);

  await processQueued();
  assert.equal(stripe.reads(invoiceId), 1, 'the handler ran once');
  const [invoice, ...more] = await mirrored(invoiceId);
  assert.equal(more.length, 0);
  assert.equal(invoice?.organizationId, organizationId);
  assert.equal(invoice?.status, 'paid');
  assert.equal(invoice?.totalMinor, 4200);
  assert.ok((await storedEvents(eventId))[0]?.processedAt);

  // A fourth delivery after processing, and the job run again: nothing happens.
  assert.equal((await deliver(payload, sign(payload))).status, 200);
  assert.equal(await queuedJobs(eventId), 0, 'a repeat queues nothing');
  await database.db.$executeRaw`
    select graphile_worker.add_job(${STRIPE_WEBHOOK_TASK}, json_build_object('v', 1, 'eventId', ${eventId}::text), job_key := ${eventId}::text)`;
  await processQueued();
  assert.equal(stripe.reads(invoiceId), 1, 'a replayed job does nothing');

  // Other anonymous requests are still held to the limit the webhooks did not use.
  const statuses = [];
  for (let i = 0; i < 3; i++) statuses.push((await call(`${app.url}/v1/plans`)).status);
  assert.deepEqual(statuses, [200, 200, 429]);
});

test('a late invoice.payment_failed after invoice.paid leaves the mirror at the state Stripe has now', async () => {
  const invoiceId = newId('in');
  const customer = await newCustomer();
  // The payment failed first, then a retry succeeded: Stripe now says paid.
  stripe.setInvoice({ id: invoiceId, customer, status: 'paid' });
  const paid = stripeEvent('invoice.paid', { id: invoiceId, customer, status: 'paid' });
  assert.equal((await deliver(paid)).status, 200);
  await processQueued();
  assert.equal((await mirrored(invoiceId))[0]?.status, 'paid');

  const late = stripeEvent('invoice.payment_failed', { id: invoiceId, customer, status: 'open' });
  assert.equal((await deliver(late)).status, 200);
  await processQueued();
  const rows = await mirrored(invoiceId);
  assert.equal(rows.length, 1);
  assert.equal(rows[0]?.status, 'paid', 'the older event did not overwrite the newer state');
  assert.equal(stripe.reads(invoiceId), 2, 're-read for each event');

  // The re-read wins the other way too: an old invoice.paid after the invoice was voided.
  stripe.setInvoice({ id: invoiceId, customer, status: 'void', total: 0 });
  assert.equal((await deliver(stripeEvent('invoice.paid', { id: invoiceId, customer }))).status, 200);
  await processQueued();
  assert.equal((await mirrored(invoiceId))[0]?.status, 'void');
  assert.equal((await mirrored(invoiceId))[0]?.totalMinor, 0);
});

test('events of several invoices delivered in shuffled order, each twice, end in the state Stripe has', async () => {
  const customer = await newCustomer();
  const finalState = new Map<string, string>();
  const payloads: string[] = [];
  for (const [index, status] of ['paid', 'open', 'paid', 'uncollectible'].entries()) {
    const invoiceId = newId('in');
    stripe.setInvoice({ id: invoiceId, customer, status, total: 1000 + index });
    finalState.set(invoiceId, status);
    for (const type of ['invoice.finalized', 'invoice.payment_failed', 'invoice.paid']) {
      payloads.push(stripeEvent(type, { id: invoiceId, customer }));
    }
  }
  // A fixed shuffle (reproducible), each event delivered twice, the repeats shuffled in too.
  const deliveries = [...payloads, ...payloads]
    .map((payload, index) => ({ payload, rank: (index * 7919) % 97 }))
    .sort((a, b) => a.rank - b.rank)
    .map(({ payload }) => payload);
  for (const payload of deliveries) assert.equal((await deliver(payload)).status, 200);
  const stored = await database.db.webhookEvent.count({ where: { id: { in: payloads.map(eventIdOf) } } });
  assert.equal(stored, payloads.length);

  await processQueued();
  for (const [invoiceId, status] of finalState) {
    const rows = await mirrored(invoiceId);
    assert.equal(rows.length, 1, invoiceId);
    assert.equal(rows[0]?.status, status, invoiceId);
    assert.equal(stripe.reads(invoiceId), 3, 'each event processed once');
  }
});

test('an unknown event type is stored and marked processed with no effect, logged at debug', async () => {
  const invoicesBefore = await database.db.invoice.count();
  const payload = stripeEvent('customer.tax_id.created', { id: newId('txi') });
  assert.equal((await deliver(payload)).status, 200);
  await processQueued();
  const [stored] = await storedEvents(eventIdOf(payload));
  assert.equal(stored?.type, 'customer.tax_id.created');
  assert.ok(stored?.processedAt, 'processed');
  assert.equal(await database.db.invoice.count(), invoicesBefore);
  const line = logLines.find((text) => text.includes(eventIdOf(payload)) && text.includes('not handled'));
  assert.ok(line, 'a debug line names the event');
  assert.equal(JSON.parse(line).level, 'debug');
});

test('a crash mid-way leaves the event unprocessed and the retry applies it once', async () => {
  const invoiceId = newId('in');
  const customer = await newCustomer();
  stripe.setInvoice({ id: invoiceId, customer, status: 'open' });
  const payload = stripeEvent('invoice.finalized', { id: invoiceId, customer });
  assert.equal((await deliver(payload)).status, 200);
  const deps = {
    db: database.db,
    log,
    gateway: stripe.gateway,
    ...noSubscriptions,
  };
  stripe.failNextRead();
  await assert.rejects(processStripeEvent(deps, eventIdOf(payload)), /unreachable/);
  assert.equal((await storedEvents(eventIdOf(payload)))[0]?.processedAt, null);
  assert.deepEqual(await mirrored(invoiceId), []);

  assert.equal(await processStripeEvent(deps, eventIdOf(payload)), 'processed');
  assert.equal(await processStripeEvent(deps, eventIdOf(payload)), 'already_processed');
  assert.equal((await mirrored(invoiceId))[0]?.status, 'open');
  assert.equal(stripe.reads(invoiceId), 1);
  await processQueued();
  assert.equal(stripe.reads(invoiceId), 1, 'the queued job finds it processed');
});

test('an invoice of a customer no organization has is retried, not dropped', async () => {
  const invoiceId = newId('in');
  const stranger = newId('cus');
  stripe.setInvoice({ id: invoiceId, customer: stranger, status: 'paid' });
  const payload = stripeEvent('invoice.paid', { id: invoiceId, customer: stranger });
  assert.equal((await deliver(payload)).status, 200);
  const deps = {
    db: database.db,
    log,
    gateway: stripe.gateway,
    ...noSubscriptions,
  };
  await assert.rejects(processStripeEvent(deps, eventIdOf(payload)), /no organization for Stripe customer/);
  assert.equal((await storedEvents(eventIdOf(payload)))[0]?.processedAt, null);
  await linkCustomer(stranger);
  await processQueued();
  assert.equal((await mirrored(invoiceId))[0]?.status, 'paid');
});

test('without the stripe provider the endpoint answers 404 and stores nothing', async () => {
  const plain = await startTestApp(database);
  try {
    const payload = stripeEvent('invoice.paid', { id: newId('in') });
    const response = await deliver(payload, sign(payload), plain.url);
    assert.equal(response.status, 404);
    assert.equal(response.body.code, 'not_found');
    assert.deepEqual(await storedEvents(eventIdOf(payload)), []);
  } finally {
    await plain.release();
  }
});
