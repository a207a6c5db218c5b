/**
 * A stateful, in-memory stand-in for the parts of Stripe's API that billing uses, behind the
 * same `StripeGateway` adapter as the real client. stripe-mock checks each request against
 * Stripe's API description but remembers nothing (every retrieve answers the same fixture), so
 * flows that need Stripe to remember (a Checkout that became a subscription, an invoice that
 * was paid after it failed) run against this instead, and say so in their names.
 *
 * It keeps customers, prices (Woolly's catalog, as `woolly billing sync` makes it), Checkout
 * sessions, subscriptions, invoices and balance transactions; writes with an idempotency key
 * seen before answer what they answered then, as Stripe does. The `simulate*` methods are what
 * a customer or Stripe's own machinery would do (pay, fail a renewal, reach the period end);
 * `event` wraps an object as the webhook event Stripe would send.
 */
import { randomBytes } from 'node:crypto';
import type Stripe from 'stripe';
import { desiredCatalog } from '../../billing/catalog-sync.ts';
import type {
  StripeCharge,
  StripeCheckoutSession,
  StripeGateway,
  StripeInvoice,
  StripePrice,
  StripeSubscription,
} from '../../billing/stripe-gateway.ts';

const newId = (prefix: string) => `${prefix}_${randomBytes(10).toString('hex')}`;
const nowSeconds = () => Math.floor(Date.now() / 1000);
const MONTH_SECONDS = 30 * 86_400;

/** Stripe's answer to an unknown id: a 404 invalid request. */
class NoSuchObject extends Error {
  readonly statusCode = 404;
  readonly type = 'StripeInvalidRequestError';
}

export interface StandInCustomer {
  id: string;
  email: string | null;
  name: string | null;
  metadata: Record<string, string>;
  /** Negative: credit the customer has (applied to the next invoice). */
  balance: number;
  balanceTransactions: { id: string; amount: number; currency: string; description: string | null }[];
}

interface StandInPrice extends StripePrice {
  product: string;
}

