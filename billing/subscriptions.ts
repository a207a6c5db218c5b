/**
 * One Stripe subscription per server, with an item per price it carries: the plan, each paid
 * add-on, and the metered prices of the plan (community fees always; storage and search with
 * their add-ons). Woolly's own records say what the subscription should be; Stripe says what it
 * is. Two paths keep them together:
 * - from Stripe: webhook handlers re-read the subscription and mirror it (status, period,
 *   cancellation), start provisioning when its Checkout is paid, and drive dunning;
 * - to Stripe: every change of a server queues `billing:sync-subscription`, which reads both
 *   sides and sends the difference once (plan and add-on changes prorated, cancellation at
 *   period end, the end of a purged server's subscription).
 */
import { createHash, randomUUID } from 'node:crypto';
import type { JobHelpers, Task } from 'graphile-worker';
import type Stripe from 'stripe';
import { z } from 'zod';
import { type Db, execute, type SqlClient, type Statement, type Tx } from '../core/db.ts';
import { transition } from '../core/domain/instance-status.ts';
import { AppError } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import { enqueueReconcile } from '../provisioner/index.ts';
import { METERS, type Meter } from './metering.ts';
import type { StripeCheckoutSession, StripeGateway, StripeSubscription } from './stripe-gateway.ts';
import { stripeIdOf } from './stripe-gateway.ts';

interface SubscriptionStart {
  instanceId: string;
  organizationId: string;
  provider: 'none' | 'stripe';
  priceMinor: number;
  currency: string;
  now: Date;
}

/**
 * What starting an instance's subscription writes once its order is paid: the Subscription
 * row, its first period starting now. Idempotent per instance (a unique key), so a retry of the
 * payment confirmation never starts two. The first period's payment is an invoice: Stripe's,
 * mirrored, or with the `none` provider the opening invoice (billing/ledger-invoices.ts).
 */
export function subscriptionStartStatement(input: SubscriptionStart): Statement {
  const periodEnd = new Date(input.now);
  periodEnd.setUTCMonth(periodEnd.getUTCMonth() + 1);
  return {
    name: 'subscription-start',
    text: `insert into "Subscription" (id, "instanceId", "organizationId", provider, status, "priceMinor",
             currency, "currentPeriodStart", "currentPeriodEnd")
           values ($1::uuid, $2::uuid, $3::uuid, $4, 'active', $5::int, $6, $7::timestamptz, $8::timestamptz)
           on conflict ("instanceId") do nothing returning 1`,
    values: [
      randomUUID(),
      input.instanceId,
      input.organizationId,
      input.provider,
      input.priceMinor,
      input.currency,
      input.now,
      periodEnd,
    ],
  };
}

/** Starts an instance's subscription (`subscriptionStartStatement`) on `client`. */
export async function startSubscription(client: SqlClient, input: SubscriptionStart): Promise<void> {
  await execute(client, subscriptionStartStatement(input));
}

/** Which metered prices a server carries, by the add-on that brings them (null: always). */
const METER_ADDON: Record<Meter, string | null> = {
  active_users: null,
  storage_gb_hours: 'object_storage',
  search_hours: 'elasticsearch',
};

/** The price lookup keys of a server's subscription, licensed (quantity 1) or metered. */
export function subscriptionPriceKeys(
  planCode: string,
  addonCodes: readonly string[],
): { lookupKey: string; metered: boolean }[] {
  return [
    { lookupKey: `plan:${planCode}`, metered: false },
    ...[...addonCodes].sort().map((code) => ({ lookupKey: `addon:${code}`, metered: false })),
    ...(Object.keys(METERS) as Meter[])
      .filter((meter) => {
        const addon = METER_ADDON[meter];
        return addon === null || addonCodes.includes(addon);
      })
      .map((meter) => ({ lookupKey: `usage:${meter}:${planCode}`, metered: true })),
  ];
}

/** Stripe line items for a server's plan and add-ons; a price Stripe lacks is a clear error. */
export async function subscriptionLineItems(
  gateway: StripeGateway,
  planCode: string,
  addonCodes: readonly string[],
): Promise<{ price: string; quantity?: number }[]> {
  const wanted = subscriptionPriceKeys(planCode, addonCodes);
  const prices = await gateway.pricesByLookupKey(wanted.map((want) => want.lookupKey));
  const missing = wanted.filter((want) => !prices.has(want.lookupKey)).map((want) => want.lookupKey);
  if (missing.length > 0) {
    throw new AppError(
      'payment_provider_unavailable',
      `Stripe has no price for ${missing.join(', ')}: run \`woolly billing sync\` first.`,
    );
  }
  return wanted.map((want) => {
    const price = prices.get(want.lookupKey)?.id as string;
    return want.metered ? { price } : { price, quantity: 1 };
  });
}

