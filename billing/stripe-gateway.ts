import Stripe from 'stripe';

/** An invoice as Woolly mirrors it, read from Stripe. */
export type StripeInvoice = Pick<
  Stripe.Invoice,
  'id' | 'customer' | 'status' | 'total' | 'currency' | 'period_start' | 'period_end'
>;

/** A subscription as Woolly reads it from Stripe. */
export type StripeSubscription = Pick<
  Stripe.Subscription,
  'id' | 'customer' | 'status' | 'cancel_at_period_end' | 'metadata'
>;

/** A Checkout session as Woolly reads it from Stripe. */
export type StripeCheckoutSession = Pick<
  Stripe.Checkout.Session,
  'id' | 'customer' | 'status' | 'payment_status' | 'subscription' | 'client_reference_id' | 'metadata'
>;

/** A charge as Woolly reads it from Stripe. */
export type StripeCharge = Pick<Stripe.Charge, 'id' | 'customer' | 'amount' | 'amount_refunded' | 'refunded'>;

/**
 * What webhook processing reads from Stripe: the current state of an object an event names.
 * An event is only a hint that something changed; deliveries come in any order, so handlers
 * re-read the object instead of trusting the event's copy. Tests put an in-memory stand-in here.
 */
export interface StripeGateway {
  retrieveInvoice(id: string): Promise<StripeInvoice>;
  retrieveSubscription(id: string): Promise<StripeSubscription>;
  retrieveCheckoutSession(id: string): Promise<StripeCheckoutSession>;
  retrieveCharge(id: string): Promise<StripeCharge>;
}

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

/** The gateway over Stripe's API (or stripe-mock, through `apiUrl`). */
export function makeStripeGateway(settings: { secretKey: string; apiUrl: string | null }): StripeGateway {
  const stripe = makeStripeClient(settings, { maxNetworkRetries: 2 });
  return {
    retrieveInvoice: (id) => stripe.invoices.retrieve(id),
    retrieveSubscription: (id) => stripe.subscriptions.retrieve(id),
    retrieveCheckoutSession: (id) => stripe.checkout.sessions.retrieve(id),
    retrieveCharge: (id) => stripe.charges.retrieve(id),
  };
}
