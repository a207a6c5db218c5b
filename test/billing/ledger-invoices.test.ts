/**
 * Invoices of the `none` provider, rendered from the ledger on a real PostgreSQL: the first
 * period paid with the order, then at each period's end the next period's plan and add-ons
 * and the ended period's usage beyond what the plan includes; never twice, catching up
 * missed periods, and only usage for a subscription that ends.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  INVOICE_DUE_DAYS,
  type InvoiceLine,
  ledgerInvoiceId,
  ledgerInvoiceTasks,
  meteredAmountMinor,
  renderLedgerInvoices,
} from '../../billing/ledger-invoices.ts';
import { includedUnits, METERED_PRICES, type PlanLimits } from '../../core/domain/catalog.ts';
import { makeLogger } from '../../core/log.ts';
import { makeTestDatabase, type TestDatabase } from '../support/db.ts';
import { createOrganization, createUserWithToken } from '../support/factories.ts';
import { createSubscribedServer } from './billing-fixtures.ts';

const OCTOBER = new Date('2026-10-01T00:00:00Z');
const NOVEMBER = new Date('2026-11-01T00:00:00Z');
const DECEMBER = new Date('2026-12-01T00:00:00Z');
const NOW = new Date('2026-11-02T00:15:00Z');
const DAY = 86_400_000;

let database: TestDatabase;
let organizationId: string;

before(async () => {
  database = await makeTestDatabase();
  const { userId } = await createUserWithToken(database.db);
  organizationId = await createOrganization(database.db, userId);
});

after(async () => {
  await database.release();
});

/** Ledger samples of `meter` for the server: (hours after October 1, quantity). */
async function sample(instanceId: string, meter: string, samples: [number, number][]) {
  await database.db.usageEvent.createMany({
    data: samples.map(([hours, quantity]) => {
      const occurredAt = new Date(OCTOBER.getTime() + hours * 3_600_000);
      return {
        instanceId,
        meter,
        quantity: BigInt(quantity),
        occurredAt,
        idempotencyKey: `${meter}:${instanceId}:${occurredAt.toISOString()}`,
      };
    }),
  });
}

/** The paid order that started the server's subscription. */
async function paidOrder(instanceId: string, domain: string, plan: string, addonCodes: string[]) {
  const row = await database.db.plan.findUniqueOrThrow({ where: { code: plan } });
  await database.db.order.create({
    data: {
      organizationId,
      instanceId,
      domain,
      planId: row.id,
      addonCodes,
      status: 'paid',
      totalMinor: 0,
      currency: row.currency,
      paidAt: OCTOBER,
    },
  });
}

const invoicesOf = (instanceId: string) =>
  database.db.invoice.findMany({ where: { instanceId }, orderBy: { periodStart: 'asc' } });

describe('metered amounts', () => {
  it('are exact decimal products rounded half up to whole minor units', () => {
    for (const [quantity, unit] of [
      [7000n, '0.0137'],
      [36n, '0.0137'],
      [37n, '0.0137'],
      [50n, '0.01'],
      [49n, '0.01'],
      [300n, '2'],
      [0n, '1'],
    ] as const) {
      const halfUp = Math.floor(Number(quantity) * Number(unit) + 0.5);
      assert.equal(meteredAmountMinor(quantity, unit), halfUp, `${quantity} × ${unit}`);
    }
  });
});

