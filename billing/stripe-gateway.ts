import Stripe from 'stripe';

/** An invoice as Woolly mirrors it, read from Stripe (its first page of lines included). */
export type StripeInvoice = Pick<
  Stripe.Invoice,
  | 'id'
  | 'customer'
  | 'status'
  | 'total'
  | 'amount_paid'
  | 'currency'
  | 'period_start'
  | 'period_end'
  | 'due_date'
  | 'status_transitions'
  | 'parent'
  | 'lines'
  | 'metadata'
>;

/** A subscription as Woolly reads it from Stripe. */
export type StripeSubscription = Pick<
  Stripe.Subscription,
  'id' | 'customer' | 'status' | 'cancel_at_period_end' | 'canceled_at' | 'metadata' | 'items'
>;

/** A Checkout session as Woolly reads it from Stripe. */
export type StripeCheckoutSession = Pick<
  Stripe.Checkout.Session,
  | 'id'
  | 'customer'
  | 'status'
  | 'payment_status'
  | 'subscription'
  | 'client_reference_id'
  | 'metadata'
  | 'url'
  | 'expires_at'
>;

/** A charge as Woolly reads it from Stripe. */
export type StripeCharge = Pick<
  Stripe.Charge,
  'id' | 'customer' | 'amount' | 'amount_refunded' | 'refunded' | 'currency' | 'payment_intent'
>;

/** A price found by its lookup key. */
export type StripePrice = Pick<Stripe.Price, 'id' | 'lookup_key' | 'unit_amount' | 'currency' | 'recurring'>;

/**
 * Everything billing asks of Stripe, as one narrow adapter. Reads return the object as Stripe
 * has it now: events are only hints, deliveries come in any order, so handlers re-read the
 * object instead of trusting the event's copy. Every write carries an idempotency key derived
 * from what it is for, so a retry after a crash or a lost answer does it once. Production
 * wires the real client (`makeStripeGateway`; stripe-mock in tests checks every request
 * against Stripe's API description); flows that need Stripe to remember state use the stateful
 * stand-in in test/support/stripe-stand-in.ts.
 */
export interface StripeGateway {
  retrieveInvoice(id: string): Promise<StripeInvoice>;
  retrieveSubscription(id: string): Promise<StripeSubscription>;
  retrieveCheckoutSession(id: string): Promise<StripeCheckoutSession>;
  retrieveCharge(id: string): Promise<StripeCharge>;
  /** The invoice a payment intent paid, if any (charges no longer name their invoice). */
  invoiceIdOfPaymentIntent(paymentIntentId: string): Promise<string | null>;
  /** Active prices by lookup key; keys with no price are absent from the map. */
  pricesByLookupKey(keys: readonly string[]): Promise<Map<string, StripePrice>>;
  createCustomer(params: Stripe.CustomerCreateParams, idempotencyKey: string): Promise<{ id: string }>;
  createCheckoutSession(
    params: Stripe.Checkout.SessionCreateParams,
    idempotencyKey: string,
  ): Promise<StripeCheckoutSession>;
  updateSubscription(
    id: string,
    params: Stripe.SubscriptionUpdateParams,
    idempotencyKey: string,
  ): Promise<StripeSubscription>;
  /** Closes an open Checkout session so it can no longer be paid (an order cancelled). */
  expireCheckoutSession(id: string, idempotencyKey: string): Promise<StripeCheckoutSession>;
  /** Ends a subscription now (no proration, no refund). */
  cancelSubscription(id: string, idempotencyKey: string): Promise<StripeSubscription>;
  /** A credit (negative amount) or debit on a customer's balance, applied to their next invoice. */
  createBalanceTransaction(
    customerId: string,
    params: Stripe.CustomerCreateBalanceTransactionParams,
    idempotencyKey: string,
  ): Promise<{ id: string }>;
}

/** The id of a field Stripe gives as an id or, when expanded, as the object. */
export const stripeIdOf = (value: string | { id: string } | null | undefined): string | null =>
  typeof value === 'string' ? value : (value?.id ?? null);

/** Stripe's client for `settings` (stripe-mock through `apiUrl`). */
export function makeStripeClient(
  settings: { secretKey: string; apiUrl: string | null },
  options: { maxNetworkRetries: number },
): Stripe {
  const api = settings.apiUrl ? new URL(settings.apiUrl) : null;
  return new Stripe(settings.secretKey, {
    maxNetworkRetries: options.maxNetworkRetries,
    ...(api
      ? {
          host: api.hostname,
          port: api.port || (api.protocol === 'https:' ? 443 : 80),
          protocol: api.protocol === 'https:' ? 'https' : 'http',
        }
      : {}),
  });
}

/** Stripe filters prices by at most 10 lookup keys a request. */
const LOOKUP_KEYS_PER_REQUEST = 10;

/** The gateway over Stripe's API (or stripe-mock, through `apiUrl`). */
export function makeStripeGateway(settings: { secretKey: string; apiUrl: string | null }): StripeGateway {
  const stripe = makeStripeClient(settings, { maxNetworkRetries: 2 });
  return {
    retrieveInvoice: (id) => stripe.invoices.retrieve(id),
    retrieveSubscription: (id) => stripe.subscriptions.retrieve(id),
    retrieveCheckoutSession: (id) => stripe.checkout.sessions.retrieve(id),
    retrieveCharge: (id) => stripe.charges.retrieve(id),
    async invoiceIdOfPaymentIntent(paymentIntentId) {
      const page = await stripe.invoicePayments.list({
        payment: { type: 'payment_intent', payment_intent: paymentIntentId },
        limit: 1,
      });
      const invoice = page.data[0]?.invoice;
      return typeof invoice === 'string' ? invoice : (invoice?.id ?? null);
    },
    async pricesByLookupKey(keys) {
      const found = new Map<string, StripePrice>();
      for (let start = 0; start < keys.length; start += LOOKUP_KEYS_PER_REQUEST) {
        const page = await stripe.prices.list({
          lookup_keys: keys.slice(start, start + LOOKUP_KEYS_PER_REQUEST),
          active: true,
          limit: 100,
        });
        for (const price of page.data) if (price.lookup_key) found.set(price.lookup_key, price);
      }
      return found;
    },
    createCustomer: (params, idempotencyKey) => stripe.customers.create(params, { idempotencyKey }),
    createCheckoutSession: (params, idempotencyKey) =>
      stripe.checkout.sessions.create(params, { idempotencyKey }),
    updateSubscription: (id, params, idempotencyKey) =>
      stripe.subscriptions.update(id, params, { idempotencyKey }),
    expireCheckoutSession: (id, idempotencyKey) =>
      stripe.checkout.sessions.expire(id, {}, { idempotencyKey }),
    cancelSubscription: (id, idempotencyKey) =>
      stripe.subscriptions.cancel(id, { prorate: false }, { idempotencyKey }),
    createBalanceTransaction: (customerId, params, idempotencyKey) =>
      stripe.customers.createBalanceTransaction(customerId, params, { idempotencyKey }),
  };
}
