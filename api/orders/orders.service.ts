import { randomUUID } from 'node:crypto';
import { type Checkout, checkoutForOrder, closeCheckout } from '../../billing/checkout.ts';
import type { StripeGateway } from '../../billing/stripe-gateway.ts';
import {
  beginProvisioning,
  provisioningEventStatement,
  startSubscription,
  subscriptionStartStatement,
} from '../../billing/subscriptions.ts';
import { combine, execute, isUniqueViolation } from '../../core/db.ts';
import { AppError, type FieldError } from '../../core/errors.ts';
import type { OrderStatus } from '../../core/generated/prisma/enums.ts';
import { reconcileJobStatement } from '../../provisioner/index.ts';
import { audit, auditStatement } from '../audit.ts';
import type { ApiDeps, RequestContext } from '../context.ts';
import { decodeCursor, encodeCursor } from '../cursor.ts';
import {
  assertMayOrder,
  assertOrganizationAccess,
  decideOrganizationAccess,
  isStaff,
  MANAGING_ROLES,
  MEMBER_ROLES,
} from '../policy.ts';
import { acceptOrderDomain, domainTaken } from './order-domain.ts';
import { orderInsertStatements, readOrderFacts } from './orders.repository.ts';

export interface CreateOrderInput {
  organizationId: string;
  plan: string;
  domain: string;
  region?: string;
  addons: string[];
}

/**
 * Places an order: the Order, its Instance (pending payment) and add-ons in one transaction.
 * With Stripe, a Checkout session is then opened for it (`checkout`): the order is written
 * first, so Stripe being down loses nothing, and the buyer retries with `openCheckout`. With
 * the `none` billing provider an order placed by staff counts as paid at once (the staff
 * member is the payment authority), which starts the subscription and queues provisioning in
 * the same transaction; a customer's order waits for `approvePayment`.
 */
export async function createOrder(deps: ApiDeps, ctx: RequestContext, input: CreateOrderInput) {
  const facts = await readOrderFacts(deps.pool, { ...input, userId: ctx.actor.userId });
  decideOrganizationAccess(ctx.actor, input.organizationId, facts, MANAGING_ROLES);
  assertMayOrder(facts.user);
  const domain = acceptOrderDomain(input.domain, deps.config.baseDomain, facts);
  const plan = facts.plan;
  if (!plan?.active) {
    throw new AppError('unprocessable', `There is no plan "${input.plan}".`, {
      errors: [{ field: 'plan', message: 'Unknown plan; GET /v1/plans lists them.' }],
    });
  }
  const addonErrors: FieldError[] = input.addons.flatMap((code, index): FieldError[] => {
    if (!facts.addons.some((addon) => addon.code === code))
      return [{ field: `addons.${index}`, message: `Unknown add-on "${code}".` }];
    if (!plan.addonCodes.includes(code))
      return [{ field: `addons.${index}`, message: `The ${plan.name} plan cannot carry "${code}".` }];
    return [];
  });
  if (addonErrors.length > 0) {
    throw new AppError('unprocessable', 'Some add-ons cannot be ordered with this plan.', {
      errors: addonErrors,
    });
  }
  if (input.region !== undefined && !facts.regions.includes(input.region)) {
    throw new AppError('unprocessable', `No cluster runs in region "${input.region}".`, {
      errors: [
        {
          field: 'region',
          message: `Unknown region; servers run in: ${[...facts.regions].sort().join(', ') || 'none yet'}.`,
        },
      ],
    });
  }
  const totalMinor = plan.priceMinor + facts.addons.reduce((sum, addon) => sum + addon.priceMinor, 0);
  const paid = deps.config.billingProvider === 'none' && isStaff(ctx.actor);
  const at = new Date();
  const order = {
    id: randomUUID(),
    organizationId: input.organizationId,
    instanceId: randomUUID(),
    domain,
    status: paid ? ('paid' as const) : ('pending_payment' as const),
    addonCodes: input.addons,
    totalMinor,
    currency: plan.currency,
    paidAt: paid ? at : null,
    createdAt: at,
  };
  const writes = [
    ...orderInsertStatements({
      ...order,
      planId: plan.id,
      mastodonVersion: deps.config.mastodonVersion,
      region: input.region ?? null,
      addonTypeIds: facts.addons.map((addon) => addon.id),
      paid,
      createdById: ctx.actor.userId,
      at,
    }),
    auditStatement(ctx, {
      action: 'order.create',
      targetType: 'order',
      targetId: order.id,
      organizationId: input.organizationId,
      data: { domain, plan: plan.code, addons: input.addons },
    }),
    ...(paid
      ? [
          subscriptionStartStatement({
            instanceId: order.instanceId,
            organizationId: order.organizationId,
            provider: deps.config.billingProvider,
            priceMinor: totalMinor,
            currency: plan.currency,
            now: at,
          }),
          provisioningEventStatement(order.instanceId),
          reconcileJobStatement(order.instanceId),
        ]
      : []),
  ];
  try {
    // One statement, one round trip: it all commits, or none of it does.
    await execute(deps.pool, combine(paid ? 'order-create-paid' : 'order-create', writes));
  } catch (error) {
    // Another order took the domain between the facts and this write.
    if (isUniqueViolation(error, 'Instance_domain_key')) throw domainTaken(domain);
    throw error;
  }
  const gateway = stripeGatewayOf(deps);
  if (!gateway || paid) return { ...order, checkoutUrl: null, checkoutExpiresAt: null };
  const checkout = await checkoutForOrder(
    { db: deps.db, gateway, publicUrl: deps.config.publicUrl },
    order.id,
  ).catch((error: unknown) => {
    if (error instanceof AppError && error.code === 'payment_provider_unavailable') {
      throw new AppError(
        'payment_provider_unavailable',
        `Order ${order.id} is placed, unpaid. ${error.detail} POST /v1/orders/${order.id}/checkout opens Checkout again.`,
        { cause: error },
      );
    }
    throw error;
  });
  return { ...order, checkoutUrl: checkout.url, checkoutExpiresAt: checkout.expiresAt };
}

