/**
 * Sponsorships: a community's members pay toward its server each month, at a fixed tier
 * (`SPONSOR_TIERS`), through a Stripe subscription of their own, separate from the server's.
 * The sponsor's subscription never touches the server: its failed payments and its end change
 * the Sponsorship row only. What a sponsor pays is credited to the hosting organization's
 * Stripe customer balance, which Stripe applies to the organization's next invoice (the credit
 * shows there as "Applied balance").
 *
 * Stripe's Checkout, subscription and invoice events reach the three reactions at the end
 * (`sponsorshipReactions`), each with the object as Stripe has it now; each is idempotent and
 * gives the same result whatever order the events come in.
 */
import type Stripe from 'stripe';
import type { Db, Tx } from '../core/db.ts';
import { SPONSOR_TIERS } from '../core/domain/catalog.ts';
import { AppError } from '../core/errors.ts';
import { ensureStripeCustomer, providerUnavailable } from './checkout.ts';
import type {
  StripeCheckoutSession,
  StripeGateway,
  StripeInvoice,
  StripePrice,
  StripeSubscription,
} from './stripe-gateway.ts';
import { stripeIdOf } from './stripe-gateway.ts';

export type SponsorTier = (typeof SPONSOR_TIERS)[number];

/** Where a sponsorship stands: `pending` until its Checkout is paid; `canceled` is final. */
export type SponsorshipStatus = 'pending' | 'active' | 'past_due' | 'canceled';

/** What a sponsor is called on the organization's invoices and the public page when hidden. */
export const ANONYMOUS_SPONSOR = 'an anonymous sponsor';

/** The tier of `code`, or null when the catalog has none. */
export function findSponsorTier(code: string): SponsorTier | null {
  return SPONSOR_TIERS.find((tier) => tier.code === code) ?? null;
}

/** The Stripe price lookup key of a tier, as `woolly billing sync` makes it (billing/catalog-sync.ts). */
export const sponsorPriceKey = (tier: string) => `sponsor:${tier}`;

/**
 * The tier's Price in Stripe. Missing means the catalog was never synced to this Stripe
 * account, which only an operator can fix: `payment_provider_unavailable`, saying so.
 */
export async function getSponsorPrice(gateway: StripeGateway, tier: string): Promise<StripePrice> {
  const key = sponsorPriceKey(tier);
  let prices: Map<string, StripePrice>;
  try {
    prices = await gateway.pricesByLookupKey([key]);
  } catch (error) {
    throw providerUnavailable(error, `The price of the ${tier} sponsorship could not be read`);
  }
  const price = prices.get(key);
  if (!price) {
    throw new AppError(
      'payment_provider_unavailable',
      `Stripe has no price "${key}": \`woolly billing sync\` has not run against this Stripe account. An operator must run it; then try again.`,
    );
  }
  return price;
}

/** A sponsorship waiting for its Checkout, as `openSponsorCheckout` needs it. */
export interface PendingSponsorship {
  id: string;
  instanceId: string;
  tier: string;
  sponsorEmail: string;
}

/**
 * The Checkout session of a new sponsorship: a subscription to the tier's price, paid by the
 * sponsor's own (new) Stripe customer. Both the session and the subscription it makes carry
 * `kind: sponsorship` in their metadata, which is how the webhook tells them from a server's.
 */
export function sponsorCheckoutParams(input: {
  sponsorship: PendingSponsorship;
  priceId: string;
  domain: string;
  publicUrl: string;
}): Stripe.Checkout.SessionCreateParams {
  const { sponsorship } = input;
  const metadata = { kind: 'sponsorship', sponsorshipId: sponsorship.id, instanceId: sponsorship.instanceId };
  const page = `${input.publicUrl}/sponsor/${encodeURIComponent(input.domain)}`;
  return {
    mode: 'subscription',
    line_items: [{ price: input.priceId, quantity: 1 }],
    customer_email: sponsorship.sponsorEmail,
    client_reference_id: sponsorship.id,
    metadata,
    subscription_data: { metadata, description: `Sponsorship of ${input.domain}` },
    success_url: `${page}?status=paid`,
    cancel_url: `${page}?status=cancelled`,
  };
}

/**
 * Opens the Checkout session of a pending sponsorship and stores its id. The idempotency key
 * is the sponsorship's, so a retry after a lost answer gets the same session. Stripe refusing
 * or unreachable: `payment_provider_unavailable`; the sponsorship stays pending and unseen.
 */
