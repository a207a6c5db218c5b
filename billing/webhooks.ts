import { randomUUID } from 'node:crypto';
import type { JobHelpers, Task } from 'graphile-worker';
import { z } from 'zod';
import { type Db, execute, type SqlClient, type Tx } from '../core/db.ts';
import type { Logger } from '../core/log.ts';
import type {
  StripeCheckoutSession,
  StripeGateway,
  StripeInvoice,
  StripeSubscription,
} from './stripe-gateway.ts';
import { stripeIdOf } from './stripe-gateway.ts';
import {
  completeServerCheckout,
  lockStripeObject,
  mirrorServerSubscription,
  type SubscriptionReactions,
} from './subscriptions.ts';

/** The job that processes one stored Stripe event; its job key is the event id. */
export const STRIPE_WEBHOOK_TASK = 'billing:webhook';

/** Job payload, version 1. */
const webhookJobPayload = z.object({ v: z.literal(1), eventId: z.string().min(1) });

/** What Woolly reads of a stored Stripe event; the rest of the payload is kept, not trusted. */
export interface StripeEventPayload {
  id: string;
  type: string;
  data: { object: { id?: string } };
}

/**
 * Stores a verified Stripe event once, by its id, and only when it is new queues its
 * processing (`STRIPE_WEBHOOK_TASK`, job key = event id), in one statement: a repeated
 * delivery stores and queues nothing. `payload` is the verified raw body. Returns whether the
 * event was new.
 */
export async function recordStripeEvent(
  client: SqlClient,
  event: { id: string; type: string },
  payload: string,
): Promise<boolean> {
  const queued = await execute(client, {
    name: 'stripe-webhook-record',
    text: `with inserted as (
             insert into "WebhookEvent" (id, provider, type, payload)
             values ($1, 'stripe', $2, $3::jsonb)
             on conflict (id) do nothing
             returning id)
           select graphile_worker.add_job($4::text, json_build_object('v', 1, 'eventId', id),
                    job_key := id, max_attempts := 25)
             from inserted`,
    values: [event.id, event.type, payload, STRIPE_WEBHOOK_TASK],
  });
  return queued > 0;
}

/**
 * What a handler works with: the transaction its writes go in, its job's logger, and what
 * a server subscription's changes set off (dunning, the end of a server).
 */
export interface StripeEventContext {
  tx: Tx;
  log: Logger;
  reactions: SubscriptionReactions;
  sponsorships: SponsorshipReactions;
}

/** What a sponsor's Checkout, subscription and invoices set off (billing/sponsorships.ts). */
export interface SponsorshipReactions {
  activate(tx: Tx, gateway: StripeGateway, session: StripeCheckoutSession): Promise<void>;
  sync(tx: Tx, subscription: StripeSubscription): Promise<void>;
  credit(tx: Tx, gateway: StripeGateway, invoice: StripeInvoice): Promise<void>;
}

/**
 * Acts on one event type. Runs inside the transaction that marks the event processed, so its
 * writes and the mark commit together. Throwing rolls both back and the job is retried.
 */
export type StripeEventHandler = (
  event: StripeEventPayload,
  gateway: StripeGateway,
  context: StripeEventContext,
) => Promise<void>;

function objectId(event: StripeEventPayload): string {
  const id = event.data.object.id;
  if (!id) throw new Error(`Stripe event ${event.id} (${event.type}) names no object id`);
  return id;
}

/** What a subscription's metadata says it pays for: a server (default) or a sponsorship. */
const kindOf = (metadata: Record<string, string> | null | undefined) =>
  metadata?.kind === 'sponsorship' ? 'sponsorship' : 'server';

/** Which service a line bills, from the fixed product ids of the catalog (billing/catalog-sync.ts). */
function serviceOf(product: string | null): string {
  if (!product) return 'other';
  if (product.startsWith('woolly_plan_')) return 'plan';
  if (product.startsWith('woolly_addon_')) return 'addon';
  if (product.startsWith('woolly_sponsor_')) return 'sponsorship';
  const meter = product.replace(/^woolly_usage_/, '');
  return (
    { storage_gb_hours: 'storage', search_hours: 'search', active_users: 'community_fees' }[meter] ?? 'other'
  );
}

