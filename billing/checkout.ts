/**
 * Paying for an order through Stripe Checkout: the organization's Stripe customer (made once),
 * and a Checkout session in subscription mode for the order's plan, add-ons and metered prices.
 * The order stays `pending_payment` until Stripe says the session is paid
 * (`checkout.session.completed`, billing/subscriptions.ts), which starts provisioning.
 */
import type Stripe from 'stripe';
import type { Db, Tx } from '../core/db.ts';
import { AppError } from '../core/errors.ts';
import type { StripeGateway } from './stripe-gateway.ts';
import { subscriptionLineItems } from './subscriptions.ts';

/** A session is reused while it has this long left; past that a fresh one is made. */
const REUSE_MARGIN_MS = 10 * 60_000;

/** What Woolly tells the buyer: where to pay, and until when. */
export interface Checkout {
  url: string;
  expiresAt: Date;
}

/** Turns Stripe's failure into one problem the caller can act on; the order is kept. */
export function providerUnavailable(error: unknown, what: string): AppError {
  const message = error instanceof Error ? error.message : String(error);
  return new AppError(
    'payment_provider_unavailable',
    `${what}: Stripe answered "${message}". Try again shortly.`,
    {
      cause: error,
    },
  );
}

/**
 * The organization's Stripe customer, made on first need. The creation's idempotency key is
 * the organization, so two orders at once, or a retry after a crash between Stripe's answer
 * and the write, get the same customer; the write only fills an empty column.
 */
export async function ensureStripeCustomer(
  db: Db | Tx,
  gateway: StripeGateway,
  organizationId: string,
): Promise<string> {
  const organization = await db.organization.findUniqueOrThrow({
    where: { id: organizationId },
    select: { name: true, slug: true, stripeCustomerId: true },
  });
  if (organization.stripeCustomerId) return organization.stripeCustomerId;
  const customer = await gateway.createCustomer(
    { name: organization.name, metadata: { organizationId, slug: organization.slug } },
    `customer:${organizationId}`,
  );
  await db.organization.updateMany({
    where: { id: organizationId, stripeCustomerId: null },
    data: { stripeCustomerId: customer.id },
  });
  const stored = await db.organization.findUniqueOrThrow({
    where: { id: organizationId },
    select: { stripeCustomerId: true },
  });
  return stored.stripeCustomerId ?? customer.id;
}

/**
 * The Checkout session of an unpaid order: the current one while it has time left, else a new
 * one (its idempotency key names the session it replaces, so a retry makes no third). Stripe
 * refusing or unreachable: `payment_provider_unavailable`, and the order stays as it was.
 */
export async function checkoutForOrder(
  deps: { db: Db; gateway: StripeGateway; publicUrl: string },
  orderId: string,
  now = new Date(),
): Promise<Checkout> {
  const order = await deps.db.order.findUniqueOrThrow({ where: { id: orderId }, include: { plan: true } });
  if (order.status !== 'pending_payment' || order.instanceId === null) {
    throw new AppError(
      'conflict',
      `Order ${orderId} is ${order.status}; only an unpaid order is paid at Checkout.`,
    );
  }
  if (
    order.checkoutUrl &&
    order.checkoutExpiresAt &&
    order.checkoutExpiresAt.getTime() - now.getTime() > REUSE_MARGIN_MS
  ) {
    return { url: order.checkoutUrl, expiresAt: order.checkoutExpiresAt };
  }
  let session: Awaited<ReturnType<StripeGateway['createCheckoutSession']>>;
  try {
    const customer = await ensureStripeCustomer(deps.db, deps.gateway, order.organizationId);
    const lineItems = await subscriptionLineItems(deps.gateway, order.plan.code, order.addonCodes);
    const metadata = {
      kind: 'server',
      orderId: order.id,
      instanceId: order.instanceId,
      organizationId: order.organizationId,
    };
    const params: Stripe.Checkout.SessionCreateParams = {
      mode: 'subscription',
      customer,
      client_reference_id: order.id,
      line_items: lineItems,
      metadata,
      subscription_data: { metadata, description: `Mastodon server ${order.domain}` },
      success_url: `${deps.publicUrl}/dashboard/?order=${order.id}&checkout=paid`,
      cancel_url: `${deps.publicUrl}/dashboard/?order=${order.id}&checkout=cancelled`,
    };
    session = await deps.gateway.createCheckoutSession(
      params,
      `checkout:${order.id}:${order.checkoutSessionId ?? 'first'}`,
    );
  } catch (error) {
    if (error instanceof AppError) throw error;
    throw providerUnavailable(error, `Checkout for order ${order.id} could not be opened`);
  }
  if (!session.url) throw providerUnavailable(new Error('no url'), `Checkout for order ${order.id}`);
  const expiresAt = new Date(session.expires_at * 1000);
  await deps.db.order.updateMany({
    where: { id: order.id, status: 'pending_payment' },
    data: { checkoutSessionId: session.id, checkoutUrl: session.url, checkoutExpiresAt: expiresAt },
  });
  return { url: session.url, expiresAt };
}

/**
 * Closes the order's open Checkout session before the order is cancelled, so it can no longer
 * be paid. A session paid already refuses the cancellation: Stripe's word that it is paid may
 * not have reached Woolly yet, and the server will be provisioned when it does.
 */
export async function closeCheckout(
  gateway: StripeGateway,
  order: { id: string; checkoutSessionId: string | null },
): Promise<void> {
  if (!order.checkoutSessionId) return;
  let session: Awaited<ReturnType<StripeGateway['retrieveCheckoutSession']>>;
  try {
    session = await gateway.retrieveCheckoutSession(order.checkoutSessionId);
    if (session.status === 'open') {
      session = await gateway.expireCheckoutSession(session.id, `checkout-expire:${session.id}`);
    }
  } catch (error) {
    throw providerUnavailable(error, `The Checkout of order ${order.id} could not be closed`);
  }
  if (session.status === 'complete') {
    throw new AppError(
      'conflict',
      `Order ${order.id} was paid at Checkout; its server is being set up (delete the server instead).`,
    );
  }
}
