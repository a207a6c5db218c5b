/**
 * Invoices of the `none` provider, rendered from Woolly's own records as Stripe would bill: an
 * opening invoice for the first period, paid with the order; then, when a period ends, one
 * invoice with the next period's plan and add-ons (in advance) and the ended period's metered
 * usage beyond what the plan includes (in arrears, from the usage ledger), open until staff
 * mark it paid (dunning starts once it is overdue). The same Invoice rows and line shape as the
 * Stripe mirror (billing/webhooks.ts), so members read and ops report on both alike.
 */
import type { JobHelpers, Task } from 'graphile-worker';
import type { Db, Tx } from '../core/db.ts';
import { includedUnits, METERED_PRICES, type PlanLimits } from '../core/domain/catalog.ts';
import type { Logger } from '../core/log.ts';
import { aggregateUsage, type Meter } from './metering.ts';

/** What an invoice line bills, the same words the Stripe mirror writes. */
export type InvoiceService =
  | 'plan'
  | 'addon'
  | 'storage'
  | 'search'
  | 'community_fees'
  | 'sponsorship'
  | 'credit'
  | 'other';

/** One line of an Invoice's `lines`. */
export interface InvoiceLine {
  service: InvoiceService;
  description: string;
  quantity: number;
  amountMinor: number;
}

/** Days from rendering an invoice to its due date; then dunning starts (billing/dunning.ts). */
export const INVOICE_DUE_DAYS = 14;
const DAY_MS = 86_400_000;

const SERVICE_OF_METER: Record<Meter, InvoiceService> = {
  storage_gb_hours: 'storage',
  search_hours: 'search',
  active_users: 'community_fees',
};

/** The stable provider id of a ledger invoice: one per subscription and period, never two. */
export const ledgerInvoiceId = (subscriptionId: string, periodStart: Date) =>
  `woolly:${subscriptionId}:${periodStart.toISOString()}`;

/**
 * `quantity` × a decimal unit price (such as `0.0137`), in whole minor units, rounded half up.
 * Exact: the price is scaled to an integer, so no binary fraction creeps in. Rounded per line,
 * as Stripe rounds a line of a `unit_amount_decimal` price.
 */
export function meteredAmountMinor(quantity: bigint, unitMinorDecimal: string): number {
  const [whole = '0', fraction = ''] = unitMinorDecimal.split('.');
  const scale = 10n ** BigInt(fraction.length);
  const scaled = quantity * BigInt(`${whole}${fraction}`);
  return Number((scaled * 2n + scale) / (scale * 2n));
}

/**
 * The period's metered lines: each meter's total for the period beyond what the plan includes,
 * at the metered price. The totals are written to UsageAggregate first, for this server and
 * period only, by the ledger's own `aggregateUsage` (latest revisions of each bucket), so the
 * invoice and the aggregate always agree.
 */
async function meteredLines(
  tx: Tx,
  instanceId: string,
  period: { start: Date; end: Date },
  limits: PlanLimits,
): Promise<InvoiceLine[]> {
  await aggregateUsage(tx, period, { instanceId });
  const aggregates = await tx.usageAggregate.findMany({
    where: { instanceId, periodStart: period.start },
    orderBy: { meter: 'asc' },
  });
  const included = includedUnits(limits);
  return aggregates.flatMap((aggregate): InvoiceLine[] => {
    const meter = aggregate.meter as Meter;
    const price = METERED_PRICES[meter];
    if (!price) return [];
    const billable = aggregate.quantity - BigInt(included[meter]);
    if (billable <= 0n) return [];
    return [
      {
        service: SERVICE_OF_METER[meter],
        description: `${price.name}: ${billable} beyond the ${included[meter]} included`,
        quantity: Number(billable),
        amountMinor: meteredAmountMinor(billable, price.unitMinorDecimal),
      },
    ];
  });
}

/** The month after `period`, the next billing period. */
function nextPeriodOf(period: { end: Date }): { start: Date; end: Date } {
  const end = new Date(period.end);
  end.setUTCMonth(end.getUTCMonth() + 1);
  return { start: period.end, end };
}

const dayOf = (date: Date) => date.toISOString().slice(0, 10);

/** The plan and add-on lines of a period, billed in advance at the catalog's prices. */
function recurringLines(
  plan: { name: string; priceMinor: number },
  addons: readonly { code: string; name: string; priceMinor: number }[],
  period: { start: Date; end: Date },
): InvoiceLine[] {
  const dates = `${dayOf(period.start)} to ${dayOf(period.end)}`;
  return [
    {
      service: 'plan',
      description: `${plan.name} plan, ${dates}`,
      quantity: 1,
      amountMinor: plan.priceMinor,
    },
    ...[...addons]
      .sort((a, b) => a.code.localeCompare(b.code))
      .map(
        (addon): InvoiceLine => ({
          service: 'addon',
          description: `${addon.name}, ${dates}`,
          quantity: 1,
          amountMinor: addon.priceMinor,
        }),
      ),
  ];
}

const totalOf = (lines: readonly InvoiceLine[]) => lines.reduce((sum, line) => sum + line.amountMinor, 0);

/** Locks a `none` subscription and reads it with its server's plan and add-ons; null otherwise. */
async function lockLedgerSubscription(tx: Tx, subscriptionId: string) {
  await tx.$queryRaw`select 1 from "Subscription" where id = ${subscriptionId}::uuid for update`;
  const subscription = await tx.subscription.findUnique({
    where: { id: subscriptionId },
    include: { instance: { include: { plan: true, addons: { include: { addonType: true } } } } },
  });
  return subscription?.provider === 'none' ? subscription : null;
}