/** An invoice's lines as Woolly keeps them (the same shape as invoices rendered from the ledger). */
function invoiceLines(invoice: StripeInvoice) {
  return invoice.lines.data.map((line) => ({
    service: serviceOf(line.pricing?.price_details?.product ?? null),
    description: line.description ?? '',
    quantity: line.quantity ?? 0,
    amountMinor: line.amount,
  }));
}

/**
 * Mirrors a server's invoice as Stripe has it now (events of one invoice arrive in any order:
 * a late `invoice.payment_failed` after `invoice.paid`, so the event's copy is ignored), then
 * mirrors its subscription the same way, which is what moves dunning: Stripe marks the
 * subscription past due when a renewal fails and active again when it is paid. A sponsor's
 * invoice is the sponsorship's business, never the server's.
 */
const syncInvoice: StripeEventHandler = async (event, gateway, context) => {
  const { tx } = context;
  const invoiceId = objectId(event);
  await lockStripeObject(tx, invoiceId);
  const invoice = await gateway.retrieveInvoice(invoiceId);
  const parent = invoice.parent?.subscription_details ?? null;
  if (kindOf(parent?.metadata) === 'sponsorship') {
    if (invoice.status === 'paid') await context.sponsorships.credit(tx, gateway, invoice);
    return;
  }
  const customerId = stripeIdOf(invoice.customer);
  if (!customerId) throw new Error(`Stripe invoice ${invoiceId} has no customer`);
  const organizationId = (
    await tx.organization.findUnique({ where: { stripeCustomerId: customerId }, select: { id: true } })
  )?.id;
  // Retried with the queue's backoff: the customer may belong to a Checkout not processed yet.
  if (!organizationId) throw new Error(`no organization for Stripe customer ${customerId} (yet)`);
  const instanceId = parent?.metadata?.instanceId ?? null;
  const subscriptionId = stripeIdOf(parent?.subscription);
  const paidAt = invoice.status_transitions?.paid_at ?? null;
  const lines = JSON.stringify(invoiceLines(invoice));
  await tx.$executeRaw`
    insert into "Invoice" (id, "organizationId", "providerId", status, "totalMinor", currency,
                           "periodStart", "periodEnd", "instanceId", "providerSubscriptionId", lines,
                           "amountPaidMinor", "dueAt", "paidAt")
    values (${randomUUID()}::uuid, ${organizationId}::uuid, ${invoiceId}, ${invoice.status ?? 'draft'},
            ${invoice.total}::int, ${invoice.currency}, to_timestamp(${invoice.period_start}::bigint),
            to_timestamp(${invoice.period_end}::bigint), ${instanceId}::uuid, ${subscriptionId},
            ${lines}::jsonb, ${invoice.amount_paid}::int,
            to_timestamp(${invoice.due_date}::bigint), to_timestamp(${paidAt}::bigint))
    on conflict ("providerId") do update
      set status = excluded.status, "totalMinor" = excluded."totalMinor", currency = excluded.currency,
          "periodStart" = excluded."periodStart", "periodEnd" = excluded."periodEnd",
          "instanceId" = excluded."instanceId", "providerSubscriptionId" = excluded."providerSubscriptionId",
          lines = excluded.lines, "amountPaidMinor" = excluded."amountPaidMinor",
          "dueAt" = excluded."dueAt", "paidAt" = excluded."paidAt"`;
  if (subscriptionId && event.type !== 'invoice.finalized') {
    await mirrorSubscription(subscriptionId, gateway, context);
  }
};

/** Mirrors the subscription as Stripe has it now: a server's, or a sponsorship's. */
async function mirrorSubscription(
  subscriptionId: string,
  gateway: StripeGateway,
  { tx, reactions, sponsorships }: StripeEventContext,
): Promise<void> {
  const subscription = await gateway.retrieveSubscription(subscriptionId);
  if (kindOf(subscription.metadata) === 'sponsorship') {
    await sponsorships.sync(tx, subscription);
  } else {
    await mirrorServerSubscription(tx, subscription, reactions);
  }
}

/** `customer.subscription.*`: the event names the subscription; Stripe's current copy is mirrored. */
const syncSubscription: StripeEventHandler = async (event, gateway, context) => {
  await mirrorSubscription(objectId(event), gateway, context);
};

