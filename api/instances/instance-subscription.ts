import { enqueueSubscriptionSync, presentSubscription } from '../../billing/subscriptions.ts';
import { AppError } from '../../core/errors.ts';
import { audit } from '../audit.ts';
import type { ApiDeps, RequestContext } from '../context.ts';
import { assertInstanceRole, MANAGING_ROLES, MEMBER_ROLES } from '../policy.ts';

/** The server's subscription; members of its organization and staff see it. */
export async function getInstanceSubscription(
  deps: Pick<ApiDeps, 'db'>,
  ctx: RequestContext,
  instanceId: string,
) {
  const instance = await deps.db.instance.findUnique({
    where: { id: instanceId },
    include: { subscription: true },
  });
  if (!instance) throw new AppError('not_found', `No instance ${instanceId}.`);
  await assertInstanceRole(deps.db, ctx.actor, instance, MEMBER_ROLES);
  if (!instance.subscription) {
    throw new AppError('not_found', `Server ${instanceId} has no subscription yet: its order is not paid.`);
  }
  return presentSubscription(instance.subscription);
}

/**
 * Sets or clears cancellation at the end of the paid period. The row, its audit entry and the
 * job that tells Stripe commit together; the server keeps running until the period ends.
 */
export async function setCancelAtPeriodEnd(
  deps: Pick<ApiDeps, 'db'>,
  ctx: RequestContext,
  instanceId: string,
  cancelAtPeriodEnd: boolean,
) {
  return deps.db.$transaction(async (tx) => {
    await tx.$queryRaw`select 1 from "Instance" where id = ${instanceId}::uuid for update`;
    const instance = await tx.instance.findUnique({
      where: { id: instanceId },
      include: { subscription: true },
    });
    if (!instance) throw new AppError('not_found', `No instance ${instanceId}.`);
    await assertInstanceRole(tx, ctx.actor, instance, MANAGING_ROLES);
    const subscription = instance.subscription;
    if (!subscription) {
      throw new AppError(
        'conflict',
        `Server ${instanceId} has no subscription yet: cancel its unpaid order instead.`,
      );
    }
    if (subscription.status === 'cancelled') {
      throw new AppError('conflict', `The subscription of server ${instanceId} has ended already.`);
    }
    const updated = await tx.subscription.update({
      where: { id: subscription.id },
      data: { cancelAtPeriodEnd },
    });
    if (subscription.cancelAtPeriodEnd !== cancelAtPeriodEnd) {
      await audit(tx, ctx, {
        action: cancelAtPeriodEnd ? 'subscription.cancel_at_period_end' : 'subscription.keep',
        targetType: 'instance',
        targetId: instanceId,
        organizationId: instance.organizationId,
        data: { periodEnd: subscription.currentPeriodEnd.toISOString() },
      });
      await tx.event.create({
        data: {
          instanceId,
          type: cancelAtPeriodEnd ? 'billing.cancel_scheduled' : 'billing.cancel_withdrawn',
          message: cancelAtPeriodEnd
            ? `The subscription ends on ${subscription.currentPeriodEnd.toISOString()}; the server is deleted then.`
            : 'The cancellation was withdrawn; the subscription renews.',
        },
      });
      await enqueueSubscriptionSync(tx, instanceId);
    }
    return presentSubscription(updated);
  });
}