/** Woolly's word for a Stripe subscription status. */
function localStatus(status: Stripe.Subscription.Status): string {
  switch (status) {
    case 'active':
    case 'trialing':
      return 'active';
    case 'past_due':
    case 'unpaid':
      return 'past_due';
    case 'canceled':
    case 'incomplete_expired':
      return 'cancelled';
    default:
      return status;
  }
}

/** The subscription's period, from its items (where Stripe keeps it since 2025). */
function periodOf(subscription: StripeSubscription): { start: Date; end: Date } | null {
  const items = subscription.items.data;
  if (items.length === 0) return null;
  return {
    start: new Date(Math.min(...items.map((item) => item.current_period_start)) * 1000),
    end: new Date(Math.max(...items.map((item) => item.current_period_end)) * 1000),
  };
}

/** The monthly fixed price of the subscription: its licensed items. */
function licensedMinor(subscription: StripeSubscription): number {
  return subscription.items.data.reduce(
    (sum, item) =>
      item.price.recurring?.usage_type === 'metered'
        ? sum
        : sum + (item.price.unit_amount ?? 0) * (item.quantity ?? 1),
    0,
  );
}

/** An audit row written by Stripe's events rather than by a person. */
async function systemAudit(
  tx: Tx,
  entry: { action: string; targetType: string; targetId: string; organizationId: string; data?: object },
): Promise<void> {
  await tx.auditLog.create({
    data: { actor: 'system:stripe', ...entry, data: (entry.data ?? {}) as object },
  });
}

/** Serialises reading and writing one Stripe object across workers: an older read never commits last. */
export async function lockStripeObject(tx: Tx, id: string): Promise<void> {
  await tx.$executeRaw`select pg_advisory_xact_lock(hashtextextended(${`stripe:${id}`}, 0))`;
}

/** What mirroring needs from dunning (billing/dunning.ts); tests may pass their own. */
export interface SubscriptionReactions {
  /** Stripe says the subscription is past due: grace period, notices, then suspension. */
  pastDue(tx: Tx, subscriptionId: string, at: Date): Promise<void>;
  /** Stripe says it is paid up again: a server dunning suspended resumes at once. */
  settled(tx: Tx, subscriptionId: string, at: Date): Promise<void>;
  /** Stripe ended the subscription (cancelled at period end, or ended by Stripe): the server goes. */
  ended(tx: Tx, instanceId: string, at: Date): Promise<void>;
}

/**
 * Mirrors a server's subscription as Stripe has it now, under a lock on its id, and reacts to
 * what changed: past due starts dunning, active again settles it, ended ends the server. A
 * subscription Woolly has no row for yet (its Checkout not processed) throws, and the job is
 * retried until it has.
 */
export async function mirrorServerSubscription(
  tx: Tx,
  subscription: StripeSubscription,
  reactions: SubscriptionReactions,
  now = new Date(),
): Promise<void> {
  await lockStripeObject(tx, subscription.id);
  const local = await tx.subscription.findUnique({ where: { providerId: subscription.id } });
  if (!local) throw new Error(`no server subscription for Stripe subscription ${subscription.id} (yet)`);
  const status = localStatus(subscription.status);
  const period = periodOf(subscription);
  await tx.subscription.update({
    where: { id: local.id },
    data: {
      cancelAtPeriodEnd: subscription.cancel_at_period_end,
      priceMinor: licensedMinor(subscription),
      ...(period ? { currentPeriodStart: period.start, currentPeriodEnd: period.end } : {}),
      ...(status === 'cancelled' || status === 'active' || status === 'past_due' ? {} : { status }),
    },
  });
  if (status === 'past_due' && local.status !== 'past_due') await reactions.pastDue(tx, local.id, now);
  if (status === 'active' && local.status !== 'active') await reactions.settled(tx, local.id, now);
  if (status === 'cancelled' && local.status !== 'cancelled') {
    await tx.subscription.update({
      where: { id: local.id },
      data: {
        status: 'cancelled',
        canceledAt: subscription.canceled_at ? new Date(subscription.canceled_at * 1000) : now,
      },
    });
    await reactions.ended(tx, local.instanceId, now);
  }
}

/**
 * `checkout.session.completed` for a server: the order is paid, its subscription recorded with
 * Stripe's id and period, and provisioning queued, in the handler's transaction. Repeated, or
 * after the order was paid another way, it changes nothing. Paid after the order was cancelled
 * (a race with the cancellation), the new subscription is ended at once so nothing is charged
 * again, and the audit log says so for staff to refund.
 */
