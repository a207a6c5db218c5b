/**
 * Dunning: what happens to a server whose payment failed, on the local Subscription row, the
 * same for every provider. Past due with a grace period (notices) → suspended when the grace
 * ends (data kept) → deleted when the retention window ends (the normal deletion: the purge
 * takes a final backup) → and at any point a payment settles it at once: a server dunning
 * suspended resumes, one dunning deleted is restored while it still can be. Billing must never
 * leave a paid server down.
 *
 * Every function runs in its caller's transaction, locks what it changes and re-checks the row
 * first, so calling it again (a redelivered webhook, a job retried after a crash) changes
 * nothing. Each step writes an Event on the server and an audit row by `system:billing`.
 * `lastNotice` records the last notice given, which is also how far dunning got.
 */
import type { JobHelpers, Task } from 'graphile-worker';
import { audit, type SystemActor } from '../api/audit.ts';
import {
  deleteInstanceAsSystem,
  isRestorable,
  restoreInstanceAsSystem,
  resumeInstanceAsSystem,
  suspendInstanceAsSystem,
} from '../api/instances/instance-actions.ts';
import type { Config } from '../core/config.ts';
import type { Db, Prisma, Tx } from '../core/db.ts';
import type { InstanceStatus } from '../core/domain/instance-status.ts';
import type { Logger } from '../core/log.ts';

/** How long each stage of non-payment lasts. */
export interface DunningSettings {
  /** Days a past-due server keeps running before it is suspended. */
  graceDays: number;
  /** Days a suspended server keeps its data before it is deleted. */
  retentionDays: number;
  /** Hours a deleted server stays restorable before its purge (the normal deletion's grace). */
  deletionGraceHours: number;
}

/** The settings from the configuration. */
export const dunningSettingsOf = (
  config: Pick<Config, 'dunning' | 'deletionGraceHours'>,
): DunningSettings => ({
  ...config.dunning,
  deletionGraceHours: config.deletionGraceHours,
});

/** The reason dunning suspends with; a suspension with any other reason is not dunning's to lift. */
export const DUNNING_SUSPEND_REASON = 'payment overdue';

/** The notices of one episode of non-payment, in order (`Subscription.lastNotice`). */
type Notice = 'payment_failed' | 'grace_ending' | 'suspended' | 'deleted' | 'paid_after_deletion';

const BILLING: SystemActor = { system: 'billing' };
const DAY_MS = 86_400_000;
/** The "grace ends soon" notice goes this long before the grace ends. */
const GRACE_WARNING_MS = DAY_MS;
/** A server in these statuses is up and can be suspended. */
const SUSPENDABLE: readonly InstanceStatus[] = ['running', 'updating', 'failed'];
/** A server in these statuses can be deleted; a deleting or deleted one is going already. */
const DELETABLE: readonly InstanceStatus[] = ['provisioning', 'running', 'updating', 'suspended', 'failed'];

type LockedSubscription = Prisma.SubscriptionGetPayload<{ include: { instance: true } }>;

/**
 * Locks a subscription and its server, the server first (the order the instance actions and
 * the subscription API lock in), and reads both. Null when there is no such subscription.
 */
async function lockSubscription(tx: Tx, subscriptionId: string): Promise<LockedSubscription | null> {
  await tx.$queryRaw`select 1 from "Instance"
                      where id = (select "instanceId" from "Subscription" where id = ${subscriptionId}::uuid)
                      for update`;
  await tx.$queryRaw`select 1 from "Subscription" where id = ${subscriptionId}::uuid for update`;
  return tx.subscription.findUnique({ where: { id: subscriptionId }, include: { instance: true } });
}

/** Whether dunning suspended this server (and nobody suspended it since for another reason). */
function suspendedByDunning(instance: { spec: unknown }): boolean {
  const spec = (instance.spec ?? {}) as { suspended?: boolean; suspendReason?: string | null };
  return spec.suspended === true && spec.suspendReason === DUNNING_SUSPEND_REASON;
}

/**
 * Tells the organization's owners and billing members, as an Event on the server (streamed to
 * the dashboard) naming who is to be told, and the audit row of the step. There is no mail
 * transport in the worker yet (the API's mailer is the dev outbox), so the Event is the notice.
 */
