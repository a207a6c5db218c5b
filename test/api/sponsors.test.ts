/**
 * Sponsor pages through the API: the opt-in, the public page and its Checkout (no
 * authentication), and the organization's list of its sponsors. Stripe is the stateful
 * stand-in where a flow needs it to remember, stripe-mock where only the request matters.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { sponsorshipReactions } from '../../billing/sponsorships.ts';
import { makeStripeGateway } from '../../billing/stripe-gateway.ts';
import { call, startTestApp, type TestApp } from '../support/app.ts';
import { makeTestDatabase, type TestDatabase } from '../support/db.ts';
import { createOrganization, createUserWithToken } from '../support/factories.ts';
import {
  STRIPE_MOCK_API_KEY,
  type StripeMock,
  startStripeMock,
  stripeMockSkipReason,
} from '../support/stripe-mock.ts';
import { type StripeStandIn, stripeStandIn } from '../support/stripe-stand-in.ts';

const STRIPE_ENV = {
  WOOLLY_BILLING_PROVIDER: 'stripe',
  WOOLLY_STRIPE_SECRET_KEY: 'sk_test_sponsors',
  WOOLLY_STRIPE_WEBHOOK_SECRET: 'whsec_sponsors',
  WOOLLY_PUBLIC_URL: 'https://woolly.example',
};
const BILLING_SCOPES = ['instances:read', 'instances:write', 'billing:read'];

let database: TestDatabase;
/** Takes payments through Stripe (the stand-in). */
let app: TestApp;
/** The `none` billing provider: no Stripe at all. */
let appWithoutStripe: TestApp;
let stand: StripeStandIn;
const people = { owner: '', viewer: '', billing: '', outsider: '', staff: '', readOnly: '' };
let organizationId: string;
const moreApps: TestApp[] = [];

before(async () => {
  database = await makeTestDatabase();
  stand = stripeStandIn();
  app = await startTestApp(database, STRIPE_ENV, { stripeGateway: stand.gateway });
  appWithoutStripe = await startTestApp(database);
  const owner = await createUserWithToken(database.db, { scopes: BILLING_SCOPES });
  organizationId = await createOrganization(database.db, owner.userId, 'owner');
  people.owner = owner.token;
  for (const role of ['viewer', 'billing'] as const) {
    const user = await createUserWithToken(database.db, { scopes: BILLING_SCOPES });
    await database.db.membership.create({ data: { organizationId, userId: user.userId, role } });
    people[role] = user.token;
  }
  const readOnly = await createUserWithToken(database.db, { scopes: ['instances:read'] });
  await database.db.membership.create({ data: { organizationId, userId: readOnly.userId, role: 'owner' } });
  people.readOnly = readOnly.token;
  const outsider = await createUserWithToken(database.db, { scopes: BILLING_SCOPES });
  await createOrganization(database.db, outsider.userId, 'owner');
  people.outsider = outsider.token;
  people.staff = (await createUserWithToken(database.db, { staffRole: 'ops' })).token;
});

after(async () => {
  for (const started of [app, appWithoutStripe, ...moreApps]) await started?.release();
  await database?.release();
});

/**
 * Another app over the same database, released with the others at the end: passport's bearer
 * strategy is process-wide and reads through the pool of the app made last, so none may close
 * before the file is done.
 */
async function startAnotherApp(env: Record<string, string>, deps: Parameters<typeof startTestApp>[2] = {}) {
  const started = await startTestApp(database, env, deps);
  moreApps.push(started);
  return started;
}

/** A server of the organization, `running` unless told otherwise. */
async function server(status: 'running' | 'deleted' = 'running') {
  const plan = await database.db.plan.findUniqueOrThrow({ where: { code: 'starter' } });
  return database.db.instance.create({
    data: {
      organizationId,
      planId: plan.id,
      domain: `sp-${randomUUID().slice(0, 8)}.woolly.test`,
      mastodonVersion: 'v4.5.11',
      status,
      spec: { addons: [] },
    },
  });
}