export async function completeServerCheckout(
  tx: Tx,
  gateway: StripeGateway,
  session: StripeCheckoutSession,
  log: Logger,
): Promise<void> {
  if (session.status !== 'complete' || session.payment_status === 'unpaid') {
    log.info('Checkout not paid yet; waiting for its payment', { checkoutSessionId: session.id });
    return;
  }
  const orderId = session.client_reference_id ?? session.metadata?.orderId;
  const subscriptionId = stripeIdOf(session.subscription);
  const customerId = stripeIdOf(session.customer);
  if (!orderId || !subscriptionId || !customerId) {
    throw new Error(`Checkout ${session.id} names no order, subscription or customer`);
  }
  await tx.$queryRaw`select 1 from "Order" where id = ${orderId}::uuid for update`;
  const order = await tx.order.findUnique({ where: { id: orderId } });
  if (!order) throw new Error(`Checkout ${session.id} names order ${orderId}, which does not exist`);
  await tx.organization.updateMany({
    where: { id: order.organizationId, stripeCustomerId: null },
    data: { stripeCustomerId: customerId },
  });
  if (order.status === 'cancelled' || order.instanceId === null) {
    await gateway.cancelSubscription(subscriptionId, `cancel-unwanted:${subscriptionId}`);
    await systemAudit(tx, {
      action: 'order.paid_after_cancel',
      targetType: 'order',
      targetId: order.id,
      organizationId: order.organizationId,
      data: { checkoutSessionId: session.id, subscriptionId, refund: 'needed' },
    });
    log.warn('Checkout paid for a cancelled order: subscription ended; refund by hand', { orderId });
    return;
  }
  if (order.status === 'paid') return;
  const subscription = await gateway.retrieveSubscription(subscriptionId);
  const now = new Date();
  await tx.order.update({ where: { id: order.id }, data: { status: 'paid', paidAt: now } });
  await startSubscription(tx, {
    instanceId: order.instanceId,
    organizationId: order.organizationId,
    provider: 'stripe',
    priceMinor: licensedMinor(subscription),
    currency: order.currency,
    now,
  });
  const period = periodOf(subscription);
  await tx.subscription.update({
    where: { instanceId: order.instanceId },
    data: {
      providerId: subscriptionId,
      ...(period ? { currentPeriodStart: period.start, currentPeriodEnd: period.end } : {}),
    },
  });
  await beginProvisioning(tx, order.instanceId);
  await systemAudit(tx, {
    action: 'order.paid',
    targetType: 'order',
    targetId: order.id,
    organizationId: order.organizationId,
    data: { checkoutSessionId: session.id, subscriptionId },
  });
}

/** A paid order's server: provisioning, its Event, and the reconcile, with the caller's writes. */
export async function beginProvisioning(client: SqlClient, instanceId: string): Promise<void> {
  await transition(client, instanceId, 'pending_payment', 'provisioning');
  await execute(client, provisioningEventStatement(instanceId));
  await enqueueReconcile(client, instanceId);
}

/** The event that tells the customer provisioning is queued. */
export function provisioningEventStatement(instanceId: string): Statement {
  return {
    name: 'event-provisioning',
    text: `insert into "Event" ("instanceId", type, message) values ($1::uuid, 'instance.provisioning', $2::text) returning 1`,
    values: [instanceId, 'Payment confirmed; provisioning queued.'],
  };
}

export const SYNC_SUBSCRIPTION_TASK = 'billing:sync-subscription';
const syncPayload = z.object({ v: z.literal(1), instanceId: z.uuid() });

/**
 * Queues bringing the server's Stripe subscription in line with Woolly, in the caller's
 * transaction (so a change and its billing commit together). One queued job per server: a
 * burst of changes is synced once, from the state at the time it runs.
 */
export async function enqueueSubscriptionSync(client: SqlClient, instanceId: string): Promise<void> {
  await execute(client, {
    name: 'subscription-sync-job',
    text: `select graphile_worker.add_job($1::text, json_build_object('v', 1, 'instanceId', $2::text),
             job_key := $1::text || ':' || $2::text, max_attempts := 25)`,
    values: [SYNC_SUBSCRIPTION_TASK, instanceId],
  });
}

/** What a sync did, for its log line and for tests. */
export type SyncOutcome = 'not_stripe' | 'in_line' | 'updated' | 'cancelled' | 'ended_already';