/**
 * The invoice of the first period, paid with the order (staff approved its payment): the
 * order's plan and add-ons, paid when the order was. It replaces the `subscription_start` ledger
 * entry that once recorded this payment, so revenue reports see the first month like any
 * other. Rendered once per subscription (`woolly:<subscription>:start`). Returns the invoice id,
 * or null when there was nothing to render.
 */
export async function renderOpeningInvoice(tx: Tx, subscriptionId: string): Promise<string | null> {
  const subscription = await lockLedgerSubscription(tx, subscriptionId);
  if (!subscription) return null;
  const providerId = `woolly:${subscriptionId}:start`;
  if (await tx.invoice.findUnique({ where: { providerId }, select: { id: true } })) return null;
  const order = await tx.order.findFirst({
    where: { instanceId: subscription.instanceId, status: 'paid' },
    include: { plan: true },
    orderBy: { paidAt: 'asc' },
  });
  if (!order?.paidAt) return null;
  const addons = await tx.addonType.findMany({ where: { code: { in: order.addonCodes } } });
  const period = { start: order.paidAt, end: nextPeriodOf({ end: order.paidAt }).end };
  const lines = recurringLines(order.plan, addons, period);
  const invoice = await tx.invoice.create({
    data: {
      organizationId: subscription.organizationId,
      instanceId: subscription.instanceId,
      providerId,
      status: 'paid',
      totalMinor: totalOf(lines),
      amountPaidMinor: totalOf(lines),
      currency: order.currency,
      periodStart: period.start,
      periodEnd: period.end,
      lines: lines as unknown as object[],
      dueAt: order.paidAt,
      paidAt: order.paidAt,
    },
  });
  return invoice.id;
}

/**
 * Renders the invoice of a `none` subscription's current period once that period has ended,
 * as Stripe bills a renewal: the plan and add-ons of the next period in advance (at the prices
 * the server has now, no proration), and the period's metered usage in arrears. A subscription
 * that ends with the period (cancelled, or cancelling at its end) gets its usage only, and
 * stays where it is; any other moves to its next period, all in the caller's transaction with
 * the subscription locked. Nothing owed: the invoice is paid as rendered. A period is never
 * rendered twice: its invoice's provider id names the subscription and the period's start.
 * Returns the invoice id, or null when there was nothing to render.
 */
export async function renderLedgerInvoice(tx: Tx, subscriptionId: string, now: Date): Promise<string | null> {
  const subscription = await lockLedgerSubscription(tx, subscriptionId);
  if (!subscription || subscription.currentPeriodEnd > now) return null;
  const period = { start: subscription.currentPeriodStart, end: subscription.currentPeriodEnd };
  const providerId = ledgerInvoiceId(subscriptionId, period.start);
  if (await tx.invoice.findUnique({ where: { providerId }, select: { id: true } })) return null;
  const { instance } = subscription;
  const ends = subscription.status === 'cancelled' || subscription.cancelAtPeriodEnd;
  const next = nextPeriodOf(period);
  const lines = [
    ...(ends
      ? []
      : recurringLines(
          instance.plan,
          instance.addons.map((addon) => addon.addonType),
          next,
        )),
    ...(await meteredLines(tx, instance.id, period, instance.plan.limits as unknown as PlanLimits)),
  ];
  const total = totalOf(lines);
  const invoice = await tx.invoice.create({
    data: {
      organizationId: subscription.organizationId,
      instanceId: instance.id,
      providerId,
      status: total > 0 ? 'open' : 'paid',
      totalMinor: total,
      currency: subscription.currency,
      periodStart: period.start,
      periodEnd: period.end,
      lines: lines as unknown as object[],
      dueAt: new Date(now.getTime() + INVOICE_DUE_DAYS * DAY_MS),
      paidAt: total > 0 ? null : now,
    },
  });
  if (!ends) {
    await tx.subscription.update({
      where: { id: subscriptionId },
      data: { currentPeriodStart: next.start, currentPeriodEnd: next.end },
    });
  }
  return invoice.id;
}

/**
 * Renders every invoice due, one transaction per invoice: each `none` subscription's opening
 * invoice, then its ended periods, so a subscription whose periods ended while the job did not
 * run catches up period by period. Returns how many invoices were rendered.
 */
export async function renderLedgerInvoices(db: Db, now: Date): Promise<number> {
  let rendered = 0;
  const unopened = await db.$queryRaw<{ id: string }[]>`
    select s.id from "Subscription" s
     where s.provider = 'none'
       and not exists (select 1 from "Invoice" i where i."providerId" = 'woolly:' || s.id::text || ':start')`;
  for (const { id } of unopened) {
    if ((await db.$transaction((tx) => renderOpeningInvoice(tx, id))) !== null) rendered += 1;
  }
  const due = await db.subscription.findMany({
    where: { provider: 'none', currentPeriodEnd: { lte: now } },
    select: { id: true },
  });
  for (const { id } of due) {
    while ((await db.$transaction((tx) => renderLedgerInvoice(tx, id, now))) !== null) rendered += 1;
  }
  return rendered;
}

export const LEDGER_INVOICES_TASK = 'billing:ledger-invoices';

/** The daily job that renders the `none` provider's invoices (one run at a time: its job key). */
export function ledgerInvoiceTasks(deps: { db: Db; log: Logger }): {
  tasks: Record<string, Task>;
  crontab: string;
} {
  return {
    tasks: {
      [LEDGER_INVOICES_TASK]: async (_payload, helpers: JobHelpers) => {
        const rendered = await renderLedgerInvoices(deps.db, new Date());
        deps.log.info('ledger invoices rendered', { rendered, jobId: helpers.job.id });
      },
    },
    crontab: `15 0 * * * ${LEDGER_INVOICES_TASK} ?queue=${LEDGER_INVOICES_TASK}&jobKey=${LEDGER_INVOICES_TASK}`,
  };
}
