/**
 * The customer pages of the dashboard in a real browser (Debian's Chromium) against the real
 * API and PostgreSQL: each page shows seeded data without serious accessibility violations,
 * and sign-up, ordering (billing provider `none`), tokens and invitations work end to end.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, type TestContext, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { makeOutboxMailer, type OutboxMailer } from '../../api/auth/mailer.ts';
import { makeApiToken } from '../../core/crypto.ts';
import { makeLogger } from '../../core/log.ts';
import { startTestApp, type TestApp } from '../support/app.ts';
import { launchChromium } from '../support/browser.ts';
import {
  assertNoPageErrors,
  createPasswordUser,
  failOnPageErrors,
  type PasswordUser,
  screenshot,
  seriousAccessibilityViolations,
  signedInPage,
} from '../support/dashboard.ts';
import { makeTestDatabase, type TestDatabase } from '../support/db.ts';

let database: TestDatabase;
let app: TestApp;
let outbox: OutboxMailer;
let owner: PasswordUser;
let organizationId: string;
const viewerEmail = `viewer-${randomUUID().slice(0, 8)}@example.test`;

async function seed(): Promise<void> {
  const db = database.db;
  owner = await createPasswordUser(db, { name: 'Olive Owner' });
  const viewer = await createPasswordUser(db, { email: viewerEmail, name: 'Vera Viewer' });
  const organization = await db.organization.create({
    data: {
      name: 'Chess Club',
      slug: `chess-${randomUUID().slice(0, 8)}`,
      memberships: {
        create: [
          { userId: owner.userId, role: 'owner' },
          { userId: viewer.userId, role: 'viewer' },
        ],
      },
    },
  });
  organizationId = organization.id;
  const community = await db.plan.findUniqueOrThrow({ where: { code: 'community' } });
  const starter = await db.plan.findUniqueOrThrow({ where: { code: 'starter' } });
  const running = await db.instance.create({
    data: {
      organizationId,
      planId: community.id,
      domain: 'chess.woolly.test',
      mastodonVersion: 'v4.5.11',
      status: 'running',
      spec: {},
    },
  });
  await db.instance.create({
    data: {
      organizationId,
      planId: starter.id,
      domain: 'blitz.woolly.test',
      mastodonVersion: 'v4.5.11',
      status: 'provisioning',
      spec: {},
    },
  });
  await db.invoice.create({
    data: {
      organizationId,
      instanceId: running.id,
      providerId: `ledger-${randomUUID()}`,
      status: 'paid',
      totalMinor: 5900,
      currency: 'eur',
      periodStart: new Date('2026-10-01T00:00:00Z'),
      periodEnd: new Date('2026-11-01T00:00:00Z'),
      amountPaidMinor: 5900,
      paidAt: new Date('2026-11-02T00:00:00Z'),
      lines: [{ service: 'plan', description: 'Community plan', quantity: 1, amountMinor: 5900 }],
    },
  });
  const token = makeApiToken();
  await db.apiToken.create({
    data: {
      userId: owner.userId,
      name: 'deploy bot',
      prefix: token.prefix,
      tokenHash: token.hash,
      scopes: ['instances:read'],
    },
  });
  await db.sponsorPage.create({
    data: { instanceId: running.id, enabled: true, headline: 'Keep the chess server running' },
  });
  await db.sponsorship.create({
    data: {
      organizationId,
      instanceId: running.id,
      tier: 'gold',
      sponsorEmail: 'ada@example.test',
      displayName: 'Ada Lovelace',
      showName: true,
      amountMinor: 1500,
      currency: 'eur',
      status: 'active',
      startedAt: new Date(),
    },
  });
}

before(async () => {
  database = await makeTestDatabase();
  outbox = makeOutboxMailer({
    from: 'test@woolly.test',
    log: makeLogger({ log: { level: 'error', format: 'json' } }),
  });
  app = await startTestApp(database, {}, { mailer: outbox });
  await seed();
});

after(async () => {
  await app.release();
  await database.release();
});

/** Screenshot, axe and page errors for the page as it stands. */
async function checkPage(page: Page, name: string): Promise<void> {
  await screenshot(page, `portal-${name}`);
  const violations = await seriousAccessibilityViolations(page);
  assert.deepEqual(violations, [], `${name}: ${JSON.stringify(violations, null, 2)}`);
  assertNoPageErrors(page);
}

async function withBrowser(t: TestContext, run: (browser: Browser) => Promise<void>): Promise<void> {
  const browser = await launchChromium(t);
  if (!browser) return;
  try {
    await run(browser);
  } finally {
    await browser.close();
  }
}