/**
 * Brings one server's Stripe subscription in line with Woolly: items for its plan and add-ons
 * (added and removed items prorated), `cancel_at_period_end` while it is set to cancel or is
 * being deleted (a restore undoes it), and the subscription ended once the server is purged.
 * The difference is computed from Stripe's current copy, so a retry after an answer was lost
 * finds nothing left to send; the update's idempotency key names the server's generation, the
 * subscription row's last change and the change itself, so two syncs racing send it once and a
 * later change of the same shape (cancel, withdraw, cancel again) is sent again.
 */
export async function syncSubscription(
  deps: { db: Db; gateway: StripeGateway },
  instanceId: string,
): Promise<SyncOutcome> {
  const instance = await deps.db.instance.findUnique({
    where: { id: instanceId },
    include: { plan: true, addons: { include: { addonType: true } }, subscription: true },
  });
  const local = instance?.subscription;
  if (!instance || !local || local.provider !== 'stripe' || !local.providerId) return 'not_stripe';
  const remote = await deps.gateway.retrieveSubscription(local.providerId);
  if (remote.status === 'canceled' || remote.status === 'incomplete_expired') return 'ended_already';
  if (instance.status === 'deleted' || local.status === 'cancelled') {
    await deps.gateway.cancelSubscription(remote.id, `cancel:${remote.id}`);
    return 'cancelled';
  }
  const addonCodes = instance.addons.map((addon) => addon.addonType.code);
  const wanted = subscriptionPriceKeys(instance.plan.code, addonCodes);
  const have = new Map(remote.items.data.map((item) => [item.price.lookup_key, item]));
  const removed = remote.items.data.filter(
    (item) =>
      item.price.lookup_key !== null && !wanted.some((want) => want.lookupKey === item.price.lookup_key),
  );
  const added = wanted.filter((want) => !have.has(want.lookupKey));
  const cancelAtPeriodEnd = local.cancelAtPeriodEnd || instance.status === 'deleting';
  if (removed.length === 0 && added.length === 0 && remote.cancel_at_period_end === cancelAtPeriodEnd) {
    return 'in_line';
  }
  const prices =
    added.length > 0 ? await subscriptionLineItems(deps.gateway, instance.plan.code, addonCodes) : [];
  const keys = wanted.map((want) => want.lookupKey);
  const items: Stripe.SubscriptionUpdateParams.Item[] = [
    ...removed.map((item) => ({ id: item.id, deleted: true })),
    ...added.map((want) => prices[keys.indexOf(want.lookupKey)] as { price: string; quantity?: number }),
  ];
  const params: Stripe.SubscriptionUpdateParams = {
    cancel_at_period_end: cancelAtPeriodEnd,
    ...(items.length > 0 ? { items, proration_behavior: 'create_prorations' } : {}),
  };
  const digest = createHash('sha256').update(JSON.stringify(params)).digest('hex').slice(0, 16);
  const updated = await deps.gateway.updateSubscription(
    remote.id,
    params,
    `subscription-sync:${instanceId}:${instance.generation}:${local.updatedAt.getTime()}:${digest}`,
  );
  await deps.db.subscription.update({
    where: { id: local.id },
    data: { priceMinor: licensedMinor(updated), cancelAtPeriodEnd: updated.cancel_at_period_end },
  });
  return 'updated';
}

/** The subscription sync job, for the worker. */
export function subscriptionTasks(deps: {
  db: Db;
  gateway: StripeGateway;
  log: Logger;
}): Record<string, Task> {
  return {
    [SYNC_SUBSCRIPTION_TASK]: async (raw, helpers: JobHelpers) => {
      const { instanceId } = syncPayload.parse(raw);
      const outcome = await syncSubscription(deps, instanceId);
      deps.log.info('subscription synced', { instanceId, outcome, jobId: helpers.job.id });
    },
  };
}

/** A server subscription as the API shows it. */
export function presentSubscription(subscription: {
  status: string;
  provider: string;
  priceMinor: number;
  currency: string;
  currentPeriodStart: Date;
  currentPeriodEnd: Date;
  cancelAtPeriodEnd: boolean;
  pastDueSince: Date | null;
  graceEndsAt: Date | null;
  canceledAt: Date | null;
}) {
  return {
    status: subscription.status,
    provider: subscription.provider,
    price: { amountMinor: subscription.priceMinor, currency: subscription.currency },
    currentPeriod: { start: subscription.currentPeriodStart, end: subscription.currentPeriodEnd },
    cancelAtPeriodEnd: subscription.cancelAtPeriodEnd,
    pastDueSince: subscription.pastDueSince,
    graceEndsAt: subscription.graceEndsAt,
    canceledAt: subscription.canceledAt,
  };
}
