import { randomUUID } from 'node:crypto';
import type { JobHelpers, Task } from 'graphile-worker';
import { z } from 'zod';
import { type Db, execute, type SqlClient, type Tx } from '../core/db.ts';
import type { Logger } from '../core/log.ts';
import type { StripeGateway } from './stripe-gateway.ts';

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

/** What a handler works with: the transaction its writes go in, and its job's logger. */
export interface StripeEventContext {
  tx: Tx;
  log: Logger;
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

/**
 * Mirrors an invoice as Stripe has it now. Events of one invoice arrive in any order (a late
 * `invoice.payment_failed` after `invoice.paid`), so the event's copy is ignored: the invoice
 * is re-read under a lock on its id, and whatever was read last, and so is newest, is written.
 */
const syncInvoice: StripeEventHandler = async (event, gateway, { tx }) => {
  const invoiceId = objectId(event);
  // Serialises the read and the write per invoice across workers: without it, an older read
  // could commit after a newer one.
  await tx.$executeRaw`select pg_advisory_xact_lock(hashtextextended(${`stripe-invoice:${invoiceId}`}, 0))`;
  const invoice = await gateway.retrieveInvoice(invoiceId);
  const customerId = typeof invoice.customer === 'string' ? invoice.customer : invoice.customer?.id;
  if (!customerId) throw new Error(`Stripe invoice ${invoiceId} has no customer`);
  const organizationId = (
    await tx.organization.findUnique({ where: { stripeCustomerId: customerId }, select: { id: true } })
  )?.id;
  // Retried with the queue's backoff: the customer may belong to a Checkout not processed yet.
  if (!organizationId) throw new Error(`no organization for Stripe customer ${customerId} (yet)`);
  await tx.$executeRaw`
    insert into "Invoice" (id, "organizationId", "providerId", status, "totalMinor", currency,
                           "periodStart", "periodEnd")
    values (${randomUUID()}::uuid, ${organizationId}::uuid, ${invoiceId}, ${invoice.status ?? 'draft'},
            ${invoice.total}::int, ${invoice.currency}, to_timestamp(${invoice.period_start}::bigint),
            to_timestamp(${invoice.period_end}::bigint))
    on conflict ("providerId") do update
      set status = excluded.status, "totalMinor" = excluded."totalMinor", currency = excluded.currency,
          "periodStart" = excluded."periodStart", "periodEnd" = excluded."periodEnd"`;
};

/**
 * An event whose effect belongs to a part of billing not built yet. It is acknowledged and
 * marked processed with no effect at all (the payload stays stored, so it can be replayed
 * once the part exists by clearing `processedAt` and queueing the job again).
 */
function notImplemented(part: string): StripeEventHandler {
  return async (event, _gateway, { log }) => {
    log.info('Stripe event not acted on: not implemented yet', { type: event.type, part });
  };
}

/** The event types Woolly subscribes to, and what each does. */
export const STRIPE_EVENT_HANDLERS: Readonly<Record<string, StripeEventHandler>> = {
  'invoice.paid': syncInvoice,
  'invoice.payment_failed': syncInvoice,
  'invoice.finalized': syncInvoice,
  // NOT IMPLEMENTED: marking the order paid and starting provisioning after Checkout.
  'checkout.session.completed': notImplemented('provisioning after Checkout'),
  // NOT IMPLEMENTED: mirroring subscription changes (Subscription rows, plan changes, cancellation).
  'customer.subscription.created': notImplemented('subscriptions'),
  'customer.subscription.updated': notImplemented('subscriptions'),
  'customer.subscription.deleted': notImplemented('subscriptions'),
  // NOT IMPLEMENTED: dunning (grace period, suspension, deletion) after failed payments is not
  // driven from here yet; the invoice mirror above is all `invoice.payment_failed` does.
  // NOT IMPLEMENTED: refunds.
  'charge.refunded': notImplemented('refunds'),
};

export interface StripeWebhookDeps {
  db: Db;
  log: Logger;
  gateway: StripeGateway;
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
        await handler(row.payload, deps.gateway, { tx, log: deps.log });
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