test('every portal page shows its data, accessibly', async (t) => {
  await withBrowser(t, async (browser) => {
    const { page } = await signedInPage(browser, app, owner);
    const pages: [string, string, string][] = [
      ['servers', '/servers', 'chess.woolly.test'],
      ['order', '/order', 'Object storage'],
      ['invoices', '/invoices', '€59.00'],
      ['members', '/members', viewerEmail],
      ['tokens', '/tokens', 'deploy bot'],
      ['sponsor', '/sponsor', 'Ada Lovelace'],
    ];
    for (const [name, path, text] of pages) {
      // /dashboard/sponsor itself is redirected by express.static to the directory of the public
      // sponsor page (dashboard/dist/sponsor/), so that page is reached through the navigation.
      if (path === '/sponsor') await page.getByRole('link', { name: 'Sponsor page' }).click();
      else await page.goto(`/dashboard${path}`);
      await page
        .getByText(text)
        .first()
        .waitFor({ timeout: 10_000 })
        .catch(async (error) => {
          throw new Error(`${name}: ${error}\n${await page.locator('main').textContent()}`);
        });
      await checkPage(page, name);
    }
    await page.goto('/dashboard/servers');
    await page.getByRole('progressbar', { name: 'provisioning blitz.woolly.test' }).waitFor();

    const anonymous = await browser.newPage({ baseURL: app.url });
    failOnPageErrors(anonymous);
    await anonymous.goto('/dashboard/sign-up');
    await anonymous.getByRole('heading', { name: 'Create an account' }).waitFor({ timeout: 10_000 });
    await checkPage(anonymous, 'sign-up');
  });
});

test('the order page fits a 375 px wide screen', async (t) => {
  await withBrowser(t, async (browser) => {
    const { page } = await signedInPage(browser, app, owner, { width: 375, height: 800 });
    await page.goto('/dashboard/order');
    await page.getByText('Object storage').first().waitFor({ timeout: 10_000 });
    await checkPage(page, 'order-375');
    const width = await page.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(width <= 375, `the page is ${width} px wide`);
  });
});

