import type { Tx } from '../core/db.ts';

/**
 * Starts an instance's subscription once its order is paid: the Subscription row and the
 * ledger entry that bills the first period. Idempotent per instance (unique keys), so a retry
 * of the payment confirmation never bills twice.
 */
export async function startSubscription(
  tx: Tx,
  input: {
    instanceId: string;
    organizationId: string;
    provider: 'none' | 'stripe';
    priceMinor: number;
    currency: string;
    now: Date;
  },
): Promise<void> {
  const periodEnd = new Date(input.now);
  periodEnd.setUTCMonth(periodEnd.getUTCMonth() + 1);
  await tx.subscription.upsert({
    where: { instanceId: input.instanceId },
    create: {
      instanceId: input.instanceId,
      organizationId: input.organizationId,
      provider: input.provider,
      status: 'active',
      priceMinor: input.priceMinor,
      currency: input.currency,
      currentPeriodStart: input.now,
      currentPeriodEnd: periodEnd,
    },
    update: {},
  });
  await tx.usageEvent.createMany({
    data: [
      {
        instanceId: input.instanceId,
        meter: 'subscription_start',
        quantity: BigInt(input.priceMinor),
        occurredAt: input.now,
        idempotencyKey: `subscription-start:${input.instanceId}`,
      },
    ],
    skipDuplicates: true,
  });
}