export function stripeStandIn() {
  const customers = new Map<string, StandInCustomer>();
  const sessions = new Map<
    string,
    StripeCheckoutSession & { line_items: { price: string; quantity?: number }[] }
  >();
  const subscriptions = new Map<string, StripeSubscription>();
  const invoices = new Map<string, StripeInvoice>();
  const charges = new Map<string, StripeCharge>();
  const prices = new Map<string, StandInPrice>();
  const answered = new Map<string, unknown>();
  /** Which invoice each payment intent paid. */
  const paidBy = new Map<string, string>();
  /** Every write, in order, with its idempotency key: what tests assert Stripe was asked. */
  const writes: { method: string; idempotencyKey: string; params: unknown }[] = [];

  for (const price of desiredCatalog().prices) {
    const id = newId('price');
    prices.set(id, {
      id,
      lookup_key: price.lookupKey,
      product: price.product,
      currency: price.currency,
      unit_amount: 'unitMinor' in price.amount ? price.amount.unitMinor : null,
      recurring: {
        interval: 'month',
        interval_count: 1,
        meter: null,
        usage_type: 'unitMinor' in price.amount ? 'licensed' : 'metered',
        trial_period_days: null,
      },
    } as StandInPrice);
  }
  const priceOf = (id: string) => {
    const price = prices.get(id);
    if (!price) throw new NoSuchObject(`No such price: '${id}'`);
    return price;
  };

  /** Runs a write once per idempotency key, as Stripe does for 24 hours. */
  function once<T>(method: string, idempotencyKey: string, params: unknown, run: () => T): T {
    writes.push({ method, idempotencyKey, params });
    const key = `${method}:${idempotencyKey}`;
    if (!answered.has(key)) answered.set(key, run());
    return structuredClone(answered.get(key)) as T;
  }

  function get<T>(map: Map<string, T>, id: string, kind: string): T {
    const found = map.get(id);
    if (!found) throw new NoSuchObject(`No such ${kind}: '${id}'`);
    return structuredClone(found);
  }

  function item(priceId: string, quantity: number | undefined, period: { start: number; end: number }) {
    const price = priceOf(priceId);
    return {
      id: newId('si'),
      object: 'subscription_item',
      price,
      quantity: price.recurring?.usage_type === 'metered' ? undefined : (quantity ?? 1),
      current_period_start: period.start,
      current_period_end: period.end,
    } as unknown as Stripe.SubscriptionItem;
  }

  function newSubscription(
    customer: string,
    lineItems: { price: string; quantity?: number }[],
    metadata: Record<string, string>,
  ): StripeSubscription {
    const period = { start: nowSeconds(), end: nowSeconds() + MONTH_SECONDS };
    const subscription = {
      id: newId('sub'),
      customer,
      status: 'active',
      cancel_at_period_end: false,
      canceled_at: null,
      metadata,
      items: {
        object: 'list',
        data: lineItems.map((line) => item(line.price, line.quantity, period)),
        has_more: false,
        url: '',
      },
    } as unknown as StripeSubscription;
    subscriptions.set(subscription.id, subscription);
    return subscription;
  }

  /** An invoice for the subscription's current items, as Stripe makes one each period. */
  function newInvoice(subscription: StripeSubscription, status: 'open' | 'paid'): StripeInvoice {
    const lines = subscription.items.data.map((subscriptionItem) => {
      const price = subscriptionItem.price as StandInPrice;
      const amount = (price.unit_amount ?? 0) * (subscriptionItem.quantity ?? 0);
      return {
        id: newId('il'),
        amount,
        currency: price.currency,
        description: price.lookup_key,
        quantity: subscriptionItem.quantity ?? 0,
        pricing: { type: 'price_details', price_details: { price: price.id, product: price.product } },
      };
    });
    const total = lines.reduce((sum, line) => sum + line.amount, 0);
    const [first] = subscription.items.data;
    const invoice = {
      id: newId('in'),
      customer: subscription.customer,
      status,
      total,
      amount_paid: status === 'paid' ? total : 0,
      currency: lines[0]?.currency ?? 'eur',
      period_start: first?.current_period_start ?? nowSeconds(),
      period_end: first?.current_period_end ?? nowSeconds(),
      due_date: null,
      status_transitions: { paid_at: status === 'paid' ? nowSeconds() : null },
      parent: {
        type: 'subscription_details',
        quote_details: null,
        subscription_details: { subscription: subscription.id, metadata: subscription.metadata },
      },
      lines: { object: 'list', data: lines, has_more: false, url: '' },
      metadata: {},
    } as unknown as StripeInvoice;
    invoices.set(invoice.id, invoice);
    return invoice;
  }

  const gateway: StripeGateway = {
    retrieveInvoice: async (id) => get(invoices, id, 'invoice'),
    retrieveSubscription: async (id) => get(subscriptions, id, 'subscription'),
    retrieveCheckoutSession: async (id) => get(sessions, id, 'checkout.session'),
    retrieveCharge: async (id) => get(charges, id, 'charge'),
    invoiceIdOfPaymentIntent: async (paymentIntentId) => paidBy.get(paymentIntentId) ?? null,
    async pricesByLookupKey(keys) {
      const found = new Map<string, StripePrice>();
      for (const price of prices.values()) {
        if (price.lookup_key && keys.includes(price.lookup_key)) found.set(price.lookup_key, price);
      }
      return found;
    },
    async createCustomer(params, idempotencyKey) {
      return once('createCustomer', idempotencyKey, params, () => {
        const customer: StandInCustomer = {
          id: newId('cus'),
          email: params.email ?? null,
          name: params.name ?? null,
          metadata: { ...(params.metadata as Record<string, string>) },
          balance: 0,
          balanceTransactions: [],
        };
        customers.set(customer.id, customer);
        return { id: customer.id };
      });
    },
    async createCheckoutSession(params, idempotencyKey) {
      return once('createCheckoutSession', idempotencyKey, params, () => {
        if (params.customer && !customers.has(params.customer)) {
          throw new NoSuchObject(`No such customer: '${params.customer}'`);
        }
        for (const line of params.line_items ?? []) priceOf(String(line.price));
        const id = newId('cs');
        const session = {
          id,
          customer: params.customer ?? null,
          status: 'open',
          payment_status: 'unpaid',
          subscription: null,
          client_reference_id: params.client_reference_id ?? null,
          metadata: { ...(params.metadata as Record<string, string>) },
          url: `https://checkout.stripe.test/c/pay/${id}`,
          expires_at: params.expires_at ?? nowSeconds() + 86_400,
          line_items: (params.line_items ?? []).map((line) => ({
            price: String(line.price),
            ...(line.quantity === undefined ? {} : { quantity: line.quantity }),
          })),
          subscription_metadata: { ...(params.subscription_data?.metadata as Record<string, string>) },
          customer_email: params.customer_email ?? null,
        } as unknown as StripeCheckoutSession & { line_items: { price: string; quantity?: number }[] };
        sessions.set(id, session);
        return session;
      });
    },
    async updateSubscription(id, params, idempotencyKey) {
      return once('updateSubscription', idempotencyKey, params, () => {
        const subscription = subscriptions.get(id);
        if (!subscription) throw new NoSuchObject(`No such subscription: '${id}'`);
        if (subscription.status === 'canceled') {
          throw Object.assign(new Error('A canceled subscription can only update its cancellation_details'), {
            statusCode: 400,
          });
        }
        if (params.cancel_at_period_end !== undefined) {
          subscription.cancel_at_period_end = params.cancel_at_period_end;
        }
        const [first] = subscription.items.data;
        const period = {
          start: first?.current_period_start ?? nowSeconds(),
          end: first?.current_period_end ?? nowSeconds() + MONTH_SECONDS,
        };
        for (const change of params.items ?? []) {
          const existing = subscription.items.data.findIndex((candidate) => candidate.id === change.id);
          if (change.deleted) {
            if (existing < 0) throw new NoSuchObject(`No such subscription item: '${change.id}'`);
            subscription.items.data.splice(existing, 1);
          } else if (existing >= 0) {
            const replaced = item(
              String(change.price ?? subscription.items.data[existing]?.price.id),
              change.quantity ?? undefined,
              period,
            );
            subscription.items.data[existing] = {
              ...replaced,
              id: String(change.id),
            } as Stripe.SubscriptionItem;
          } else {
            subscription.items.data.push(item(String(change.price), change.quantity ?? undefined, period));
          }
        }
        return structuredClone(subscription);
      });
    },
    async cancelSubscription(id, idempotencyKey) {
      return once('cancelSubscription', idempotencyKey, { id }, () => {
        const subscription = subscriptions.get(id);
        if (!subscription) throw new NoSuchObject(`No such subscription: '${id}'`);
        subscription.status = 'canceled';
        subscription.canceled_at = nowSeconds();
        return structuredClone(subscription);
      });
    },
    async createBalanceTransaction(customerId, params, idempotencyKey) {
      return once('createBalanceTransaction', idempotencyKey, { customerId, ...params }, () => {
        const customer = customers.get(customerId);
        if (!customer) throw new NoSuchObject(`No such customer: '${customerId}'`);
        const transaction = {
          id: newId('cbtxn'),
          amount: params.amount,
          currency: params.currency,
          description: params.description ?? null,
        };
        customer.balance += params.amount;
        customer.balanceTransactions.push(transaction);
        return { id: transaction.id };
      });
    },
    async expireCheckoutSession(id, idempotencyKey) {
      return once('expireCheckoutSession', idempotencyKey, { id }, () => {
        const session = sessions.get(id);
        if (!session) throw new NoSuchObject(`No such checkout.session: '${id}'`);
        if (session.status !== 'open') {
          throw Object.assign(new Error(`Only open sessions can be expired; this one is ${session.status}`), {
            statusCode: 400,
          });
        }
        session.status = 'expired';
        return structuredClone(session);
      });
    },
  };

  return {
    gateway,
    customers,
    sessions,
    subscriptions,
    invoices,
    prices,
    writes,
    /** The price behind a lookup key. */
    price(lookupKey: string): StandInPrice {
      const found = [...prices.values()].find((price) => price.lookup_key === lookupKey);
      if (!found) throw new Error(`no price ${lookupKey}`);
      return found;
    },
    /**
     * The buyer pays at Checkout: a customer (unless the session named one), the subscription
     * of the session's items (with the session's subscription metadata), its first invoice,
     * paid, and the session complete.
     */
    simulateCheckoutPaid(sessionId: string): { subscription: StripeSubscription; invoice: StripeInvoice } {
      const session = sessions.get(sessionId) as
        | (StripeCheckoutSession & {
            line_items: { price: string; quantity?: number }[];
            subscription_metadata: Record<string, string>;
            customer_email: string | null;
          })
        | undefined;
      if (!session) throw new NoSuchObject(`No such checkout.session: '${sessionId}'`);
      if (session.status !== 'open') throw new Error(`checkout ${sessionId} is ${session.status}`);
      let customer = typeof session.customer === 'string' ? session.customer : null;
      if (!customer) {
        customer = newId('cus');
        customers.set(customer, {
          id: customer,
          email: session.customer_email,
          name: null,
          metadata: {},
          balance: 0,
          balanceTransactions: [],
        });
      }
      const subscription = newSubscription(customer, session.line_items, session.subscription_metadata);
      const invoice = newInvoice(subscription, 'paid');
      Object.assign(session, {
        customer,
        status: 'complete',
        payment_status: 'paid',
        subscription: subscription.id,
      });
      return { subscription: structuredClone(subscription), invoice: structuredClone(invoice) };
    },
    /** A renewal whose payment fails: an open invoice, and the subscription past due. */
    simulateRenewalFailed(subscriptionId: string): StripeInvoice {
      const subscription = subscriptions.get(subscriptionId);
      if (!subscription) throw new NoSuchObject(`No such subscription: '${subscriptionId}'`);
      subscription.status = 'past_due';
      return structuredClone(newInvoice(subscription, 'open'));
    },
    /** An open invoice paid (a retry that succeeded, or the customer paying by hand). */
    simulateInvoicePaid(invoiceId: string): StripeInvoice {
      const invoice = invoices.get(invoiceId);
      if (!invoice) throw new NoSuchObject(`No such invoice: '${invoiceId}'`);
      Object.assign(invoice, {
        status: 'paid',
        amount_paid: invoice.total,
        status_transitions: { ...invoice.status_transitions, paid_at: nowSeconds() },
      });
      const subscriptionId = invoice.parent?.subscription_details?.subscription;
      const subscription = typeof subscriptionId === 'string' ? subscriptions.get(subscriptionId) : undefined;
      if (subscription && subscription.status === 'past_due') subscription.status = 'active';
      return structuredClone(invoice);
    },
    /** Staff refund `amount` of a paid invoice: its charge, refunded. */
    simulateRefund(invoiceId: string, amount: number): StripeCharge {
      const invoice = invoices.get(invoiceId);
      if (invoice?.status !== 'paid') throw new Error(`invoice ${invoiceId} is not paid`);
      const paymentIntent = newId('pi');
      paidBy.set(paymentIntent, invoiceId);
      const charge = {
        id: newId('ch'),
        customer: invoice.customer,
        amount: invoice.amount_paid,
        amount_refunded: amount,
        refunded: amount === invoice.amount_paid,
        currency: invoice.currency,
        payment_intent: paymentIntent,
      } as StripeCharge;
      charges.set(charge.id, charge);
      return structuredClone(charge);
    },
    /** The period ends on a subscription set to cancel then: Stripe ends it. */
    simulatePeriodEnd(subscriptionId: string): StripeSubscription {
      const subscription = subscriptions.get(subscriptionId);
      if (!subscription) throw new NoSuchObject(`No such subscription: '${subscriptionId}'`);
      if (subscription.cancel_at_period_end) {
        subscription.status = 'canceled';
        subscription.canceled_at = nowSeconds();
      }
      return structuredClone(subscription);
    },
    /** The event Stripe would send about `object` (only `id`, `type` and the object matter). */
    event(type: string, object: { id: string }) {
      return { id: newId('evt'), object: 'event', type, created: nowSeconds(), data: { object } };
    },
  };
}

export type StripeStandIn = ReturnType<typeof stripeStandIn>;