async function notify(
  tx: Tx,
  subscription: LockedSubscription,
  notice: { type: string; action: string; message: string; data?: Record<string, unknown> },
): Promise<void> {
  const members = await tx.membership.findMany({
    where: { organizationId: subscription.organizationId, role: { in: ['owner', 'billing'] } },
    select: { user: { select: { email: true } } },
    orderBy: { createdAt: 'asc' },
  });
  const data = { subscriptionId: subscription.id, ...notice.data };
  await tx.event.create({
    data: {
      instanceId: subscription.instanceId,
      type: notice.type,
      message: notice.message,
      data: { ...data, notify: members.map((member) => member.user.email) },
    },
  });
  await audit(tx, BILLING, {
    action: notice.action,
    targetType: 'instance',
    targetId: subscription.instanceId,
    organizationId: subscription.organizationId,
    data: data as Prisma.InputJsonValue,
  });
}

/**
 * A payment failed: the subscription is past due from `at`, and the server keeps running until
 * the grace period ends. Past due already, or ended: nothing changes. Returns whether it acted.
 */
export async function enterPastDue(
  tx: Tx,
  subscriptionId: string,
  at: Date,
  settings: Pick<DunningSettings, 'graceDays'>,
): Promise<boolean> {
  const subscription = await lockSubscription(tx, subscriptionId);
  if (!subscription || subscription.status === 'past_due' || subscription.status === 'cancelled')
    return false;
  const graceEndsAt = new Date(at.getTime() + settings.graceDays * DAY_MS);
  await tx.subscription.update({
    where: { id: subscriptionId },
    data: {
      status: 'past_due',
      pastDueSince: at,
      graceEndsAt,
      suspendedAt: null,
      lastNotice: 'payment_failed' satisfies Notice,
    },
  });
  await notify(tx, subscription, {
    type: 'billing.payment_failed',
    action: 'subscription.past_due',
    message: `Payment failed. The server keeps running until ${graceEndsAt.toISOString()}; pay by then or it is suspended (its data is kept).`,
    data: { pastDueSince: at.toISOString(), graceEndsAt: graceEndsAt.toISOString() },
  });
  return true;
}

/**
 * A payment came in: the subscription is active again and dunning's marks are cleared. A server
 * dunning suspended resumes at once; one dunning deleted is restored while its purge is not
 * due (and resumed). A server suspended for another reason stays suspended. Active already, or
 * cancelled by someone: nothing changes. Returns whether it acted.
 */
export async function settlePastDue(tx: Tx, subscriptionId: string, at: Date): Promise<boolean> {
  const subscription = await lockSubscription(tx, subscriptionId);
  if (!subscription) return false;
  const deletedByDunning = subscription.status === 'cancelled' && subscription.lastNotice === 'deleted';
  // Active already, or ended for another reason (a cancellation): a payment changes nothing.
  // Any other status (past due, or Stripe's `incomplete` and `paused`) becomes active.
  if (subscription.status === 'active' || (subscription.status === 'cancelled' && !deletedByDunning)) {
    return false;
  }
  const instanceId = subscription.instanceId;
  if (deletedByDunning) {
    if (!isRestorable(subscription.instance, at)) return recordPaidAfterDeletion(tx, subscription);
    await restoreInstanceAsSystem(tx, BILLING, instanceId, at);
  }
  const instance = await tx.instance.findUniqueOrThrow({ where: { id: instanceId } });
  const resumed = suspendedByDunning(instance) && instance.status !== 'deleting';
  if (resumed) await resumeInstanceAsSystem(tx, BILLING, instanceId);
  await tx.subscription.update({
    where: { id: subscriptionId },
    data: {
      status: 'active',
      pastDueSince: null,
      graceEndsAt: null,
      suspendedAt: null,
      lastNotice: null,
      canceledAt: null,
    },
  });
  await notify(tx, subscription, {
    type: 'billing.payment_recovered',
    action: 'subscription.recovered',
    message: deletedByDunning
      ? 'Payment received: the deletion is undone and the server is coming back.'
      : resumed
        ? 'Payment received: the server is resuming.'
        : 'Payment received: the subscription is in good standing again.',
    data: { restored: deletedByDunning, resumed },
  });
  return true;
}

/**
 * A payment for a server whose purge is due or done: nothing can bring it back, so staff are
 * told (the audit row) to refund it by hand.
 */
async function recordPaidAfterDeletion(tx: Tx, subscription: LockedSubscription): Promise<boolean> {
  await tx.subscription.update({
    where: { id: subscription.id },
    data: { lastNotice: 'paid_after_deletion' satisfies Notice },
  });
  await notify(tx, subscription, {
    type: 'billing.paid_after_deletion',
    action: 'subscription.paid_after_deletion',
    message: 'Payment received after the server was deleted for non-payment; it will be refunded.',
    data: { refund: 'needed' },
  });
  return true;
}

