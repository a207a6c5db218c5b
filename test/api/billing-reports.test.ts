/**
 * The ops billing report through the HTTP API, on a database of its own: MRR now, revenue by
 * service and churn within the range, the past-due list, per currency; bad ranges refused with
 * problem+json; staff only.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { createSubscribedServer } from '../billing/billing-fixtures.ts';
import { call, startTestApp, type TestApp } from '../support/app.ts';
import { makeTestDatabase, type TestDatabase } from '../support/db.ts';
import { createOrganization, createUserWithToken } from '../support/factories.ts';

const day = (iso: string) => new Date(`${iso}T12:00:00Z`);
const BEFORE_RANGE = day('2026-09-01');

let database: TestDatabase;
let app: TestApp;
let staff: string;
let customer: string;
let organizationId: string;
/** What the fixtures hold, from which the expected report is worked out. */
const made = {
  billing: [] as { priceMinor: number; currency: string }[],
  pastDue: { instanceId: '', domain: '', owedMinor: 0 },
  churned: [] as { priceMinor: number; currency: string }[],
  activeAtStart: 0,
};

async function subscribe(subscription: Parameters<typeof createSubscribedServer>[1]['subscription']) {
  return createSubscribedServer(database.db, { organizationId, subscription });
}

async function invoice(data: {
  instanceId: string;
  status: string;
  currency: string;
  lines: { service: string; amountMinor: number }[];
  paidAt?: Date;
  amountPaidMinor?: number;
  refundedMinor?: number;
}) {
  const lines = data.lines.map((line) => ({ ...line, description: line.service, quantity: 1 }));
  await database.db.invoice.create({
    data: {
      organizationId,
      instanceId: data.instanceId,
      providerId: `woolly:${randomUUID()}`,
      status: data.status,
      totalMinor: lines.reduce((sum, line) => sum + line.amountMinor, 0),
      currency: data.currency,
      periodStart: BEFORE_RANGE,
      periodEnd: BEFORE_RANGE,
      lines,
      paidAt: data.paidAt ?? null,
      amountPaidMinor: data.amountPaidMinor ?? 0,
      refundedMinor: data.refundedMinor ?? 0,
    },
  });
}

before(async () => {
  database = await makeTestDatabase();
  app = await startTestApp(database);
  staff = (await createUserWithToken(database.db, { staffRole: 'admin' })).token;
  const owner = await createUserWithToken(database.db, { scopes: ['billing:read'] });
  customer = owner.token;
  organizationId = await createOrganization(database.db, owner.userId);

  const eur = await subscribe({ priceMinor: 1900, createdAt: BEFORE_RANGE });
  const usd = await subscribe({ priceMinor: 3000, currency: 'usd', createdAt: BEFORE_RANGE });
  const late = await subscribe({
    status: 'past_due',
    priceMinor: 5900,
    createdAt: BEFORE_RANGE,
    pastDueSince: day('2026-11-10'),
    graceEndsAt: day('2026-11-17'),
    suspendedAt: day('2026-11-17'),
  });
  await subscribe({ priceMinor: 1500, createdAt: day('2026-11-05') });
  made.billing.push(
    { priceMinor: 1900, currency: 'eur' },
    { priceMinor: 3000, currency: 'usd' },
    { priceMinor: 5900, currency: 'eur' },
    { priceMinor: 1500, currency: 'eur' },
  );
  await subscribe({
    status: 'cancelled',
    priceMinor: 1900,
    createdAt: BEFORE_RANGE,
    canceledAt: day('2026-11-15'),
  });
  made.churned.push({ priceMinor: 1900, currency: 'eur' });
  await subscribe({
    status: 'cancelled',
    priceMinor: 900,
    createdAt: BEFORE_RANGE,
    canceledAt: day('2026-10-15'),
  });
  made.activeAtStart = 4;

  const lateInstance = await database.db.instance.findUniqueOrThrow({ where: { id: late.instanceId } });
  made.pastDue = { instanceId: late.instanceId, domain: lateInstance.domain, owedMinor: 6400 + (1000 - 400) };
  await invoice({
    instanceId: late.instanceId,
    status: 'open',
    currency: 'eur',
    lines: [{ service: 'plan', amountMinor: 6400 }],
  });
  await invoice({
    instanceId: late.instanceId,
    status: 'open',
    currency: 'eur',
    lines: [{ service: 'storage', amountMinor: 1000 }],
    amountPaidMinor: 400,
  });
  await invoice({
    instanceId: eur.instanceId,
    status: 'paid',
    currency: 'eur',
    paidAt: day('2026-11-02'),
    refundedMinor: 100,
    lines: [
      { service: 'plan', amountMinor: 1900 },
      { service: 'storage', amountMinor: 96 },
      { service: 'credit', amountMinor: -500 },
    ],
  });
  await invoice({
    instanceId: usd.instanceId,
    status: 'paid',
    currency: 'usd',
    paidAt: day('2026-11-30'),
    lines: [{ service: 'plan', amountMinor: 3000 }],
  });
  await invoice({
    instanceId: eur.instanceId,
    status: 'paid',
    currency: 'eur',
    paidAt: day('2026-10-20'),
    lines: [{ service: 'plan', amountMinor: 1900 }],
  });

  const sponsorship = (status: string, amountMinor: number) =>
    database.db.sponsorship.create({
      data: {
        organizationId,
        instanceId: eur.instanceId,
        tier: 'gold',
        sponsorEmail: 'fan@example.test',
        amountMinor,
        currency: 'eur',
        status,
      },
    });
  const gold = await sponsorship('active', 1500);
  await sponsorship('canceled', 500);
  for (const paidAt of [day('2026-11-03'), day('2026-10-03')]) {
    await database.db.sponsorshipPayment.create({
      data: {
        sponsorshipId: gold.id,
        providerInvoiceId: `in_${randomUUID()}`,
        amountMinor: 1500,
        currency: 'eur',
        paidAt,
      },
    });
  }
});