export async function openSponsorCheckout(
  deps: { db: Db; gateway: StripeGateway; publicUrl: string },
  input: { sponsorship: PendingSponsorship; priceId: string; domain: string },
): Promise<{ url: string; expiresAt: Date }> {
  let session: StripeCheckoutSession;
  try {
    session = await deps.gateway.createCheckoutSession(
      sponsorCheckoutParams({ ...input, publicUrl: deps.publicUrl }),
      `sponsor-checkout:${input.sponsorship.id}`,
    );
  } catch (error) {
    throw checkoutRefused(error, input.sponsorship.sponsorEmail);
  }
  if (!session.url) throw providerUnavailable(new Error('no url'), 'Checkout for the sponsorship');
  await deps.db.sponsorship.update({
    where: { id: input.sponsorship.id },
    data: { checkoutSessionId: session.id },
  });
  return { url: session.url, expiresAt: new Date(session.expires_at * 1000) };
}

/**
 * Stripe's refusal of a sponsor's Checkout as a problem. An address Stripe will not take is the
 * sponsor's to fix (422); anything else is Stripe's (503). Stripe's message may quote the
 * address, and 5xx problems are logged with their cause, so the address is cut out of it.
 */
function checkoutRefused(error: unknown, email: string): AppError {
  if ((error as { param?: unknown }).param === 'customer_email') {
    return new AppError('unprocessable', 'Stripe does not accept this e-mail address.', {
      errors: [{ field: 'email', message: 'Stripe does not accept this address; check it for typos.' }],
    });
  }
  const message = error instanceof Error ? error.message : String(error);
  const scrubbed = new Error(message.replaceAll(email, "<the sponsor's address>"));
  return providerUnavailable(scrubbed, 'Checkout for the sponsorship could not be opened');
}

/** Stripe's subscription status, as a sponsorship keeps it. */
function sponsorshipStatusOf(status: Stripe.Subscription.Status): SponsorshipStatus {
  switch (status) {
    case 'active':
    case 'trialing':
      return 'active';
    case 'past_due':
    case 'unpaid':
    case 'paused':
      return 'past_due';
    case 'canceled':
    case 'incomplete_expired':
      return 'canceled';
    case 'incomplete':
      return 'pending';
    default:
      // A status newer than this code: fail loudly (the job retries) rather than guess.
      throw new Error(`unknown Stripe subscription status "${status}"`);
  }
}

/** The sponsorship a Stripe subscription pays: by its id once linked, else by its metadata. */
async function findSponsorshipOf(tx: Tx, subscriptionId: string | null, sponsorshipId: string | undefined) {
  const linked = subscriptionId
    ? await tx.sponsorship.findUnique({ where: { providerId: subscriptionId } })
    : null;
  if (linked) return linked;
  return sponsorshipId ? tx.sponsorship.findUnique({ where: { id: sponsorshipId } }) : null;
}

/** Locks the sponsorship's row for this transaction: its events are handled one at a time. */
async function lockSponsorship(tx: Tx, id: string): Promise<void> {
  await tx.$queryRaw`select 1 from "Sponsorship" where id = ${id}::uuid for update`;
}

/**
 * Mirrors a sponsor's subscription as Stripe has it now: `active`, `past_due` (a renewal
 * failed; Stripe retries it) or `canceled` (ended, with `endedAt`). A canceled sponsorship
 * stays canceled: Stripe never revives a canceled subscription. Touches the Sponsorship row
 * and nothing else: not the instance, not its subscription, not the server.
 */
export async function syncSponsorship(tx: Tx, subscription: StripeSubscription): Promise<void> {
  const found = await findSponsorshipOf(tx, subscription.id, subscription.metadata?.sponsorshipId);
  // Retried with the queue's backoff; a sponsorship is written before its Checkout opens.
  if (!found) throw new Error(`no sponsorship for Stripe subscription ${subscription.id}`);
  await lockSponsorship(tx, found.id);
  const current = await tx.sponsorship.findUniqueOrThrow({ where: { id: found.id } });
  if (current.status === 'canceled') return;
  const status = sponsorshipStatusOf(subscription.status);
  const now = new Date();
  await tx.sponsorship.update({
    where: { id: current.id },
    data: {
      status,
      providerId: current.providerId ?? subscription.id,
      stripeCustomerId: current.stripeCustomerId ?? stripeIdOf(subscription.customer),
      // A Checkout that expired unpaid ends a sponsorship that never started.
      startedAt: current.startedAt ?? (status === 'active' || status === 'past_due' ? now : null),
      endedAt:
        status === 'canceled'
          ? subscription.canceled_at
            ? new Date(subscription.canceled_at * 1000)
            : now
          : null,
    },
  });
}

