/**
 * A server's public sponsor page, in a real browser (Debian's Chromium), against the real API
 * and PostgreSQL; Stripe is the stateful stand-in, and its Checkout page is answered by the
 * test (no network here).
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { call, startTestApp, type TestApp } from '../support/app.ts';
import { launchChromium } from '../support/browser.ts';
import { makeTestDatabase, type TestDatabase } from '../support/db.ts';
import { createOrganization, createUserWithToken } from '../support/factories.ts';
import { stripeStandIn } from '../support/stripe-stand-in.ts';

let database: TestDatabase;
let app: TestApp;
let owner: { userId: string; token: string };
let organizationId: string;

before(async () => {
  database = await makeTestDatabase();
  app = await startTestApp(
    database,
    {
      WOOLLY_BILLING_PROVIDER: 'stripe',
      WOOLLY_STRIPE_SECRET_KEY: 'sk_test_sponsorpage',
      WOOLLY_STRIPE_WEBHOOK_SECRET: 'whsec_sponsorpage',
    },
    { stripeGateway: stripeStandIn().gateway },
  );
  owner = await createUserWithToken(database.db);
  organizationId = await createOrganization(database.db, owner.userId);
});

after(async () => {
  await app.release();
  await database.release();
});

async function runningServer(domain: string): Promise<string> {
  const plan = await database.db.plan.findUniqueOrThrow({ where: { code: 'community' } });
  const instance = await database.db.instance.create({
    data: {
      organizationId,
      planId: plan.id,
      domain,
      mastodonVersion: 'v4.5.11',
      status: 'running',
      spec: {},
    },
  });
  return instance.id;
}

async function sponsor(instanceId: string, tier: string, displayName: string, showName: boolean) {
  await database.db.sponsorship.create({
    data: {
      organizationId,
      instanceId,
      tier,
      sponsorEmail: `${displayName.toLowerCase().replaceAll(' ', '.')}@example.test`,
      displayName,
      showName,
      amountMinor: 1500,
      currency: 'eur',
      status: 'active',
      startedAt: new Date(),
    },
  });
}

test('the sponsor page lists tiers and named sponsors, and its form opens Checkout', async (t) => {
  const browser = await launchChromium(t);
  if (!browser) return;
  try {
    const domain = 'chess.sponsor.woolly.test';
    const instanceId = await runningServer(domain);
    const opened = await call(`${app.url}/v1/instances/${instanceId}/sponsor-page`, {
      method: 'PUT',
      token: owner.token,
      body: { enabled: true, headline: 'Keep the chess server running' },
    });
    assert.equal(opened.status, 200);
    await sponsor(instanceId, 'gold', 'Ada Lovelace', true);
    await sponsor(instanceId, 'gold', 'Hidden Person', false);

    const page = await browser.newPage();
    await page.route('https://checkout.stripe.test/**', (route) =>
      route.fulfill({ status: 200, contentType: 'text/html', body: '<p>Stripe Checkout</p>' }),
    );
    await page.goto(`${app.url}/sponsor/${domain}`);
    await page.getByText('Keep the chess server running').waitFor({ timeout: 10_000 });
    await page.getByText('Ada Lovelace (Gold sponsor)').waitFor();
    assert.equal(await page.getByText('Hidden Person').count(), 0, 'a hidden sponsor is not named');
    await page.getByText('and 1 anonymous sponsor').waitFor();
    assert.equal(await page.getByText('hidden.person@example.test').count(), 0);

    await page.getByLabel(/Platinum sponsor/).check();
    await page.getByLabel('E-mail (for receipts; never shown)').fill('grace@example.test');
    await page.getByLabel('Name to show').fill('Grace Hopper');
    await page.getByLabel('Show my name on this page').check();
    await page.getByRole('button', { name: 'Sponsor' }).click();
    await page.waitForURL(/^https:\/\/checkout\.stripe\.test\//, { timeout: 10_000 });

    const pending = await database.db.sponsorship.findFirstOrThrow({
      where: { sponsorEmail: 'grace@example.test' },
    });
    assert.deepEqual(
      [pending.status, pending.tier, pending.displayName, pending.showName, pending.instanceId],
      ['pending', 'platinum', 'Grace Hopper', true, instanceId],
    );
    assert.ok(
      page.url().endsWith(pending.checkoutSessionId ?? 'no session'),
      'the session stored is the one opened',
    );
  } finally {
    await browser.close();
  }
});

test('a server whose page is closed says so, and sponsoring is not offered', async (t) => {
  const browser = await launchChromium(t);
  if (!browser) return;
  try {
    const domain = 'closed.sponsor.woolly.test';
    await runningServer(domain);
    const page = await browser.newPage();
    await page.goto(`${app.url}/sponsor/${domain}`);
    await page.getByRole('alert').waitFor({ timeout: 10_000 });
    assert.equal(await page.getByRole('alert').textContent(), 'This server has no sponsor page.');
    assert.equal(await page.getByRole('button', { name: 'Sponsor' }).isVisible(), false);
  } finally {
    await browser.close();
  }
});