/** Adapters for the Stripe mirror's reactions (billing/subscriptions.ts `SubscriptionReactions`). */
export function dunningReactions(settings: Pick<DunningSettings, 'graceDays'>) {
  return {
    pastDue: async (tx: Tx, subscriptionId: string, at: Date) => {
      await enterPastDue(tx, subscriptionId, at, settings);
    },
    settled: async (tx: Tx, subscriptionId: string, at: Date) => {
      await settlePastDue(tx, subscriptionId, at);
    },
  };
}

/** The "grace ends soon" notice, once, a day before the grace ends. */
async function warnGraceEnding(tx: Tx, subscriptionId: string, now: Date): Promise<boolean> {
  const subscription = await lockSubscription(tx, subscriptionId);
  const graceEndsAt = subscription?.graceEndsAt;
  if (subscription?.status !== 'past_due' || !graceEndsAt) return false;
  if (subscription.lastNotice !== 'payment_failed') return false;
  const due = graceEndsAt.getTime() - GRACE_WARNING_MS <= now.getTime() && now < graceEndsAt;
  if (!due) return false;
  await tx.subscription.update({
    where: { id: subscriptionId },
    data: { lastNotice: 'grace_ending' satisfies Notice },
  });
  await notify(tx, subscription, {
    type: 'billing.grace_ending',
    action: 'subscription.grace_ending',
    message: `Payment is still overdue: the server is suspended at ${graceEndsAt.toISOString()} unless it is paid by then.`,
    data: { graceEndsAt: graceEndsAt.toISOString() },
  });
  return true;
}

/**
 * The grace is over: the server is suspended (scaled to zero, data kept). A server already down
 * for another reason is left as it is, and the retention window starts all the same; one still
 * being provisioned waits for the next run.
 */
async function suspendForNonPayment(
  tx: Tx,
  subscriptionId: string,
  now: Date,
  settings: DunningSettings,
): Promise<boolean> {
  const subscription = await lockSubscription(tx, subscriptionId);
  if (subscription?.status !== 'past_due' || subscription.suspendedAt) return false;
  if (!subscription.graceEndsAt || subscription.graceEndsAt > now) return false;
  const { instance } = subscription;
  if (instance.status === 'pending_payment' || instance.status === 'provisioning') return false;
  const up = SUSPENDABLE.includes(instance.status) && !(instance.spec as { suspended?: boolean }).suspended;
  if (up) await suspendInstanceAsSystem(tx, BILLING, instance.id, DUNNING_SUSPEND_REASON);
  const deleteAt = new Date(now.getTime() + settings.retentionDays * DAY_MS);
  await tx.subscription.update({
    where: { id: subscriptionId },
    data: { suspendedAt: now, lastNotice: 'suspended' satisfies Notice },
  });
  await notify(tx, subscription, {
    type: 'billing.suspended',
    action: 'subscription.suspended',
    message: `Suspended: ${DUNNING_SUSPEND_REASON} since ${subscription.pastDueSince?.toISOString()}. The data is kept until ${deleteAt.toISOString()}; paying resumes the server at once.`,
    data: { reason: DUNNING_SUSPEND_REASON, deleteAt: deleteAt.toISOString(), suspendedNow: up },
  });
  return true;
}

/**
 * The retention window is over: the server is deleted the normal way (it stops, and its purge,
 * which takes a final backup, is scheduled after the deletion grace), the subscription ends,
 * and the provider's subscription is cancelled. The provider call is made before the commit:
 * if it fails, nothing is written and the next run tries again; if the commit fails after it,
 * the next run calls it again, which the provider takes once (its idempotency key).
 */
async function deleteForNonPayment(
  tx: Tx,
  subscriptionId: string,
  now: Date,
  deps: Pick<DunningDeps, 'settings' | 'cancelProviderSubscription'>,
): Promise<boolean> {
  const subscription = await lockSubscription(tx, subscriptionId);
  if (subscription?.status !== 'past_due' || !subscription.suspendedAt) return false;
  const deleteAt = subscription.suspendedAt.getTime() + deps.settings.retentionDays * DAY_MS;
  if (deleteAt > now.getTime()) return false;
  const { instance } = subscription;
  const purgeAt = new Date(now.getTime() + deps.settings.deletionGraceHours * 3_600_000);
  const deleted = DELETABLE.includes(instance.status);
  if (deleted) await deleteInstanceAsSystem(tx, BILLING, instance.id, purgeAt);
  await tx.subscription.update({
    where: { id: subscriptionId },
    data: { status: 'cancelled', canceledAt: now, lastNotice: 'deleted' satisfies Notice },
  });
  await notify(tx, subscription, {
    type: 'billing.deleted',
    action: 'subscription.cancelled_for_non_payment',
    message: deleted
      ? `Deleted for non-payment: a final backup is taken and the server is purged at ${purgeAt.toISOString()}; paying before then brings it back.`
      : 'The subscription ended for non-payment.',
    data: { purgeAt: deleted ? purgeAt.toISOString() : null },
  });
  if (subscription.providerId && deps.cancelProviderSubscription) {
    await deps.cancelProviderSubscription(subscription.providerId);
  }
  return true;
}