/** Stripe for this API (made once by `makeApp` from the config); null without Stripe. */
export function stripeGatewayOf(deps: ApiDeps): StripeGateway | null {
  return deps.stripeGateway ?? null;
}

/** Where to pay an unpaid order: its open Checkout session, or a fresh one (Stripe only). */
export async function openCheckout(deps: ApiDeps, ctx: RequestContext, orderId: string): Promise<Checkout> {
  const order = await deps.db.order.findUnique({ where: { id: orderId } });
  if (!order) throw new AppError('not_found', `No order ${orderId}.`);
  await assertOrganizationAccess(deps.db, ctx.actor, order.organizationId, MANAGING_ROLES).catch(() => {
    throw new AppError('not_found', `No order ${orderId}.`);
  });
  const gateway = stripeGatewayOf(deps);
  if (!gateway) {
    throw new AppError(
      'conflict',
      'Payments here are not taken through Stripe (billing provider none): staff mark orders paid.',
    );
  }
  return checkoutForOrder({ db: deps.db, gateway, publicUrl: deps.config.publicUrl }, orderId);
}

/** Staff confirms payment of an order (billing provider `none`), which starts provisioning. */
export async function approvePayment(deps: ApiDeps, ctx: RequestContext, orderId: string) {
  if (!isStaff(ctx.actor)) throw new AppError('not_found', `No order ${orderId}.`);
  return deps.db.$transaction(async (tx) => {
    const now = new Date();
    const { count } = await tx.order.updateMany({
      where: { id: orderId, status: 'pending_payment' },
      data: { status: 'paid', paidAt: now },
    });
    const order = await tx.order.findUnique({ where: { id: orderId } });
    if (!order) throw new AppError('not_found', `No order ${orderId}.`);
    if (count === 0 || order.instanceId === null)
      throw new AppError('conflict', `Order ${orderId} is ${order.status}, not awaiting payment.`);
    await audit(tx, ctx, {
      action: 'order.approve_payment',
      targetType: 'order',
      targetId: order.id,
      organizationId: order.organizationId,
    });
    await startSubscription(tx, {
      instanceId: order.instanceId,
      organizationId: order.organizationId,
      provider: 'none',
      priceMinor: order.totalMinor,
      currency: order.currency,
      now,
    });
    await beginProvisioning(tx, order.instanceId);
    return order;
  });
}

/**
 * Cancels an order not yet paid. No server ever ran for it, so its instance record goes too
 * (add-ons, events and the like with it) and the domain may be ordered again; the order
 * itself stays, cancelled, with the domain it named.
 */