/** A server whose sponsor page is open. */
async function sponsoredServer() {
  const instance = await server();
  await database.db.sponsorPage.create({ data: { instanceId: instance.id, enabled: true } });
  return instance;
}

const openPage = (instanceId: string, token: string, body: unknown = { enabled: true }) =>
  call(`${app.url}/v1/instances/${instanceId}/sponsor-page`, { method: 'PUT', token, body });

const pageOf = (domain: string, url = app.url) => call(`${url}/v1/sponsor-pages/${domain}`);

const checkout = (
  domain: string,
  body: unknown,
  options: { url?: string; headers?: Record<string, string> } = {},
) =>
  call(`${options.url ?? app.url}/v1/sponsor-pages/${domain}/checkout`, {
    method: 'POST',
    body,
    headers: options.headers,
  });

/** Rows a refused checkout must not change. */
async function counts() {
  const [sponsorships, audit] = await Promise.all([
    database.db.sponsorship.count(),
    database.db.auditLog.count(),
  ]);
  return { sponsorships, audit, stripeWrites: stand.writes.length };
}

describe('opting in', () => {
  test("a server's sponsor page is hidden until its organization opens it, and again once closed", async () => {
    const instance = await server();
    assert.equal((await pageOf(instance.domain)).status, 404);
    const opened = await openPage(instance.id, people.owner, { enabled: true, headline: 'Keep us running' });
    assert.equal(opened.status, 200);
    assert.deepEqual(opened.body, {
      instanceId: instance.id,
      domain: instance.domain,
      enabled: true,
      headline: 'Keep us running',
      publicPath: `/v1/sponsor-pages/${instance.domain}`,
    });
    const page = await pageOf(instance.domain);
    assert.equal(page.status, 200);
    assert.equal(page.body.headline, 'Keep us running');
    assert.equal((await pageOf(instance.domain.toUpperCase())).status, 200, 'domains are case-insensitive');
    const closed = await openPage(instance.id, people.owner, { enabled: false });
    assert.equal(closed.body.headline, 'Keep us running', 'a headline left out stays as it was');
    assert.equal((await pageOf(instance.domain)).status, 404);
    const audit = await database.db.auditLog.findMany({
      where: { targetId: instance.id, action: { startsWith: 'sponsor_page.' } },
      orderBy: { id: 'asc' },
    });
    assert.deepEqual(
      audit.map((row) => row.action),
      ['sponsor_page.enable', 'sponsor_page.disable'],
    );
  });

  test('a deleted server and a domain nobody has show no page', async () => {
    const gone = await server('deleted');
    await database.db.sponsorPage.create({ data: { instanceId: gone.id, enabled: true } });
    assert.equal((await pageOf(gone.domain)).status, 404);
    assert.equal((await pageOf('nobody-here.woolly.test')).status, 404);
    const refused = await openPage(gone.id, people.owner);
    assert.equal(refused.status, 409);
  });

  test('owners, admins and billing members open the page; a viewer is refused, an outsider told it is not there', async () => {
    const instance = await server();
    assert.equal((await openPage(instance.id, people.viewer)).status, 403);
    assert.equal((await openPage(instance.id, people.outsider)).status, 404);
    assert.equal(
      (
        await call(`${app.url}/v1/instances/${instance.id}/sponsor-page`, {
          method: 'PUT',
          body: { enabled: true },
        })
      ).status,
      401,
    );
    assert.equal((await pageOf(instance.domain)).status, 404, 'refusals opened nothing');
    assert.equal((await openPage(instance.id, people.billing)).status, 200);
    assert.equal((await openPage(instance.id, people.staff, { enabled: false })).status, 200);
  });
});

