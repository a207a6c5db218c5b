import { startSubscription } from '../../billing/index.ts';
import { isUniqueViolation, type Tx } from '../../core/db.ts';
import { normaliseServerDomain } from '../../core/domain/domain-name.ts';
import { transition } from '../../core/domain/instance-status.ts';
import { AppError, type FieldError } from '../../core/errors.ts';
import { enqueueReconcile } from '../../provisioner/index.ts';
import { audit } from '../audit.ts';
import type { ApiDeps, RequestContext } from '../context.ts';
import { assertMayOrder, assertOrganizationAccess, isStaff, MANAGING_ROLES } from '../policy.ts';

export interface CreateOrderInput {
  organizationId: string;
  plan: string;
  domain: string;
  addons: string[];
}

/**
 * Places an order: the Order, its Instance (pending payment) and add-ons in one transaction.
 * With the `none` billing provider an order placed by staff counts as paid at once (the
 * staff member is the payment authority), which starts the subscription and queues
 * provisioning in the same transaction; a customer's order waits for `approvePayment`.
 */
export async function createOrder(deps: ApiDeps, ctx: RequestContext, input: CreateOrderInput) {
  await assertOrganizationAccess(deps.db, ctx.actor, input.organizationId, MANAGING_ROLES);
  await assertMayOrder(deps.db, ctx.actor);
  const domain = normaliseServerDomain(input.domain, deps.config.baseDomain);
  const plan = await deps.db.plan.findUnique({ where: { code: input.plan } });
  if (!plan?.active) {
    throw new AppError('unprocessable', `There is no plan "${input.plan}".`, {
      errors: [{ field: 'plan', message: 'Unknown plan; GET /v1/plans lists them.' }],
    });
  }
  const addonTypes = await deps.db.addonType.findMany({
    where: { code: { in: input.addons }, active: true },
  });
  const addonErrors: FieldError[] = input.addons.flatMap((code, index): FieldError[] => {
    if (!addonTypes.some((addon) => addon.code === code))
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
  if (await deps.db.instance.findUnique({ where: { domain }, select: { id: true } })) {
    throw domainTaken(domain);
  }
  const totalMinor = plan.priceMinor + addonTypes.reduce((sum, addon) => sum + addon.priceMinor, 0);
  const paidNow = deps.config.billingProvider === 'none' && isStaff(ctx.actor);
  try {
    return await deps.db.$transaction(async (tx) => {
      const now = new Date();
      const instance = await tx.instance.create({
        data: {
          organizationId: input.organizationId,
          planId: plan.id,
          domain,
          mastodonVersion: deps.config.mastodonVersion,
          status: 'pending_payment',
          spec: { addons: input.addons },
          addons: { create: addonTypes.map((addon) => ({ addonTypeId: addon.id })) },
        },
      });
      const order = await tx.order.create({
        data: {
          organizationId: input.organizationId,
          instanceId: instance.id,
          planId: plan.id,
          addonCodes: input.addons,
          status: paidNow ? 'paid' : 'pending_payment',
          paidAt: paidNow ? now : null,
          totalMinor,
          currency: plan.currency,
          createdById: ctx.actor.userId,
        },
      });
      await audit(tx, ctx, {
        action: 'order.create',
        targetType: 'order',
        targetId: order.id,
        organizationId: input.organizationId,
        data: { domain, plan: plan.code, addons: input.addons },
      });
      if (paidNow) await beginProvisioning(tx, order, instance.id, deps.config.billingProvider, now);
      return order;
    });
  } catch (error) {
    if (isUniqueViolation(error)) throw domainTaken(domain);
    throw error;
  }
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
    if (count === 0)
      throw new AppError('conflict', `Order ${orderId} is ${order.status}, not awaiting payment.`);
    await audit(tx, ctx, {
      action: 'order.approve_payment',
      targetType: 'order',
      targetId: order.id,
      organizationId: order.organizationId,
    });
    await beginProvisioning(tx, order, order.instanceId, deps.config.billingProvider, now);
    return order;
  });
}

async function beginProvisioning(
  tx: Tx,
  order: { organizationId: string; totalMinor: number; currency: string },
  instanceId: string,
  provider: 'none' | 'stripe',
  now: Date,
): Promise<void> {
  await startSubscription(tx, {
    instanceId,
    organizationId: order.organizationId,
    provider,
    priceMinor: order.totalMinor,
    currency: order.currency,
    now,
  });
  await transition(tx, instanceId, 'pending_payment', 'provisioning');
  await tx.event.create({
    data: { instanceId, type: 'instance.provisioning', message: 'Payment confirmed; provisioning queued.' },
  });
  await enqueueReconcile(tx, instanceId);
}

function domainTaken(domain: string): AppError {
  return new AppError(
    'domain_unavailable',
    `The domain ${domain} is taken or was used before; Mastodon domains are never reused.`,
    {
      errors: [{ field: 'domain', message: 'Already in use.' }],
    },
  );
}

/** An order as the API shows it. */
export function presentOrder(order: {
  id: string;
  organizationId: string;
  instanceId: string;
  status: string;
  addonCodes: string[];
  totalMinor: number;
  currency: string;
  paidAt: Date | null;
  createdAt: Date;
}) {
  return {
    id: order.id,
    organizationId: order.organizationId,
    instanceId: order.instanceId,
    status: order.status,
    addons: order.addonCodes,
    total: { amountMinor: order.totalMinor, currency: order.currency },
    paidAt: order.paidAt,
    createdAt: order.createdAt,
  };
}

/** An order the actor may see; others answer `not_found`. */
export async function getOrder(deps: ApiDeps, actor: RequestContext['actor'], orderId: string) {
  const order = await deps.db.order.findUnique({ where: { id: orderId } });
  if (!order) throw new AppError('not_found', `No order ${orderId}.`);
  await assertOrganizationAccess(deps.db, actor, order.organizationId, [
    'owner',
    'admin',
    'billing',
    'viewer',
  ]).catch(() => {
    throw new AppError('not_found', `No order ${orderId}.`);
  });
  return order;
}
