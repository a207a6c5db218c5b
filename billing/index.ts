import { randomUUID } from 'node:crypto';
import { execute, type SqlClient } from '../core/db.ts';

/**
 * Starts an instance's subscription once its order is paid: the Subscription row and the
 * ledger entry that bills the first period. Idempotent per instance (unique keys), so a retry
 * of the payment confirmation never bills twice.
 */
export async function startSubscription(
  client: SqlClient,
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
  await execute(client, {
    name: 'subscription-start',
    text: `insert into "Subscription" (id, "instanceId", "organizationId", provider, status, "priceMinor",
             currency, "currentPeriodStart", "currentPeriodEnd")
           values ($1::uuid, $2::uuid, $3::uuid, $4, 'active', $5, $6, $7, $8)
           on conflict ("instanceId") do nothing`,
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
  });
  await execute(client, {
    name: 'usage-subscription-start',
    text: `insert into "UsageEvent" ("instanceId", meter, quantity, "occurredAt", "idempotencyKey")
           values ($1::uuid, 'subscription_start', $2, $3, $4)
           on conflict ("idempotencyKey") do nothing`,
    values: [input.instanceId, input.priceMinor, input.now, `subscription-start:${input.instanceId}`],
  });
}
