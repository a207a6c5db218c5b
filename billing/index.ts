/**
 * Billing's jobs and reactions, put together for the worker. With either provider the usage
 * ledger is sampled, dunning runs, and (provider `none`) invoices are rendered from the ledger;
 * with Stripe, its webhooks are processed, subscriptions kept in line with each server, usage
 * reported to its meters, and the meters checked for drift.
 */
import type { Task } from 'graphile-worker';
import type { Pool } from 'pg';
import { deleteInstanceAsSystem } from '../api/instances/instance-actions.ts';
import type { Config } from '../core/config.ts';
import type { SecretBox } from '../core/crypto.ts';
import type { Db, Tx } from '../core/db.ts';
import type { Logger } from '../core/log.ts';
import { type DunningSettings, dunningReactions, dunningSettingsOf, dunningTasks } from './dunning.ts';
import { ledgerInvoiceTasks } from './ledger-invoices.ts';
import { makeStripeUsageSinks, reportUsage } from './meter-reports.ts';
import { usageSamplerTasks } from './samplers.ts';
import { sponsorshipReactions } from './sponsorships.ts';
import { makeStripeClient, makeStripeGateway, type StripeGateway } from './stripe-gateway.ts';
import { type SubscriptionReactions, subscriptionTasks } from './subscriptions.ts';
import { makeStripeMeterSummaries, usageDriftTasks } from './usage-drift.ts';
import { stripeWebhookTasks } from './webhooks.ts';

export { sponsorshipReactions };

export const REPORT_USAGE_TASK = 'billing:report-usage';

/**
 * What a server subscription's changes at Stripe set off: past due starts dunning, paid again
 * settles it, and an ended subscription (cancelled at period end) deletes the server the normal
 * way, restorable for the deletion grace period.
 */
export function billingReactions(deps: { settings: DunningSettings }): SubscriptionReactions {
  return {
    ...dunningReactions(deps.settings),
    async ended(tx: Tx, instanceId: string, at: Date) {
      const instance = await tx.instance.findUnique({ where: { id: instanceId }, select: { status: true } });
      if (!instance || instance.status === 'deleting' || instance.status === 'deleted') return;
      await deleteInstanceAsSystem(
        tx,
        { system: 'stripe' },
        instanceId,
        new Date(at.getTime() + deps.settings.deletionGraceHours * 3_600_000),
      );
    },
  };
}

/** The billing jobs and their schedule for the worker. */
export function billingTasks(deps: {
  db: Db;
  pool: Pick<Pool, 'query'>;
  log: Logger;
  box: SecretBox;
  config: Pick<Config, 'stripe' | 'dunning' | 'deletionGraceHours'>;
  /** Stripe's adapter; unset: built from `config.stripe`. Tests pass the stateful stand-in. */
  gateway?: StripeGateway;
}): { tasks: Record<string, Task>; crontab: string } {
  const { stripe } = deps.config;
  const settings = dunningSettingsOf(deps.config);
  const gateway = deps.gateway ?? (stripe ? makeStripeGateway(stripe) : null);
  const parts = [
    usageSamplerTasks({ pool: deps.pool, box: deps.box, log: deps.log }),
    dunningTasks({
      db: deps.db,
      log: deps.log,
      settings,
      cancelProviderSubscription: gateway
        ? async (id) => {
            await gateway.cancelSubscription(id, `cancel:${id}`);
          }
        : null,
    }),
    ledgerInvoiceTasks({ db: deps.db, log: deps.log }),
  ];
  if (stripe && gateway) {
    // The reporter retries itself, with backoff, per call: no retries inside the client.
    const client = makeStripeClient(stripe, { maxNetworkRetries: 0 });
    parts.push(
      {
        tasks: {
          ...stripeWebhookTasks({
            db: deps.db,
            log: deps.log,
            gateway,
            reactions: billingReactions({ settings }),
            sponsorships: sponsorshipReactions,
          }),
          ...subscriptionTasks({ db: deps.db, gateway, log: deps.log }),
          [REPORT_USAGE_TASK]: async () => {
            const result = await reportUsage({ pool: deps.pool, ...makeStripeUsageSinks(client) });
            deps.log.info('usage reported', result);
          },
        },
        crontab: `*/10 * * * * ${REPORT_USAGE_TASK} ?jobKey=${REPORT_USAGE_TASK}`,
      },
      usageDriftTasks({ pool: deps.pool, log: deps.log, summaries: makeStripeMeterSummaries(client) }),
    );
  }
  return {
    tasks: Object.assign({}, ...parts.map((part) => part.tasks)),
    crontab: parts
      .map((part) => part.crontab)
      .filter(Boolean)
      .join('\n'),
  };
}