describe('rendering from the ledger', () => {
  let server: { instanceId: string; subscriptionId: string; domain: string };
  const addons = ['elasticsearch', 'object_storage'];

  before(async () => {
    server = await createSubscribedServer(database.db, {
      organizationId,
      plan: 'community',
      addons,
      periodStart: OCTOBER,
    });
    await paidOrder(server.instanceId, server.domain, 'community', addons);
    const plan = await database.db.plan.findUniqueOrThrow({ where: { code: 'community' } });
    const included = includedUnits(plan.limits as unknown as PlanLimits);
    // Storage: 7,000 GB-hours beyond the plan, in two samples; one sample after the period.
    await sample(server.instanceId, 'storage_gb_hours', [
      [1, included.storage_gb_hours],
      [2, 7000],
      [24 * 31 + 1, 99_999],
    ]);
    // A sample of 500 corrected to 0 (a revision supersedes it): only the latest revision bills.
    await sample(server.instanceId, 'storage_gb_hours', [[3, 500]]);
    const corrected = `storage_gb_hours:${server.instanceId}:${new Date(OCTOBER.getTime() + 3 * 3_600_000).toISOString()}`;
    await database.db.usageEvent.create({
      data: {
        instanceId: server.instanceId,
        meter: 'storage_gb_hours',
        quantity: 0n,
        occurredAt: new Date(OCTOBER.getTime() + 3 * 3_600_000),
        idempotencyKey: `${corrected}#r1`,
        revision: 1,
        supersedes: corrected,
        reason: 'a test correction',
      },
    });
    await sample(server.instanceId, 'search_hours', [
      [1, 1],
      [2, 1],
      [3, 1],
    ]);
    // Active users keep the last sample of the period: 200 beyond the plan.
    await sample(server.instanceId, 'active_users', [
      [24, included.active_users + 5000],
      [24 * 30, included.active_users + 200],
    ]);
  });

  it('renders the opening invoice, paid with the order, and the ended period’s invoice, open', async () => {
    assert.equal(await renderLedgerInvoices(database.db, NOW), 2);
    const invoices = await invoicesOf(server.instanceId);
    assert.equal(invoices.length, 2);
    const [opening, period] = invoices as [(typeof invoices)[number], (typeof invoices)[number]];
    const plan = await database.db.plan.findUniqueOrThrow({ where: { code: 'community' } });
    const addonTypes = await database.db.addonType.findMany({
      where: { code: { in: addons } },
      orderBy: { code: 'asc' },
    });
    const recurring = plan.priceMinor + addonTypes.reduce((sum, addon) => sum + addon.priceMinor, 0);

    assert.equal(opening.providerId, `woolly:${server.subscriptionId}:start`);
    assert.equal(opening.status, 'paid');
    assert.deepEqual(opening.paidAt, OCTOBER);
    assert.equal(opening.totalMinor, recurring);
    assert.equal(opening.amountPaidMinor, recurring);
    assert.deepEqual(
      (opening.lines as unknown as InvoiceLine[]).map((line) => [line.service, line.amountMinor]),
      [['plan', plan.priceMinor], ...addonTypes.map((addon) => ['addon', addon.priceMinor])],
    );

    assert.equal(period.providerId, ledgerInvoiceId(server.subscriptionId, OCTOBER));
    assert.equal(period.status, 'open');
    assert.deepEqual([period.periodStart, period.periodEnd], [OCTOBER, NOVEMBER]);
    assert.deepEqual(period.dueAt, new Date(NOW.getTime() + INVOICE_DUE_DAYS * DAY));
    const lines = period.lines as unknown as InvoiceLine[];
    const usage = (service: string) => lines.find((line) => line.service === service);
    assert.deepEqual(
      lines
        .filter((line) => line.service === 'plan' || line.service === 'addon')
        .map((line) => line.amountMinor),
      [plan.priceMinor, ...addonTypes.map((addon) => addon.priceMinor)],
    );
    assert.match(lines[0]?.description ?? '', /2026-11-01 to 2026-12-01/, 'the plan is billed in advance');
    assert.deepEqual(usage('storage'), {
      service: 'storage',
      description: usage('storage')?.description,
      quantity: 7000,
      amountMinor: Math.round(7000 * Number(METERED_PRICES.storage_gb_hours.unitMinorDecimal)),
    });
    assert.equal(usage('search')?.quantity, 3);
    assert.equal(usage('search')?.amountMinor, 3 * Number(METERED_PRICES.search_hours.unitMinorDecimal));
    assert.equal(usage('community_fees')?.quantity, 200);
    assert.equal(
      usage('community_fees')?.amountMinor,
      200 * Number(METERED_PRICES.active_users.unitMinorDecimal),
    );
    assert.equal(
      period.totalMinor,
      lines.reduce((sum, line) => sum + line.amountMinor, 0),
    );

    const aggregates = await database.db.usageAggregate.findMany({
      where: { instanceId: server.instanceId, periodStart: OCTOBER },
    });
    assert.equal(aggregates.length, 3, 'the totals are kept as aggregates of the period');
    const subscription = await database.db.subscription.findUniqueOrThrow({
      where: { id: server.subscriptionId },
    });
    assert.deepEqual([subscription.currentPeriodStart, subscription.currentPeriodEnd], [NOVEMBER, DECEMBER]);
  });

  it('renders nothing twice when it runs again', async () => {
    const before = await invoicesOf(server.instanceId);
    assert.equal(await renderLedgerInvoices(database.db, NOW), 0);
    assert.deepEqual(await invoicesOf(server.instanceId), before);
  });
});

describe('periods the job missed, and subscriptions that end', () => {
  it('catches up period by period', async () => {
    const server = await createSubscribedServer(database.db, {
      organizationId,
      periodStart: new Date('2026-08-01T00:00:00Z'),
    });
    await renderLedgerInvoices(database.db, NOW);
    const invoices = await invoicesOf(server.instanceId);
    assert.deepEqual(
      invoices.map((invoice) => invoice.periodStart.toISOString().slice(0, 7)),
      ['2026-08', '2026-09', '2026-10'],
    );
    const subscription = await database.db.subscription.findUniqueOrThrow({
      where: { id: server.subscriptionId },
    });
    assert.deepEqual(subscription.currentPeriodStart, NOVEMBER);
  });

  it('bills only the usage of a subscription cancelling at the period end, and does not move it on', async () => {
    const server = await createSubscribedServer(database.db, { organizationId, periodStart: OCTOBER });
    await database.db.subscription.update({
      where: { id: server.subscriptionId },
      data: { cancelAtPeriodEnd: true },
    });
    await renderLedgerInvoices(database.db, NOW);
    const [invoice, ...more] = await invoicesOf(server.instanceId);
    assert.equal(more.length, 0);
    assert.deepEqual(invoice?.lines, []);
    assert.equal(invoice?.totalMinor, 0);
    assert.equal(invoice?.status, 'paid', 'nothing is owed');
    const subscription = await database.db.subscription.findUniqueOrThrow({
      where: { id: server.subscriptionId },
    });
    assert.deepEqual(subscription.currentPeriodEnd, NOVEMBER);
    assert.equal(await renderLedgerInvoices(database.db, new Date(NOW.getTime() + DAY)), 0);
  });

  it('leaves Stripe subscriptions to Stripe', async () => {
    const server = await createSubscribedServer(database.db, {
      organizationId,
      provider: 'stripe',
      periodStart: OCTOBER,
    });
    await renderLedgerInvoices(database.db, NOW);
    assert.deepEqual(await invoicesOf(server.instanceId), []);
  });

  it('runs daily, one run at a time', () => {
    const log = makeLogger({ log: { level: 'error', format: 'json' } });
    const { tasks, crontab } = ledgerInvoiceTasks({ db: database.db, log });
    assert.deepEqual(Object.keys(tasks), ['billing:ledger-invoices']);
    assert.match(
      crontab,
      /^\d+ \d+ \* \* \* billing:ledger-invoices \?queue=billing:ledger-invoices&jobKey=/,
    );
  });
});