after(async () => {
  await app.release();
  await database.release();
});

const sumOf = (rows: { priceMinor: number; currency: string }[], currency: string) =>
  rows.filter((row) => row.currency === currency).reduce((sum, row) => sum + row.priceMinor, 0);

describe('GET /v1/billing/report', () => {
  it('reports MRR, revenue by service, churn and the past-due list, per currency', async () => {
    const response = await call(`${app.url}/v1/billing/report?from=2026-11-01&to=2026-11-30`, {
      token: staff,
    });
    assert.equal(response.status, 200, JSON.stringify(response.body));
    const report = response.body;
    assert.deepEqual([report.from, report.to], ['2026-11-01', '2026-11-30']);

    assert.deepEqual(report.mrr, [
      {
        currency: 'eur',
        subscriptionsMinor: sumOf(made.billing, 'eur'),
        sponsorshipsMinor: 1500,
        totalMinor: sumOf(made.billing, 'eur') + 1500,
      },
      {
        currency: 'usd',
        subscriptionsMinor: sumOf(made.billing, 'usd'),
        sponsorshipsMinor: 0,
        totalMinor: 3000,
      },
    ]);

    assert.deepEqual(report.revenue, [
      {
        currency: 'eur',
        byService: { plan: 1900, storage: 96, credit: -500, sponsorship: 1500 },
        totalMinor: 1900 + 96 - 500 + 1500,
        refundedMinor: 100,
      },
      { currency: 'usd', byService: { plan: 3000 }, totalMinor: 3000, refundedMinor: 0 },
    ]);

    assert.deepEqual(report.churn, {
      activeAtStart: made.activeAtStart,
      cancelled: made.churned.length,
      rate: made.churned.length / made.activeAtStart,
      lostMrr: [{ amountMinor: sumOf(made.churned, 'eur'), currency: 'eur' }],
    });

    assert.deepEqual(report.pastDue, [
      {
        instanceId: made.pastDue.instanceId,
        domain: made.pastDue.domain,
        organization: { id: organizationId, name: report.pastDue[0].organization.name },
        pastDueSince: day('2026-11-10').toISOString(),
        graceEndsAt: day('2026-11-17').toISOString(),
        suspended: true,
        amountDue: { amountMinor: made.pastDue.owedMinor, currency: 'eur' },
      },
    ]);
  });

  it('covers the current calendar month by default', async () => {
    const now = new Date();
    const response = await call(`${app.url}/v1/billing/report`, { token: staff });
    assert.equal(response.status, 200);
    const first = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1));
    const last = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 0));
    assert.deepEqual(
      [response.body.from, response.body.to],
      [first.toISOString().slice(0, 10), last.toISOString().slice(0, 10)],
    );
  });

  it('counts a range of one day, both ends included', async () => {
    const response = await call(`${app.url}/v1/billing/report?from=2026-11-30&to=2026-11-30`, {
      token: staff,
    });
    assert.deepEqual(response.body.revenue, [
      { currency: 'usd', byService: { plan: 3000 }, totalMinor: 3000, refundedMinor: 0 },
    ]);
  });

  for (const [query, status] of [
    ['from=2026-13-01', 400],
    ['from=yesterday', 400],
    ['to=2026-11-31', 400],
    ['from=2026-11-10&to=2026-11-09', 422],
    ['from=2025-01-01&to=2026-11-30', 422],
  ] as const) {
    it(`refuses ${query} with ${status} problem+json`, async () => {
      const response = await call(`${app.url}/v1/billing/report?${query}`, { token: staff });
      assert.equal(response.status, status);
      assert.ok(response.body.detail);
    });
  }

  it('is for staff only', async () => {
    const response = await call(`${app.url}/v1/billing/report`, { token: customer });
    assert.equal(response.status, 403);
  });
});