/**
 * Provider `none`: a subscription goes past due when one of its ledger invoices
 * (billing/ledger-invoices.ts) is still open after its due date.
 */
async function enterPastDueForOverdueInvoice(
  tx: Tx,
  subscriptionId: string,
  now: Date,
  settings: DunningSettings,
): Promise<boolean> {
  const subscription = await lockSubscription(tx, subscriptionId);
  if (subscription?.provider !== 'none' || subscription.status !== 'active') return false;
  const overdue = await tx.invoice.findFirst({
    where: { instanceId: subscription.instanceId, status: 'open', dueAt: { lte: now } },
    orderBy: { dueAt: 'asc' },
    select: { dueAt: true },
  });
  if (!overdue) return false;
  return enterPastDue(tx, subscriptionId, now, settings);
}

export interface DunningDeps {
  db: Db;
  log: Logger;
  settings: DunningSettings;
  /** Ends the provider's subscription (Stripe's, by its id); null: no provider to tell. */
  cancelProviderSubscription: ((providerId: string) => Promise<void>) | null;
}

/** What one run did, for its log line and for tests. */
export interface DunningRun {
  pastDue: number;
  warned: number;
  suspended: number;
  deleted: number;
  failed: number;
}

/**
 * One pass over every subscription in dunning, each step of each subscription in a
 * transaction of its own (a failure of one is logged and leaves the others done). Safe to run
 * at any time and any number of times: each step re-checks its row under lock.
 */
export async function runDunning(deps: DunningDeps, now: Date): Promise<DunningRun> {
  const run: DunningRun = { pastDue: 0, warned: 0, suspended: 0, deleted: 0, failed: 0 };
  const step = async (
    counter: Exclude<keyof DunningRun, 'failed'>,
    subscriptionId: string,
    act: (tx: Tx) => Promise<boolean>,
  ) => {
    try {
      if (await deps.db.$transaction(act)) run[counter] += 1;
    } catch (error) {
      run.failed += 1;
      deps.log.error('dunning step failed', { subscriptionId, step: counter, error });
    }
  };
  const overdue = await deps.db.$queryRaw<{ id: string }[]>`
    select s.id from "Subscription" s
     where s.provider = 'none' and s.status = 'active'
       and exists (select 1 from "Invoice" i
                    where i."instanceId" = s."instanceId" and i.status = 'open' and i."dueAt" <= ${now})`;
  for (const { id } of overdue) {
    await step('pastDue', id, (tx) => enterPastDueForOverdueInvoice(tx, id, now, deps.settings));
  }
  const pastDue = await deps.db.subscription.findMany({
    where: { status: 'past_due' },
    select: { id: true },
  });
  for (const { id } of pastDue) {
    await step('warned', id, (tx) => warnGraceEnding(tx, id, now));
    await step('suspended', id, (tx) => suspendForNonPayment(tx, id, now, deps.settings));
    await step('deleted', id, (tx) => deleteForNonPayment(tx, id, now, deps));
  }
  return run;
}

export const DUNNING_TASK = 'billing:dunning';

/**
 * The dunning job, every 15 minutes, in a queue of its own with a job key so one run at a time
 * does the work. A run with failed steps fails, so the failure shows in the job metrics; the
 * retry repeats only what is still to do.
 */
export function dunningTasks(deps: DunningDeps): { tasks: Record<string, Task>; crontab: string } {
  return {
    tasks: {
      [DUNNING_TASK]: async (_payload, helpers: JobHelpers) => {
        const log = deps.log.child({ jobId: helpers.job.id });
        const run = await runDunning({ ...deps, log }, new Date());
        log.info('dunning run', { ...run });
        if (run.failed > 0) throw new Error(`${run.failed} dunning steps failed; see the log`);
      },
    },
    crontab: `*/15 * * * * ${DUNNING_TASK} ?queue=${DUNNING_TASK}&jobKey=${DUNNING_TASK}`,
  };
}
