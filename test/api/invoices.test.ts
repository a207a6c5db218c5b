/**
 * Invoices through the HTTP API: members (with `billing:read`) read their organization's, with
 * lines, newest first, a page at a time; nobody else learns they exist; staff mark a ledger
 * invoice paid, which settles a past-due subscription at once.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { enterPastDue, runDunning } from '../../billing/dunning.ts';
import { renderLedgerInvoices } from '../../billing/ledger-invoices.ts';
import { makeLogger } from '../../core/log.ts';
import { createSubscribedServer } from '../billing/billing-fixtures.ts';
import { call, startTestApp, type TestApp } from '../support/app.ts';
import { makeTestDatabase, type TestDatabase } from '../support/db.ts';
import { createOrganization, createUserWithToken } from '../support/factories.ts';

const OCTOBER = new Date('2026-10-01T00:00:00Z');
const NOW = new Date('2026-11-02T00:15:00Z');
const BILLING_READ = ['instances:read', 'billing:read'];

let database: TestDatabase;
let app: TestApp;
let staff: string;
let viewer: string;
let outsider: string;
let withoutScope: string;
let organizationId: string;
let server: { instanceId: string; subscriptionId: string; domain: string };

before(async () => {
  database = await makeTestDatabase();
  app = await startTestApp(database);
  staff = (await createUserWithToken(database.db, { staffRole: 'ops' })).token;
  const owner = await createUserWithToken(database.db, { scopes: BILLING_READ });
  organizationId = await createOrganization(database.db, owner.userId, 'owner');
  const member = await createUserWithToken(database.db, { scopes: BILLING_READ });
  await database.db.membership.create({ data: { organizationId, userId: member.userId, role: 'viewer' } });
  viewer = member.token;
  const stranger = await createUserWithToken(database.db, { scopes: BILLING_READ });
  await createOrganization(database.db, stranger.userId, 'owner');
  outsider = stranger.token;
  const unscoped = await createUserWithToken(database.db);
  await database.db.membership.create({ data: { organizationId, userId: unscoped.userId, role: 'owner' } });
  withoutScope = unscoped.token;

  server = await createSubscribedServer(database.db, { organizationId, periodStart: OCTOBER });
  const plan = await database.db.plan.findUniqueOrThrow({ where: { code: 'starter' } });
  await database.db.order.create({
    data: {
      organizationId,
      instanceId: server.instanceId,
      domain: server.domain,
      planId: plan.id,
      addonCodes: [],
      status: 'paid',
      totalMinor: plan.priceMinor,
      currency: plan.currency,
      paidAt: OCTOBER,
    },
  });
  await renderLedgerInvoices(database.db, NOW);
});

after(async () => {
  await app.release();
  await database.release();
});

const invoicesOfServer = () =>
  database.db.invoice.findMany({
    where: { instanceId: server.instanceId },
    orderBy: [{ createdAt: 'desc' }, { id: 'desc' }],
  });

describe('reading invoices', () => {
  it('members read their organization’s invoices, newest first, with their lines', async () => {
    const response = await call(`${app.url}/v1/organizations/${organizationId}/invoices`, { token: viewer });
    assert.equal(response.status, 200);
    const stored = await invoicesOfServer();
    assert.deepEqual(
      response.body.data.map((invoice: { id: string }) => invoice.id),
      stored.map((invoice) => invoice.id),
    );
    const open = response.body.data.find((invoice: { status: string }) => invoice.status === 'open');
    assert.equal(open.provider, 'none');
    assert.equal(
      open.total.amountMinor,
      open.lines.reduce((sum: number, l: { amountMinor: number }) => sum + l.amountMinor, 0),
    );
    assert.equal(open.lines[0].service, 'plan');
    assert.equal(response.body.nextCursor, null);
  });

  it('pages through them with the cursor', async () => {
    const first = await call(`${app.url}/v1/organizations/${organizationId}/invoices?limit=1`, {
      token: viewer,
    });
    assert.equal(first.body.data.length, 1);
    assert.ok(first.body.nextCursor);
    const second = await call(
      `${app.url}/v1/organizations/${organizationId}/invoices?limit=1&cursor=${first.body.nextCursor}`,
      { token: viewer },
    );
    assert.equal(second.body.data.length, 1);
    assert.notEqual(second.body.data[0].id, first.body.data[0].id);
    assert.equal(second.body.nextCursor, null);
  });

  it('one invoice, with its lines, for members and staff', async () => {
    const [invoice] = await invoicesOfServer();
    for (const token of [viewer, staff]) {
      const response = await call(`${app.url}/v1/invoices/${invoice?.id}`, { token });
      assert.equal(response.status, 200);
      assert.equal(response.body.id, invoice?.id);
      assert.deepEqual(response.body.lines, invoice?.lines);
    }
  });

  it('anyone else is told the invoices are not there', async () => {
    const [invoice] = await invoicesOfServer();
    const one = await call(`${app.url}/v1/invoices/${invoice?.id}`, { token: outsider });
    assert.equal(one.status, 404);
    const list = await call(`${app.url}/v1/organizations/${organizationId}/invoices`, { token: outsider });
    assert.equal(list.status, 404);
    const missing = await call(`${app.url}/v1/invoices/${randomUUID()}`, { token: viewer });
    assert.equal(missing.status, 404);
  });

  it('a token without billing:read is refused, even an owner’s', async () => {
    const response = await call(`${app.url}/v1/organizations/${organizationId}/invoices`, {
      token: withoutScope,
    });
    assert.equal(response.status, 403);
    assert.match(response.body.detail, /billing:read/);
  });
});

describe('marking an invoice paid', () => {
  it('is for staff only', async () => {
    const open = (await invoicesOfServer()).find((invoice) => invoice.status === 'open');
    const response = await call(`${app.url}/v1/invoices/${open?.id}/mark-paid`, {
      method: 'POST',
      token: viewer,
    });
    assert.equal(response.status, 403);
    assert.equal((await database.db.invoice.findUniqueOrThrow({ where: { id: open?.id } })).status, 'open');
  });

  it('pays the invoice in full and resumes a server suspended for it at once; a second time is refused', async () => {
    const open = (await invoicesOfServer()).find((invoice) => invoice.status === 'open');
    assert.ok(open?.dueAt);
    const log = makeLogger({ log: { level: 'error', format: 'json' } });
    const deps = {
      db: database.db,
      log,
      settings: { graceDays: 7, retentionDays: 30, deletionGraceHours: 168 },
      cancelProviderSubscription: null,
    };
    await runDunning(deps, open.dueAt);
    await runDunning(deps, new Date(open.dueAt.getTime() + 7 * 86_400_000));
    const suspended = await database.db.instance.findUniqueOrThrow({ where: { id: server.instanceId } });
    assert.equal((suspended.spec as { suspended: boolean }).suspended, true);

    const response = await call(`${app.url}/v1/invoices/${open.id}/mark-paid`, {
      method: 'POST',
      token: staff,
    });
    assert.equal(response.status, 200);
    assert.equal(response.body.status, 'paid');
    assert.equal(response.body.amountPaidMinor, open.totalMinor);
    assert.ok(Date.parse(response.body.paidAt) <= Date.now());
    const subscription = await database.db.subscription.findUniqueOrThrow({
      where: { id: server.subscriptionId },
    });
    assert.equal(subscription.status, 'active');
    const resumed = await database.db.instance.findUniqueOrThrow({ where: { id: server.instanceId } });
    assert.equal((resumed.spec as { suspended: boolean }).suspended, false);
    const audit = await database.db.auditLog.findFirstOrThrow({
      where: { action: 'invoice.mark_paid', targetId: open.id },
    });
    assert.match(audit.actor, /^token:/);

    const again = await call(`${app.url}/v1/invoices/${open.id}/mark-paid`, { method: 'POST', token: staff });
    assert.equal(again.status, 409);
  });

  it('leaves the subscription past due while another invoice is still overdue', async () => {
    const other = await createSubscribedServer(database.db, { organizationId });
    const overdue = (key: string) =>
      database.db.invoice.create({
        data: {
          organizationId,
          instanceId: other.instanceId,
          providerId: `woolly:${other.subscriptionId}:${key}`,
          status: 'open',
          totalMinor: 1900,
          currency: 'eur',
          periodStart: OCTOBER,
          periodEnd: NOW,
          dueAt: new Date(Date.now() - 86_400_000),
        },
      });
    const [first] = [await overdue('a'), await overdue('b')];
    await database.db.$transaction((tx) =>
      enterPastDue(tx, other.subscriptionId, new Date(), { graceDays: 7 }),
    );
    const response = await call(`${app.url}/v1/invoices/${first.id}/mark-paid`, {
      method: 'POST',
      token: staff,
    });
    assert.equal(response.status, 200);
    const subscription = await database.db.subscription.findUniqueOrThrow({
      where: { id: other.subscriptionId },
    });
    assert.equal(subscription.status, 'past_due');
  });

  it('refuses Stripe’s invoices: they are paid through Stripe', async () => {
    const invoice = await database.db.invoice.create({
      data: {
        organizationId,
        instanceId: server.instanceId,
        providerId: `in_${randomUUID().replaceAll('-', '')}`,
        status: 'open',
        totalMinor: 1900,
        currency: 'eur',
        periodStart: OCTOBER,
        periodEnd: NOW,
      },
    });
    const response = await call(`${app.url}/v1/invoices/${invoice.id}/mark-paid`, {
      method: 'POST',
      token: staff,
    });
    assert.equal(response.status, 409);
    assert.match(response.body.detail, /Stripe/);
    assert.equal((await database.db.invoice.findUniqueOrThrow({ where: { id: invoice.id } })).status, 'open');
  });
});
