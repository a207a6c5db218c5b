/**
 * What ops read about the business: MRR now, revenue and churn within a range, and who is past
 * due. Read from Woolly's own rows (Subscription, Invoice lines, Sponsorship and its payments),
 * the same for both providers; amounts in minor units, one entry per currency, never summed
 * across currencies.
 */
import type { Db } from '../core/db.ts';
import type { InvoiceLine } from './ledger-invoices.ts';

/** A range of whole UTC days: `start` included, `end` (the day after the last) excluded. */
export interface ReportRange {
  start: Date;
  end: Date;
}

interface Money {
  amountMinor: number;
  currency: string;
}

/** Subscriptions that bill every month: a past-due one is still owed, so it still counts. */
const BILLING_STATUSES = ['active', 'past_due'];

/** The entry of `currency` in `map`, made by `make` the first time it is asked for. */
function entryOf<T>(map: Map<string, T>, currency: string, make: () => T): T {
  let entry = map.get(currency);
  if (!entry) {
    entry = make();
    map.set(currency, entry);
  }
  return entry;
}

const byCurrency = <T extends { currency: string }>(map: Map<string, T>): T[] =>
  [...map.values()].sort((a, b) => a.currency.localeCompare(b.currency));

/** Monthly recurring revenue now: billing subscriptions' prices and active sponsorships. */
async function monthlyRecurringRevenue(db: Db) {
  const [subscriptions, sponsorships] = await Promise.all([
    db.subscription.groupBy({
      by: ['currency'],
      where: { status: { in: BILLING_STATUSES } },
      _sum: { priceMinor: true },
    }),
    db.sponsorship.groupBy({ by: ['currency'], where: { status: 'active' }, _sum: { amountMinor: true } }),
  ]);
  const mrr = new Map<string, { currency: string; subscriptionsMinor: number; sponsorshipsMinor: number }>();
  const make = (currency: string) => () => ({ currency, subscriptionsMinor: 0, sponsorshipsMinor: 0 });
  for (const row of subscriptions) {
    entryOf(mrr, row.currency, make(row.currency)).subscriptionsMinor += row._sum.priceMinor ?? 0;
  }
  for (const row of sponsorships) {
    entryOf(mrr, row.currency, make(row.currency)).sponsorshipsMinor += row._sum.amountMinor ?? 0;
  }
  return byCurrency(mrr).map((entry) => ({
    ...entry,
    totalMinor: entry.subscriptionsMinor + entry.sponsorshipsMinor,
  }));
}

/**
 * Revenue paid within the range, by service: the lines of invoices paid in it, and sponsors'
 * payments (`sponsorship`; a sponsor's Stripe invoice is never mirrored as a server's, so it
 * is not counted twice). Refunds of those invoices are shown apart, not netted.
 */
async function revenue(db: Db, range: ReportRange) {
  const [invoices, payments] = await Promise.all([
    db.invoice.findMany({
      where: { status: 'paid', paidAt: { gte: range.start, lt: range.end } },
      select: { currency: true, lines: true, refundedMinor: true },
    }),
    db.sponsorshipPayment.groupBy({
      by: ['currency'],
      where: { paidAt: { gte: range.start, lt: range.end } },
      _sum: { amountMinor: true },
    }),
  ]);
  const totals = new Map<
    string,
    { currency: string; byService: Record<string, number>; refundedMinor: number }
  >();
  const make = (currency: string) => () => ({
    currency,
    byService: {} as Record<string, number>,
    refundedMinor: 0,
  });
  const add = (currency: string, service: string, amountMinor: number) => {
    const entry = entryOf(totals, currency, make(currency));
    entry.byService[service] = (entry.byService[service] ?? 0) + amountMinor;
  };
  for (const invoice of invoices) {
    for (const line of invoice.lines as unknown as InvoiceLine[])
      add(invoice.currency, line.service, line.amountMinor);
    entryOf(totals, invoice.currency, make(invoice.currency)).refundedMinor += invoice.refundedMinor;
  }
  for (const row of payments) add(row.currency, 'sponsorship', row._sum.amountMinor ?? 0);
  return byCurrency(totals).map((entry) => ({
    currency: entry.currency,
    byService: entry.byService,
    totalMinor: Object.values(entry.byService).reduce((sum, amount) => sum + amount, 0),
    refundedMinor: entry.refundedMinor,
  }));
}

/**
 * Churn within the range: subscriptions that ended in it, against those active at its start
 * (started before it and not ended by then), with the monthly price lost.
 */
async function churn(db: Db, range: ReportRange) {
  const [activeAtStart, cancelled] = await Promise.all([
    db.subscription.count({
      where: {
        createdAt: { lt: range.start },
        OR: [{ canceledAt: null, status: { not: 'cancelled' } }, { canceledAt: { gte: range.start } }],
      },
    }),
    db.subscription.groupBy({
      by: ['currency'],
      where: { status: 'cancelled', canceledAt: { gte: range.start, lt: range.end } },
      _sum: { priceMinor: true },
      _count: { _all: true },
    }),
  ]);
  const count = cancelled.reduce((sum, row) => sum + row._count._all, 0);
  return {
    activeAtStart,
    cancelled: count,
    rate: activeAtStart === 0 ? null : count / activeAtStart,
    lostMrr: cancelled
      .map((row): Money => ({ amountMinor: row._sum.priceMinor ?? 0, currency: row.currency }))
      .sort((a, b) => a.currency.localeCompare(b.currency)),
  };
}

/** Every past-due server, longest overdue first, with what its open invoices still ask. */
async function pastDue(db: Db) {
  const subscriptions = await db.subscription.findMany({
    where: { status: 'past_due' },
    include: { instance: { select: { domain: true } }, organization: { select: { id: true, name: true } } },
    orderBy: [{ pastDueSince: 'asc' }, { id: 'asc' }],
  });
  const open = await db.invoice.groupBy({
    by: ['instanceId'],
    where: { status: 'open', instanceId: { in: subscriptions.map((s) => s.instanceId) } },
    _sum: { totalMinor: true, amountPaidMinor: true },
  });
  const due = new Map(
    open.map((row) => [row.instanceId, (row._sum.totalMinor ?? 0) - (row._sum.amountPaidMinor ?? 0)]),
  );
  return subscriptions.map((subscription) => ({
    instanceId: subscription.instanceId,
    domain: subscription.instance.domain,
    organization: subscription.organization,
    pastDueSince: subscription.pastDueSince,
    graceEndsAt: subscription.graceEndsAt,
    suspended: subscription.suspendedAt !== null,
    amountDue: { amountMinor: due.get(subscription.instanceId) ?? 0, currency: subscription.currency },
  }));
}

/** The ops report for `range` (MRR and the past-due list are as of now). */
export async function billingReport(db: Db, range: ReportRange) {
  const [mrr, paid, churned, overdue] = await Promise.all([
    monthlyRecurringRevenue(db),
    revenue(db, range),
    churn(db, range),
    pastDue(db),
  ]);
  return { mrr, revenue: paid, churn: churned, pastDue: overdue };
}