/** A Checkout paid: a server's order provisions, a sponsor's sponsorship starts. */
const checkoutCompleted: StripeEventHandler = async (event, gateway, { tx, log, sponsorships }) => {
  const sessionId = objectId(event);
  await lockStripeObject(tx, sessionId);
  const session = await gateway.retrieveCheckoutSession(sessionId);
  if (kindOf(session.metadata) === 'sponsorship') {
    await sponsorships.activate(tx, gateway, session);
  } else {
    await completeServerCheckout(tx, gateway, session, log);
  }
};

/**
 * A refund: the invoice it belongs to records how much was given back (for revenue reports).
 * A refund never changes a server: ending one is a cancellation, decided by people.
 */
const chargeRefunded: StripeEventHandler = async (event, gateway, { tx, log }) => {
  const charge = await gateway.retrieveCharge(objectId(event));
  const paymentIntent = stripeIdOf(charge.payment_intent);
  const invoiceId = paymentIntent ? await gateway.invoiceIdOfPaymentIntent(paymentIntent) : null;
  if (!invoiceId) {
    log.info('refund of a charge with no invoice: nothing to record', { chargeId: charge.id });
    return;
  }
  const updated = await tx.invoice.updateMany({
    where: { providerId: invoiceId },
    data: { refundedMinor: charge.amount_refunded },
  });
  // Retried: the invoice's own events may not have been processed yet.
  if (updated.count === 0) throw new Error(`refund of invoice ${invoiceId}, which is not mirrored (yet)`);
};

/** The event types Woolly subscribes to, and what each does. */
export const STRIPE_EVENT_HANDLERS: Readonly<Record<string, StripeEventHandler>> = {
  'invoice.paid': syncInvoice,
  'invoice.payment_failed': syncInvoice,
  'invoice.finalized': syncInvoice,
  'checkout.session.completed': checkoutCompleted,
  'customer.subscription.created': syncSubscription,
  'customer.subscription.updated': syncSubscription,
  'customer.subscription.deleted': syncSubscription,
  'charge.refunded': chargeRefunded,
};

export interface StripeWebhookDeps {
  db: Db;
  log: Logger;
  gateway: StripeGateway;
  reactions: SubscriptionReactions;
  sponsorships: SponsorshipReactions;
  /** Defaults to `STRIPE_EVENT_HANDLERS`. */
  handlers?: Readonly<Record<string, StripeEventHandler>>;
}

/**
 * Processes a stored event exactly once: under a row lock on it, returns at once when it is
 * processed already, else runs its type's handler and marks it processed in the same
 * transaction. A crash before the commit leaves it unprocessed for the retry; a replay finds
 * it processed and does nothing. Types without a handler are marked processed, no effect.
 */
export async function processStripeEvent(
  deps: StripeWebhookDeps,
  eventId: string,
): Promise<'processed' | 'already_processed' | 'missing'> {
  const handlers = deps.handlers ?? STRIPE_EVENT_HANDLERS;
  // Handlers read from Stripe inside the transaction (see syncInvoice): give them time.
  return deps.db.$transaction(
    async (tx) => {
      const [row] = await tx.$queryRaw<{ payload: StripeEventPayload; processedAt: Date | null }[]>`
        select payload, "processedAt" from "WebhookEvent" where id = ${eventId} for update`;
      if (!row) {
        deps.log.warn('Stripe event to process is not stored', { stripeEventId: eventId });
        return 'missing';
      }
      if (row.processedAt) return 'already_processed';
      const handler = handlers[row.payload.type];
      if (handler) {
        await handler(row.payload, deps.gateway, {
          tx,
          log: deps.log,
          reactions: deps.reactions,
          sponsorships: deps.sponsorships,
        });
      } else {
        deps.log.debug('Stripe event type not handled', { type: row.payload.type, stripeEventId: eventId });
      }
      await tx.$executeRaw`update "WebhookEvent" set "processedAt" = now() where id = ${eventId}`;
      return 'processed';
    },
    { maxWait: 10_000, timeout: 60_000 },
  );
}

/** The billing webhook job (`STRIPE_WEBHOOK_TASK`), for the worker's task list. */
export function stripeWebhookTasks(deps: StripeWebhookDeps): Record<string, Task> {
  return {
    [STRIPE_WEBHOOK_TASK]: async (raw, helpers: JobHelpers) => {
      const { eventId } = webhookJobPayload.parse(raw);
      const log = deps.log.child({ jobId: helpers.job.id, stripeEventId: eventId });
      const outcome = await processStripeEvent({ ...deps, log }, eventId);
      log.debug('Stripe event job done', { outcome });
    },
  };
}