test('signing up through the form, then confirming through the mailed link', async (t) => {
  await withBrowser(t, async (browser) => {
    const page = await browser.newPage({ baseURL: app.url });
    failOnPageErrors(page);
    const email = `new-${randomUUID().slice(0, 8)}@example.test`;
    await page.goto('/dashboard/sign-in');
    await page.getByRole('link', { name: 'Create an account' }).click();
    await page.getByLabel('Your name').fill('Nora New');
    await page.getByLabel('E-mail').fill(email);
    await page.getByLabel('Password').fill('a long enough password');
    await page.getByRole('button', { name: 'Create account' }).click();
    await page.getByText('Check your mail').waitFor({ timeout: 10_000 });

    const mail = outbox.sent.findLast((sent) => sent.to === email);
    const link = /https?:\/\/\S+(\/dashboard\/#verify-email=[A-Za-z0-9_-]+)/.exec(mail?.text ?? '');
    assert.ok(link?.[1], mail?.text);
    await page.goto(link[1]);
    await page.getByText('Your e-mail address is confirmed. Sign in to order a server.').waitFor();
    const user = await database.db.user.findUniqueOrThrow({ where: { email } });
    assert.ok(user.emailVerifiedAt);
    assert.equal(user.name, 'Nora New');
    assertNoPageErrors(page);
  });
});

test('a new customer names an organization, then orders a server', async (t) => {
  await withBrowser(t, async (browser) => {
    const buyer = await createPasswordUser(database.db);
    const { page } = await signedInPage(browser, app, buyer);
    await page.goto('/dashboard/order');
    await page.getByLabel('Name', { exact: true }).fill('Knitting Circle');
    await page.getByRole('button', { name: 'Create organization' }).click();
    await page.getByLabel(/Community/).check({ timeout: 10_000 });
    const membership = await database.db.membership.findFirstOrThrow({
      where: { userId: buyer.userId },
      include: { organization: true },
    });
    assert.deepEqual([membership.role, membership.organization.slug], ['owner', 'knitting-circle']);

    await page.getByLabel(/Object storage/).check();
    await page.getByText('Total: €64.00 a month').waitFor();
    const orders = () => database.db.order.count({ where: { organizationId: membership.organizationId } });

    await page.getByRole('textbox', { name: 'Domain' }).fill('bad_name!.example.org');
    await page.getByText('Use letters, digits and hyphens').waitFor();
    await page.getByRole('button', { name: 'Order server' }).click();
    await page.getByRole('textbox', { name: 'Domain' }).fill('knitting.elsewhere.example');
    await page.getByRole('button', { name: 'Order server' }).click();
    await page
      .getByRole('alert')
      .getByText(/neither under/)
      .waitFor({ timeout: 10_000 });
    assert.equal(await orders(), 0, 'a refused domain orders nothing');

    // The API checks the domain while it is typed, before any order: another club's server
    // holds chess.woolly.test.
    const field = page.getByRole('textbox', { name: 'Domain' });
    await field.fill('chess.woolly.test');
    await page
      .locator('#domain-error')
      .getByText(
        'The domain chess.woolly.test is taken or was used before; Mastodon domains are never reused.',
      )
      .waitFor({ timeout: 10_000 });
    assert.equal(await field.getAttribute('aria-invalid'), 'true');
    assert.match((await field.getAttribute('aria-describedby')) ?? '', /\bdomain-error\b/);
    assert.equal(await orders(), 0, 'checking a domain orders nothing');
    assert.equal(
      await database.db.instance.count({ where: { organizationId: membership.organizationId } }),
      0,
    );

    await field.fill('knitting.woolly.test');
    await page
      .getByRole('status')
      .getByText('✓ knitting.woolly.test is available')
      .waitFor({ timeout: 10_000 });
    assert.equal(await field.getAttribute('aria-invalid'), null);
    await page.getByRole('button', { name: 'Order server' }).click();
    await page.getByText('awaits approval by Woolly staff').waitFor({ timeout: 10_000 });
    const order = await database.db.order.findFirstOrThrow({
      where: { organizationId: membership.organizationId },
      include: { plan: true },
    });
    assert.deepEqual(
      [order.plan.code, order.addonCodes, order.domain, order.status, order.totalMinor],
      ['community', ['object_storage'], 'knitting.woolly.test', 'pending_payment', 6400],
    );
    await page.getByRole('link', { name: 'Follow knitting.woolly.test' }).click();
    await page.waitForURL(`**/dashboard/instances/${order.instanceId}`);
    assertNoPageErrors(page);
  });
});

test('a token is created, shown once, and revoked', async (t) => {
  await withBrowser(t, async (browser) => {
    const { page } = await signedInPage(browser, app, owner);
    await page.goto('/dashboard/tokens');
    await page.getByLabel('Name').fill('ci bot');
    await page.getByLabel(/Order and change servers/).check();
    await page.getByLabel('Expires after').selectOption({ label: '30 days' });
    await page.getByRole('button', { name: 'Create token' }).click();
    await page.getByText('it is shown only once').waitFor({ timeout: 10_000 });
    const secret = await page
      .getByRole('region', { name: /Your new token/ })
      .locator('code')
      .textContent();
    assert.match(secret ?? '', /^wly_/);
    const stored = await database.db.apiToken.findFirstOrThrow({
      where: { userId: owner.userId, name: 'ci bot' },
    });
    assert.deepEqual(stored.scopes.sort(), ['instances:read', 'instances:write']);
    assert.ok(stored.expiresAt);

    await page.getByRole('button', { name: 'Revoke ci bot' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Revoke token' }).click();
    await page
      .getByRole('row', { name: /ci bot/ })
      .getByText('revoked')
      .waitFor({ timeout: 10_000 });
    const revoked = await database.db.apiToken.findUniqueOrThrow({ where: { id: stored.id } });
    assert.ok(revoked.revokedAt);
    assertNoPageErrors(page);
  });
});

test('an owner invites a member by e-mail', async (t) => {
  await withBrowser(t, async (browser) => {
    const { page } = await signedInPage(browser, app, owner);
    await page.goto('/dashboard/members');
    await page.getByLabel('E-mail').fill('grace@example.test');
    await page.getByLabel('Role', { exact: true }).selectOption('admin');
    await page.getByRole('button', { name: 'Invite', exact: true }).click();
    await page.getByRole('cell', { name: 'grace@example.test', exact: true }).waitFor({ timeout: 10_000 });
    const invitation = await database.db.invitation.findFirstOrThrow({
      where: { organizationId, email: 'grace@example.test' },
    });
    assert.equal(invitation.role, 'admin');
    assert.ok(outbox.sent.some((sent) => sent.to === 'grace@example.test'));
    assertNoPageErrors(page);
  });
});