describe('the public page', () => {
  test('lists the tiers, and active sponsors by name only where they chose it; never an address', async () => {
    const instance = await sponsoredServer();
    const sponsor = (displayName: string | null, showName: boolean, status: string, tier = 'gold') =>
      database.db.sponsorship.create({
        data: {
          organizationId,
          instanceId: instance.id,
          tier,
          sponsorEmail: `${(displayName ?? 'nobody').toLowerCase().replace(' ', '.')}@example.test`,
          displayName,
          showName,
          amountMinor: 1500,
          currency: 'eur',
          status,
          startedAt: status === 'pending' ? null : new Date(),
        },
      });
    await sponsor('Ada Lovelace', true, 'active', 'platinum');
    await sponsor('Hidden Harry', false, 'active');
    await sponsor(null, false, 'active', 'rosegold');
    await sponsor('Pending Pat', true, 'pending');
    await sponsor('Gone Gus', true, 'canceled');
    const page = await pageOf(instance.domain);
    assert.equal(page.status, 200);
    assert.deepEqual(page.body.tiers, [
      {
        code: 'rosegold',
        name: 'Rosegold sponsor',
        price: { amountMinor: 500, currency: 'eur', interval: 'month' },
      },
      {
        code: 'gold',
        name: 'Gold sponsor',
        price: { amountMinor: 1500, currency: 'eur', interval: 'month' },
      },
      {
        code: 'platinum',
        name: 'Platinum sponsor',
        price: { amountMinor: 5000, currency: 'eur', interval: 'month' },
      },
    ]);
    assert.deepEqual(page.body.sponsors, [{ displayName: 'Ada Lovelace', tier: 'platinum' }]);
    assert.equal(page.body.anonymousSponsors, 2);
    assert.equal(page.body.checkoutAvailable, true);
    const text = JSON.stringify(page.body);
    assert.ok(!text.includes('@'), 'no e-mail address');
    assert.ok(!text.includes('Hidden Harry'), 'no hidden name');
  });

  test('without Stripe (billing provider none) the page lists the tiers, and checkout is a 409 that writes nothing', async () => {
    const instance = await sponsoredServer();
    const page = await pageOf(instance.domain, appWithoutStripe.url);
    assert.equal(page.status, 200);
    assert.equal(page.body.tiers.length, 3);
    assert.equal(page.body.checkoutAvailable, false);
    const before = await counts();
    const refused = await checkout(
      instance.domain,
      { tier: 'gold', email: 'ada@example.test', showName: false },
      { url: appWithoutStripe.url },
    );
    assert.equal(refused.status, 409);
    assert.match(refused.body.detail, /Stripe/);
    assert.deepEqual(await counts(), before);
  });
});

