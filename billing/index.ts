import { randomUUID } from 'node:crypto';
import type { Task } from 'graphile-worker';
import type { Pool } from 'pg';
import { type Db, execute, type SqlClient, type Statement } from '../core/db.ts';
import type { Logger } from '../core/log.ts';
import { reportUsage } from './meter-reports.ts';
import { makeStripeClient, makeStripeGateway } from './stripe-gateway.ts';
import { stripeWebhookTasks } from './webhooks.ts';

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
 * row and the ledger entry that bills the first period. Idempotent per instance (unique
 * keys), so a retry of the payment confirmation never bills twice.
 */
export function subscriptionStartStatements(input: SubscriptionStart): Statement[] {
  const periodEnd = new Date(input.now);
  periodEnd.setUTCMonth(periodEnd.getUTCMonth() + 1);
  return [
    {
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
    },
    {
      name: 'usage-subscription-start',
      text: `insert into "UsageEvent" ("instanceId", meter, quantity, "occurredAt", "idempotencyKey")
             values ($1::uuid, 'subscription_start', $2::bigint, $3::timestamptz, $4)
             on conflict ("idempotencyKey") do nothing returning 1`,
      values: [input.instanceId, input.priceMinor, input.now, `subscription-start:${input.instanceId}`],
    },
  ];
}

/** Starts an instance's subscription (`subscriptionStartStatements`) on `client`. */
export async function startSubscription(client: SqlClient, input: SubscriptionStart): Promise<void> {
  for (const statement of subscriptionStartStatements(input)) await execute(client, statement);
}

export const REPORT_USAGE_TASK = 'billing:report-usage';

/**
 * The billing jobs for the worker: with Stripe configured, processing its webhooks and
 * reporting the usage ledger to its meters every 10 minutes (one reporter at a time: a job
 * key); with the `none` provider, none (the ledger is kept and nothing is sent).
 */
export function billingTasks(deps: {
  db: Db;
  pool: Pick<Pool, 'query'>;
  log: Logger;
  stripe: { secretKey: string; apiUrl: string | null } | null;
}): { tasks: Record<string, Task>; crontab: string } {
  const { stripe } = deps;
  if (!stripe) return { tasks: {}, crontab: '' };
  // The reporter retries itself, with backoff, per call: no retries inside the client.
  const client = makeStripeClient(stripe, { maxNetworkRetries: 0 });
  return {
    tasks: {
      ...stripeWebhookTasks({ db: deps.db, log: deps.log, gateway: makeStripeGateway(stripe) }),
      [REPORT_USAGE_TASK]: async () => {
        const result = await reportUsage({
          pool: deps.pool,
          sink: (event) => client.billing.meterEvents.create(event),
        });
        deps.log.info('usage reported', result);
      },
    },
    crontab: `*/10 * * * * ${REPORT_USAGE_TASK} ?jobKey=${REPORT_USAGE_TASK}`,
  };
}