/**
 * A sponsor's Checkout is complete and paid: the sponsorship is linked to its Stripe
 * subscription and customer, then mirrors that subscription as Stripe has it now (so an
 * earlier `customer.subscription.*` event, or a later one already processed, agrees). A
 * session not yet paid changes nothing; one naming no known sponsorship throws (retried).
 */
export async function activateSponsorship(
  tx: Tx,
  gateway: StripeGateway,
  session: StripeCheckoutSession,
): Promise<void> {
  const sponsorshipId = session.metadata?.sponsorshipId ?? session.client_reference_id ?? null;
  const sponsorship = sponsorshipId
    ? await tx.sponsorship.findUnique({ where: { id: sponsorshipId } })
    : null;
  if (!sponsorship) throw new Error(`Checkout ${session.id} names no known sponsorship (${sponsorshipId})`);
  const paid = session.payment_status === 'paid' || session.payment_status === 'no_payment_required';
  const subscriptionId = stripeIdOf(session.subscription);
  if (session.status !== 'complete' || !paid || !subscriptionId) return;
  await lockSponsorship(tx, sponsorship.id);
  await tx.sponsorship.updateMany({
    where: { id: sponsorship.id, providerId: null },
    data: { providerId: subscriptionId, checkoutSessionId: sponsorship.checkoutSessionId ?? session.id },
  });
  const subscription = await gateway.retrieveSubscription(subscriptionId);
  await syncSponsorship(tx, subscription);
}

/** How the organization's invoice names a sponsor: by name only when they chose to be shown. */
function creditDescription(sponsorship: { tier: string; displayName: string | null; showName: boolean }) {
  const name = sponsorship.showName && sponsorship.displayName ? sponsorship.displayName : ANONYMOUS_SPONSOR;
  return `Sponsorship ${sponsorship.tier} from ${name}`;
}

/**
 * A sponsor's paid invoice: one SponsorshipPayment row (unique by invoice) and a credit of the
 * amount paid on the hosting organization's Stripe customer balance, which Stripe takes off the
 * organization's next invoice. Crediting twice cannot happen: the payment row is locked and
 * carries `creditedAt` once credited, and Stripe's idempotency key is the invoice's, so even a
 * crash between Stripe's answer and the commit credits once. An organization without a Stripe
 * customer yet (its server paid outside Stripe) gets one made, so no credit waits on it.
 */
export async function creditSponsorPayment(
  tx: Tx,
  gateway: StripeGateway,
  invoice: StripeInvoice,
): Promise<void> {
  if (invoice.status !== 'paid' || invoice.amount_paid <= 0) return;
  const parent = invoice.parent?.subscription_details ?? null;
  const sponsorship = await findSponsorshipOf(
    tx,
    stripeIdOf(parent?.subscription),
    parent?.metadata?.sponsorshipId,
  );
  if (!sponsorship) throw new Error(`no sponsorship for Stripe invoice ${invoice.id}`);
  const paidAt = invoice.status_transitions?.paid_at;
  await tx.$executeRaw`
    insert into "SponsorshipPayment" (id, "sponsorshipId", "providerInvoiceId", "amountMinor", currency, "paidAt")
    values (gen_random_uuid(), ${sponsorship.id}::uuid, ${invoice.id}, ${invoice.amount_paid}::int,
            ${invoice.currency}, ${paidAt ? new Date(paidAt * 1000) : new Date()})
    on conflict ("providerInvoiceId") do nothing`;
  const [payment] = await tx.$queryRaw<{ id: string; creditedAt: Date | null }[]>`
    select id, "creditedAt" from "SponsorshipPayment" where "providerInvoiceId" = ${invoice.id} for update`;
  if (!payment || payment.creditedAt) return;
  const customerId = await ensureStripeCustomer(tx, gateway, sponsorship.organizationId);
  const credit = await gateway.createBalanceTransaction(
    customerId,
    {
      amount: -invoice.amount_paid,
      currency: invoice.currency,
      description: creditDescription(sponsorship),
      metadata: {
        kind: 'sponsorship_credit',
        sponsorshipId: sponsorship.id,
        instanceId: sponsorship.instanceId,
        invoiceId: invoice.id,
      },
    },
    `sponsor-credit:${invoice.id}`,
  );
  await tx.sponsorshipPayment.update({
    where: { id: payment.id },
    data: { creditTransactionId: credit.id, creditedAt: new Date() },
  });
}

/** The reactions billing/webhooks.ts dispatches a sponsor's events to (its `SponsorshipReactions`). */
export const sponsorshipReactions = {
  activate: activateSponsorship,
  sync: syncSponsorship,
  credit: creditSponsorPayment,
};