describe('checkout from the public page', () => {
  test('writes a pending sponsorship and answers where to pay; paying puts the sponsor on the page', async () => {
    const instance = await sponsoredServer();
    const response = await checkout(instance.domain, {
      tier: 'gold',
      email: 'grace.hopper@example.test',
      displayName: 'Grace',
      showName: true,
    });
    assert.equal(response.status, 201, JSON.stringify(response.body));
    const { sponsorshipId, checkoutUrl, expiresAt } = response.body;
    const row = await database.db.sponsorship.findUniqueOrThrow({ where: { id: sponsorshipId } });
    assert.equal(row.status, 'pending');
    assert.equal(row.instanceId, instance.id);
    assert.equal(row.organizationId, organizationId);
    assert.equal(row.sponsorEmail, 'grace.hopper@example.test');
    assert.equal(row.amountMinor, 1500);
    const session = stand.sessions.get(row.checkoutSessionId as string);
    assert.equal(session?.url, checkoutUrl);
    assert.equal(new Date(expiresAt).getTime(), (session?.expires_at ?? 0) * 1000);
    const sent = stand.writes.findLast((write) => write.method === 'createCheckoutSession');
    assert.equal(sent?.idempotencyKey, `sponsor-checkout:${sponsorshipId}`);
    assert.deepEqual((sent?.params as { line_items?: unknown } | undefined)?.line_items, [
      { price: stand.price('sponsor:gold').id, quantity: 1 },
    ]);
    const audit = await database.db.auditLog.findFirstOrThrow({ where: { targetId: sponsorshipId } });
    assert.equal(audit.action, 'sponsorship.checkout');
    assert.equal(audit.actor, 'anonymous');
    assert.ok(!JSON.stringify(audit.data).includes('grace.hopper'), 'no address in the audit log');
    assert.ok(!app.logs().includes('grace.hopper'), 'no address in the logs');
    assert.equal((await pageOf(instance.domain)).body.sponsors.length, 0, 'not a sponsor before paying');

    stand.simulateCheckoutPaid(row.checkoutSessionId as string);
    const paid = await stand.gateway.retrieveCheckoutSession(row.checkoutSessionId as string);
    await database.db.$transaction((tx) => sponsorshipReactions.activate(tx, stand.gateway, paid));
    assert.deepEqual((await pageOf(instance.domain)).body.sponsors, [{ displayName: 'Grace', tier: 'gold' }]);
  });

  test('bad input is a 422 naming every field to fix, and writes nothing', async () => {
    const instance = await sponsoredServer();
    const before = await counts();
    const refused = await checkout(instance.domain, {
      tier: 'diamond',
      email: 'not an address',
      displayName: 'x'.repeat(81),
      showName: true,
    });
    assert.equal(refused.status, 422);
    assert.deepEqual(
      refused.body.errors.map((error: { field: string }) => error.field),
      ['tier', 'email', 'displayName'],
    );
    const nameless = await checkout(instance.domain, {
      tier: 'gold',
      email: 'ada@example.test',
      showName: true,
    });
    assert.equal(nameless.status, 422);
    assert.deepEqual(nameless.body.errors, [
      { field: 'displayName', message: 'Give the name to show, or set showName to false.' },
    ]);
    assert.deepEqual(await counts(), before);
  });

  test('a hidden page takes no sponsors', async () => {
    const instance = await server();
    const before = await counts();
    const refused = await checkout(instance.domain, {
      tier: 'gold',
      email: 'ada@example.test',
      showName: false,
    });
    assert.equal(refused.status, 404);
    assert.deepEqual(await counts(), before);
  });

  test('a browser on this site passes without a CSRF token; one on another site is refused', async () => {
    const instance = await sponsoredServer();
    const body = { tier: 'rosegold', email: 'ada@example.test', showName: false };
    const sameSite = await checkout(instance.domain, body, { headers: { 'sec-fetch-site': 'same-origin' } });
    assert.equal(sameSite.status, 201);
    const before = await counts();
    const crossSite = await checkout(instance.domain, body, { headers: { origin: 'https://evil.example' } });
    assert.equal(crossSite.status, 403);
    assert.deepEqual(await counts(), before);
  });
});

describe('Stripe refusing a checkout', () => {
  let refusal: Error & { param?: string };
  let refusing: TestApp;

  before(async () => {
    refusing = await startAnotherApp(STRIPE_ENV, {
      stripeGateway: {
        ...stand.gateway,
        createCheckoutSession: async () => {
          throw refusal;
        },
      },
    });
  });

  const body = { tier: 'gold', email: 'quoted.sponsor@example.test', showName: false };

  test('an address Stripe will not take is the sponsor to fix: 422 on email', async () => {
    const instance = await sponsoredServer();
    refusal = Object.assign(new Error('Invalid email address: quoted.sponsor@example.test'), {
      param: 'customer_email',
    });
    const refused = await checkout(instance.domain, body, { url: refusing.url });
    assert.equal(refused.status, 422);
    assert.deepEqual(
      refused.body.errors.map((error: { field: string }) => error.field),
      ['email'],
    );
    assert.ok(!JSON.stringify(refused.body).includes('quoted.sponsor'));
  });

  test("Stripe failing is a 503, and the sponsor's address is kept out of the answer and the logs", async () => {
    const instance = await sponsoredServer();
    refusal = new Error('Something broke while handling quoted.sponsor@example.test');
    const refused = await checkout(instance.domain, body, { url: refusing.url });
    assert.equal(refused.status, 503);
    assert.match(refused.body.detail, /Try again shortly/);
    assert.match(refusing.logs(), /request failed/, 'the failure is logged');
    assert.ok(!refusing.logs().includes('quoted.sponsor'), 'without the address');
    assert.ok(!JSON.stringify(refused.body).includes('quoted.sponsor'));
  });
});