export async function cancelOrder(deps: ApiDeps, ctx: RequestContext, orderId: string) {
  const gateway = stripeGatewayOf(deps);
  if (gateway) {
    const unpaid = await deps.db.order.findUnique({ where: { id: orderId } });
    if (unpaid?.status === 'pending_payment') {
      await assertOrganizationAccess(deps.db, ctx.actor, unpaid.organizationId, MANAGING_ROLES).catch(() => {
        throw new AppError('not_found', `No order ${orderId}.`);
      });
      await closeCheckout(gateway, unpaid);
    }
  }
  return deps.db.$transaction(async (tx) => {
    await tx.$queryRaw`select 1 from "Order" where id = ${orderId}::uuid for update`;
    const order = await tx.order.findUnique({ where: { id: orderId } });
    if (!order) throw new AppError('not_found', `No order ${orderId}.`);
    await assertOrganizationAccess(tx, ctx.actor, order.organizationId, MANAGING_ROLES).catch(() => {
      throw new AppError('not_found', `No order ${orderId}.`);
    });
    if (order.status !== 'pending_payment') {
      throw new AppError(
        'conflict',
        `Order ${orderId} is ${order.status}; only an unpaid order can be cancelled${order.status === 'paid' ? ' (delete the server instead)' : ''}.`,
      );
    }
    const cancelled = await tx.order.update({
      where: { id: orderId },
      data: { status: 'cancelled', instanceId: null },
    });
    if (order.instanceId) await tx.instance.delete({ where: { id: order.instanceId } });
    await audit(tx, ctx, {
      action: 'order.cancel',
      targetType: 'order',
      targetId: orderId,
      organizationId: order.organizationId,
      data: { domain: order.domain, instanceId: order.instanceId },
    });
    return cancelled;
  });
}

/** An order as the API shows it. */
export function presentOrder(order: {
  id: string;
  organizationId: string;
  instanceId: string | null;
  domain: string;
  status: string;
  addonCodes: string[];
  totalMinor: number;
  currency: string;
  paidAt: Date | null;
  createdAt: Date;
  checkoutUrl: string | null;
  checkoutExpiresAt: Date | null;
}) {
  const checkoutOpen =
    order.status === 'pending_payment' &&
    order.checkoutUrl !== null &&
    order.checkoutExpiresAt !== null &&
    order.checkoutExpiresAt.getTime() > Date.now();
  return {
    id: order.id,
    organizationId: order.organizationId,
    instanceId: order.instanceId,
    domain: order.domain,
    status: order.status,
    addons: order.addonCodes,
    total: { amountMinor: order.totalMinor, currency: order.currency },
    paidAt: order.paidAt,
    createdAt: order.createdAt,
    checkout:
      checkoutOpen && order.checkoutUrl && order.checkoutExpiresAt
        ? { url: order.checkoutUrl, expiresAt: order.checkoutExpiresAt }
        : null,
  };
}

/** An order the actor may see; others answer `not_found`. */
export async function getOrder(deps: ApiDeps, actor: RequestContext['actor'], orderId: string) {
  const order = await deps.db.order.findUnique({ where: { id: orderId } });
  if (!order) throw new AppError('not_found', `No order ${orderId}.`);
  await assertOrganizationAccess(deps.db, actor, order.organizationId, MEMBER_ROLES).catch(() => {
    throw new AppError('not_found', `No order ${orderId}.`);
  });
  return order;
}

/**
 * A page of the orders the actor may see (members: their organizations'; staff: all), newest
 * first, as `{ data, nextCursor }`; the cursor is the keyset of the last order served.
 */
export async function listOrders(
  deps: Pick<ApiDeps, 'db'>,
  actor: RequestContext['actor'],
  query: {
    status?: OrderStatus | undefined;
    organizationId?: string | undefined;
    limit?: number | undefined;
    cursor?: string | undefined;
  },
) {
  const limit = query.limit ?? 50;
  const after = query.cursor ? decodeCursor(query.cursor) : undefined;
  const rows = await deps.db.order.findMany({
    where: {
      ...(isStaff(actor) ? {} : { organization: { memberships: { some: { userId: actor.userId } } } }),
      ...(query.status ? { status: query.status } : {}),
      ...(query.organizationId ? { organizationId: query.organizationId } : {}),
      ...(after
        ? {
            OR: [
              { createdAt: { lt: after.createdAt } },
              { createdAt: after.createdAt, id: { lt: after.id } },
            ],
          }
        : {}),
    },
    orderBy: [{ createdAt: 'desc' }, { id: 'desc' }],
    take: limit + 1,
  });
  const page = rows.slice(0, limit);
  const last = page.at(-1);
  return {
    data: page.map(presentOrder),
    nextCursor: rows.length > limit && last ? encodeCursor(last) : null,
  };
}
