/**
 * The ops pages of the dashboard in a real browser (Debian's Chromium), against the real API
 * and PostgreSQL: organizations, orders, clusters, billing, fleet upgrades and the audit log,
 * each over seeded data, screenshotted, checked with axe-core, and driven once where there is
 * something to do (approve and cancel orders, start and stop an upgrade, filter the log).
 */
import assert from 'node:assert/strict';
import { after, before, type TestContext, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { call, startTestApp, type TestApp } from '../support/app.ts';
import { launchChromium } from '../support/browser.ts';
import {
  assertNoPageErrors,
  createPasswordUser,
  type PasswordUser,
  screenshot,
  seriousAccessibilityViolations,
  signedInPage,
} from '../support/dashboard.ts';
import { makeTestDatabase, type TestDatabase } from '../support/db.ts';
import { createUserWithToken } from '../support/factories.ts';

let database: TestDatabase;
let app: TestApp;
let staff: PasswordUser;
let organizationId: string;
const DAY = 86_400_000;

async function runningServer(domain: string, clusterId: string): Promise<string> {
  const plan = await database.db.plan.findUniqueOrThrow({ where: { code: 'community' } });
  const instance = await database.db.instance.create({
    data: {
      organizationId,
      planId: plan.id,
      clusterId,
      domain,
      mastodonVersion: 'v4.5.11',
      status: 'running',
      spec: {},
    },
  });
  return instance.id;
}

before(async () => {
  database = await makeTestDatabase();
  app = await startTestApp(database);
  const { db } = database;
  staff = await createPasswordUser(db, { staffRole: 'ops', name: 'Olive Ops' });
  const owner = await createUserWithToken(db, { email: 'ada.owner@example.test' });
  const grace = await db.user.create({ data: { email: 'grace.member@example.test', name: 'Grace Member' } });
  const organization = await db.organization.create({
    data: {
      name: 'Chess Club Ops',
      slug: 'chess-club-ops',
      memberships: {
        create: [
          { userId: owner.userId, role: 'owner' },
          { userId: grace.id, role: 'admin' },
        ],
      },
    },
  });
  organizationId = organization.id;
  await db.organization.create({ data: { name: 'Knitting Circle', slug: 'knitting-circle' } });
  const asOwner = async (path: string, body: unknown) => {
    const answer = await call(`${app.url}${path}`, { token: owner.token, body });
    assert.equal(answer.status, 201, JSON.stringify(answer.body));
  };
  await asOwner(`/v1/organizations/${organizationId}/invitations`, {
    email: 'invitee@example.test',
    role: 'viewer',
  });
  await asOwner(`/v1/organizations/${organizationId}/domains`, { hostname: 'chess-club.example.org' });
  for (const name of ['approve-ops', 'cancel-ops'])
    await asOwner('/v1/orders', { organizationId, plan: 'community', domain: `${name}.woolly.test` });

  const cluster = await db.cluster.create({
    data: { name: 'eu-ops-1', target: 'dry_run', region: 'eu-test', capacity: 50 },
  });
  const alpha = await runningServer('alpha-ops.woolly.test', cluster.id);
  await runningServer('bravo-ops.woolly.test', cluster.id);
  const late = await runningServer('late-ops.woolly.test', cluster.id);

  const now = new Date();
  await db.subscription.create({
    data: {
      instanceId: late,
      organizationId,
      provider: 'none',
      status: 'past_due',
      priceMinor: 1900,
      currency: 'eur',
      currentPeriodStart: new Date(now.getTime() - 20 * DAY),
      currentPeriodEnd: new Date(now.getTime() + 10 * DAY),
      pastDueSince: new Date(now.getTime() - 3 * DAY),
      graceEndsAt: new Date(now.getTime() + 4 * DAY),
    },
  });
  const invoice = (providerId: string, instanceId: string, paid: boolean) => ({
    organizationId,
    instanceId,
    providerId,
    status: paid ? 'paid' : 'open',
    totalMinor: 2400,
    amountPaidMinor: paid ? 2400 : 0,
    currency: 'eur',
    periodStart: new Date(now.getTime() - 30 * DAY),
    periodEnd: now,
    dueAt: new Date(now.getTime() + 7 * DAY),
    paidAt: paid ? now : null,
    lines: [
      { service: 'plan', description: 'Community plan', quantity: 1, amountMinor: 1900 },
      { service: 'storage', description: 'Extra storage', quantity: 5, amountMinor: 500 },
    ],
  });
  await db.invoice.createMany({
    data: [invoice('inv_ops_paid', alpha, true), invoice('inv_ops_open', late, false)],
  });
  const hour = new Date(Math.floor(now.getTime() / 3_600_000) * 3_600_000);
  await db.usageEvent.createMany({
    data: [
      {
        instanceId: alpha,
        meter: 'storage_gb_hours',
        quantity: 240n,
        occurredAt: hour,
        idempotencyKey: 'ops-s',
      },
      { instanceId: alpha, meter: 'active_users', quantity: 37n, occurredAt: hour, idempotencyKey: 'ops-u' },
    ],
  });
});

after(async () => {
  await app.release();
  await database.release();
});

/** A signed-in staff page at `path`, once `text` (seeded data) is on it. */
async function open(browser: Browser, path: string, text: string | RegExp, width = 1280): Promise<Page> {
  const { page } = await signedInPage(browser, app, staff, { width, height: 860 });
  await page.goto(`/dashboard${path}`);
  await page
    .getByText(text)
    .first()
    .waitFor({ timeout: 10_000 })
    .catch(async (error: unknown) => {
      await screenshot(page, `failed-${path.replaceAll('/', '-')}`);
      throw error;
    });
  return page;
}

/** Screenshot, no serious axe violations, no page errors. */
async function check(page: Page, name: string) {
  await screenshot(page, name);
  assert.deepEqual(await seriousAccessibilityViolations(page), [], `${name}: axe`);
  assertNoPageErrors(page);
}

async function withBrowser(t: TestContext, run: (browser: Browser) => Promise<void>) {
  const browser = await launchChromium(t);
  if (!browser) return;
  try {
    await run(browser);
  } finally {
    await browser.close();
  }
}

test('organizations: searched, and one shows its members, domains, orders, invoices and log', (t) =>
  withBrowser(t, async (browser) => {
    const page = await open(browser, '/organizations', 'Knitting Circle');
    await page.getByLabel('Search by name or slug').fill('chess');
    await page.getByText('Knitting Circle').waitFor({ state: 'detached' });
    await check(page, 'ops-organizations');

    await page.getByRole('link', { name: 'Chess Club Ops' }).click();
    await page.getByRole('heading', { name: 'Chess Club Ops' }).waitFor({ timeout: 10_000 });
    for (const text of [
      'Grace Member',
      'invitee@example.test',
      'chess-club.example.org',
      'approve-ops.woolly.test',
    ])
      await page.getByText(text).first().waitFor();
    await page.getByText('€24.00').first().waitFor();
    await page.getByText('order.create').first().waitFor();
    await check(page, 'ops-organization');
  }));

test('clusters: each with a capacity meter in numbers', (t) =>
  withBrowser(t, async (browser) => {
    const page = await open(browser, '/clusters', 'eu-ops-1');
    await page.getByText('3 of 50').waitFor();
    assert.equal(await page.getByRole('meter', { name: 'eu-ops-1: 3 of 50 servers' }).count(), 1);
    await check(page, 'ops-clusters');
  }));

test('billing: MRR, revenue by service, churn, past due and usage charts', (t) =>
  withBrowser(t, async (browser) => {
    const page = await open(browser, '/billing', 'MRR · EUR');
    await page.getByRole('link', { name: 'late-ops.woolly.test' }).waitFor();
    await page.getByText('By service, EUR: €24.00 in all').waitFor();
    await page.getByText('Media storage').first().waitFor({ timeout: 10_000 });
    assert.equal(await page.locator('figure svg[role="img"]').count(), 3, 'a chart per meter');
    await check(page, 'ops-billing');
  }));

test('orders: payment approved and an order cancelled, as PostgreSQL records', (t) =>
  withBrowser(t, async (browser) => {
    const page = await open(browser, '/orders', 'approve-ops.woolly.test');
    await check(page, 'ops-orders');

    await page.getByRole('button', { name: 'Approve payment for approve-ops.woolly.test' }).click();
    await page.getByText('Payment approved for approve-ops.woolly.test').waitFor();
    const approved = await database.db.order.findFirstOrThrow({
      where: { domain: 'approve-ops.woolly.test' },
    });
    assert.equal(approved.status, 'paid');

    await page.getByRole('button', { name: 'Cancel order for cancel-ops.woolly.test' }).click();
    const dialog = page.getByRole('dialog');
    await dialog.getByLabel(/Type/).fill('cancel-ops.woolly.test');
    await dialog.getByRole('button', { name: 'Cancel order' }).click();
    await page.getByText('The order for cancel-ops.woolly.test is cancelled').waitFor();
    const cancelled = await database.db.order.findFirstOrThrow({
      where: { domain: 'cancel-ops.woolly.test' },
    });
    assert.equal(cancelled.status, 'cancelled');

    await page.getByLabel('Status').selectOption('paid');
    await page.getByText('cancel-ops.woolly.test').waitFor({ state: 'detached' });
    assertNoPageErrors(page);
  }));

test('upgrades: one started, watched wave by wave, and stopped', (t) =>
  withBrowser(t, async (browser) => {
    const page = await open(browser, '/upgrades', 'No fleet upgrade yet.');
    await page.getByLabel('Target version').fill('v4.5.12');
    await page.getByLabel('Servers per wave').fill('1');
    await page.getByLabel('Cluster').selectOption({ label: 'eu-ops-1 (eu-test)' });
    await page.getByRole('button', { name: 'Start upgrade' }).click();
    await page.getByText('Upgrade to v4.5.12 started: 3 servers in 3 waves.').waitFor({ timeout: 10_000 });
    await page.getByText('0 of 3 upgraded').waitFor();
    await page.getByRole('button', { name: 'Details of the upgrade to v4.5.12' }).click();
    await page.getByRole('link', { name: 'bravo-ops.woolly.test' }).waitFor({ timeout: 10_000 });
    await check(page, 'ops-upgrades');

    await page.getByRole('button', { name: 'Stop the upgrade to v4.5.12' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Stop upgrade' }).click();
    await page.locator('.badge', { hasText: /^stopped$/ }).waitFor({ timeout: 10_000 });
    const upgrade = await database.db.fleetUpgrade.findFirstOrThrow({ where: { targetVersion: 'v4.5.12' } });
    assert.equal(upgrade.status, 'stopped');
    assertNoPageErrors(page);
  }));

test('audit log: every change is there, and a filter narrows the rows', (t) =>
  withBrowser(t, async (browser) => {
    const page = await open(browser, '/audit', 'fleet_upgrade.stop');
    const rows = page.locator('section[aria-label="Audit entries"] tbody tr');
    const before = await rows.count();
    await check(page, 'ops-audit');

    await page.getByLabel('Action').fill('order.create');
    await page.getByRole('button', { name: 'Apply filters' }).click();
    await page.getByText('fleet_upgrade.stop').waitFor({ state: 'detached' });
    await page.getByText('order.create').first().waitFor();
    const actions = await page
      .locator('section[aria-label="Audit entries"] tbody tr td:nth-child(2)')
      .allTextContents();
    assert.deepEqual(actions, ['order.create', 'order.create']);
    assert.ok(before > actions.length, `${before} rows narrowed to ${actions.length}`);
    assert.match(page.url(), /action=order\.create/);
    assertNoPageErrors(page);
  }));

test('every ops page fits a 375 px wide screen (tables scroll inside)', (t) =>
  withBrowser(t, async (browser) => {
    const pages = [
      ['/organizations', 'Chess Club Ops'],
      [`/organizations/${organizationId}`, 'Grace Member'],
      ['/orders', 'approve-ops.woolly.test'],
      ['/clusters', 'eu-ops-1'],
      ['/billing', 'MRR · EUR'],
      ['/upgrades', 'v4.5.12'],
      ['/audit', 'order.create'],
    ] as const;
    const { page } = await signedInPage(browser, app, staff, { width: 375, height: 800 });
    for (const [path, text] of pages) {
      await page.goto(`/dashboard${path}`);
      await page.getByText(text).first().waitFor({ timeout: 10_000 });
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 0, `${path} is ${overflow} px too wide at 375 px`);
    }
    await screenshot(page, 'ops-audit-375');
    assertNoPageErrors(page);
  }));