describe('the organization sees its sponsors', () => {
  test('members with billing access see every sponsorship with its address and total paid; others do not', async () => {
    const instance = await sponsoredServer();
    const sponsorship = await database.db.sponsorship.create({
      data: {
        organizationId,
        instanceId: instance.id,
        tier: 'gold',
        sponsorEmail: 'ada@example.test',
        displayName: 'Ada',
        showName: false,
        amountMinor: 1500,
        currency: 'eur',
        status: 'active',
        startedAt: new Date('2026-10-01T00:00:00Z'),
        payments: {
          create: [
            {
              providerInvoiceId: `in_${randomUUID()}`,
              amountMinor: 1500,
              currency: 'eur',
              paidAt: new Date(),
            },
            {
              providerInvoiceId: `in_${randomUUID()}`,
              amountMinor: 1500,
              currency: 'eur',
              paidAt: new Date(),
            },
          ],
        },
      },
    });
    const listed = await call(`${app.url}/v1/instances/${instance.id}/sponsorships`, {
      token: people.viewer,
    }).catch(async (e) => {
      (await import('node:fs')).writeFileSync('/tmp/sp-logs.txt', app.logs());
      throw e;
    });
    assert.equal(listed.status, 200);
    assert.deepEqual(listed.body.data, [
      {
        id: sponsorship.id,
        tier: 'gold',
        status: 'active',
        email: 'ada@example.test',
        displayName: 'Ada',
        showName: false,
        price: { amountMinor: 1500, currency: 'eur', interval: 'month' },
        startedAt: '2026-10-01T00:00:00.000Z',
        endedAt: null,
        createdAt: sponsorship.createdAt.toISOString(),
        totalPaid: { amountMinor: 3000, currency: 'eur' },
      },
    ]);
    const list = (token?: string) => call(`${app.url}/v1/instances/${instance.id}/sponsorships`, { token });
    assert.equal((await list(people.staff)).status, 200);
    assert.equal((await list(people.outsider)).status, 404);
    assert.equal((await list(people.readOnly)).status, 403, 'sponsor addresses need billing:read');
    assert.equal((await list()).status, 401);
  });
});

describe('limits on public callers', () => {
  test('the public page is held to the anonymous rate limit', async () => {
    const instance = await sponsoredServer();
    const limited = await startAnotherApp({ ...STRIPE_ENV, WOOLLY_RATE_LIMIT_ANONYMOUS_PER_MINUTE: '2' });
    assert.equal((await pageOf(instance.domain, limited.url)).status, 200);
    assert.equal((await pageOf(instance.domain, limited.url)).status, 200);
    assert.equal((await pageOf(instance.domain, limited.url)).status, 429);
  });
});

describe('a Stripe account never synced (stripe-mock)', { skip: stripeMockSkipReason() }, () => {
  let mock: StripeMock;
  let mocked: TestApp;

  before(async () => {
    mock = await startStripeMock();
    mocked = await startAnotherApp(STRIPE_ENV, {
      stripeGateway: makeStripeGateway({ secretKey: STRIPE_MOCK_API_KEY, apiUrl: mock.url }),
    });
  });

  after(async () => {
    await mock?.release();
  });

  test('checkout is a 503 saying `woolly billing sync` has not run, and writes nothing', async () => {
    const instance = await sponsoredServer();
    const before = await counts();
    const refused = await checkout(
      instance.domain,
      { tier: 'gold', email: 'ada@example.test', showName: false },
      { url: mocked.url },
    );
    assert.equal(refused.status, 503);
    assert.match(refused.body.detail, /sponsor:gold.*woolly billing sync/);
    assert.deepEqual(await counts(), before);
  });
});
