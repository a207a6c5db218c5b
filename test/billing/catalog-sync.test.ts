/**
 * `syncCatalog` through the real `stripe` client against stripe-mock (every request checked
 * against Stripe's API description), and against a stateful stand-in named as such (stripe-mock
 * remembers nothing, so running twice can only be judged on something that remembers): the
 * second run changes nothing, a changed amount replaces exactly one Price.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type Stripe from 'stripe';
import { desiredCatalog, syncCatalog } from '../../billing/catalog-sync.ts';
import { PLAN_CATALOG } from '../../core/domain/catalog.ts';
import {
  STRIPE_MOCK_API_KEY,
  type StripeMock,
  startStripeMock,
  stripeMockClient,
  stripeMockSkipReason,
} from '../support/stripe-mock.ts';

describe('the catalog against stripe-mock', { skip: stripeMockSkipReason() }, () => {
  let mock: StripeMock;
  before(async () => {
    mock = await startStripeMock();
  });
  after(() => mock?.release());

  it('every request of a full sync is one Stripe accepts', async () => {
    const stripe = stripeMockClient(mock);
    const report = await syncCatalog(stripe);
    const { products, prices, meters } = desiredCatalog();
    // stripe-mock answers every lookup with a fixture that is never ours: everything is made or updated.
    assert.equal(report.meters.created, meters.length);
    assert.equal(report.products.created + report.products.updated + report.products.kept, products.length);
    assert.equal(report.prices.created + report.prices.replaced, prices.length);
  });

  it('woolly billing sync runs it and prints what it did in one line', () => {
    const result = spawnSync(process.execPath, ['--import', 'tsx', 'bin/woolly.ts', 'billing', 'sync'], {
      cwd: path.resolve(import.meta.dirname, '../..'),
      env: {
        PATH: process.env.PATH ?? '',
        WOOLLY_BILLING_PROVIDER: 'stripe',
        WOOLLY_STRIPE_SECRET_KEY: STRIPE_MOCK_API_KEY,
        WOOLLY_STRIPE_WEBHOOK_SECRET: 'whsec_test',
        WOOLLY_STRIPE_API_URL: mock.url,
      },
      encoding: 'utf8',
    });
    assert.equal(result.status, 0, result.stderr);
    const { meters } = desiredCatalog();
    assert.match(
      result.stdout.trim(),
      new RegExp(`^products: .*; prices: .*; meters: ${meters.length} created, 0 kept$`),
    );
  });
});

/** A stateful stand-in for the parts of Stripe the sync uses, remembering what it is sent. */
function statefulStripeStandIn() {
  const products = new Map<string, { id: string; name: string; active: boolean }>();
  const prices: (Stripe.PriceCreateParams & { id: string; active: boolean })[] = [];
  const meters: { id: string; event_name: string }[] = [];
  const calls: string[] = [];
  const asPrice = (price: (typeof prices)[number]) => ({
    id: price.id,
    product: price.product,
    currency: price.currency,
    lookup_key: price.lookup_key,
    unit_amount: price.unit_amount ?? null,
    recurring: price.recurring ?? null,
    tiers: (price.tiers ?? []).map((tier) => ({
      up_to: tier.up_to === 'inf' ? null : tier.up_to,
      unit_amount: tier.unit_amount ?? null,
      unit_amount_decimal: tier.unit_amount_decimal ?? null,
    })),
  });
  const stand = {
    billing: {
      meters: {
        list: () => {
          calls.push('meters.list');
          return meters.slice();
        },
        create: async (params: { event_name: string }) => {
          calls.push('meters.create');
          const meter = { id: `mtr_${meters.length + 1}`, event_name: params.event_name };
          meters.push(meter);
          return meter;
        },
      },
    },
    products: {
      retrieve: async (id: string) => {
        const product = products.get(id);
        if (!product) throw Object.assign(new Error('No such product'), { statusCode: 404 });
        return product;
      },
      create: async (params: { id: string; name: string }) => {
        calls.push('products.create');
        products.set(params.id, { id: params.id, name: params.name, active: true });
      },
      update: async (id: string, params: { name: string }) => {
        calls.push('products.update');
        products.set(id, { id, name: params.name, active: true });
      },
    },
    prices: {
      list: async (params: { lookup_keys: string[] }) => ({
        data: prices
          .filter((price) => price.active && params.lookup_keys.includes(price.lookup_key ?? ''))
          .map(asPrice),
      }),
      create: async (params: Stripe.PriceCreateParams) => {
        calls.push('prices.create');
        for (const price of prices) if (price.lookup_key === params.lookup_key) price.lookup_key = undefined;
        prices.push({ ...params, id: `price_${prices.length + 1}`, active: true });
      },
      update: async (id: string, params: { active: boolean }) => {
        calls.push('prices.update');
        const price = prices.find((candidate) => candidate.id === id);
        if (price) price.active = params.active;
      },
    },
  };
  return { stripe: stand as unknown as Stripe, calls, prices };
}

describe('the catalog against a stateful stand-in', () => {
  it('a second run changes nothing; a changed amount makes one new Price and archives the old', async () => {
    const stand = statefulStripeStandIn();
    const first = await syncCatalog(stand.stripe);
    const { products, prices, meters } = desiredCatalog();
    assert.deepEqual(first, {
      products: { created: products.length, updated: 0, kept: 0 },
      prices: { created: prices.length, replaced: 0, kept: 0 },
      meters: { created: meters.length, kept: 0 },
    });
    // Included quotas are free graduated tiers on each plan's metered price.
    const community = PLAN_CATALOG.find((plan) => plan.code === 'community');
    const usersPrice = stand.prices.find((price) => price.lookup_key === 'usage:active_users:community');
    assert.deepEqual(
      usersPrice?.tiers?.map((tier) => [tier.up_to, tier.unit_amount ?? String(tier.unit_amount_decimal)]),
      [
        [community?.limits.activeUsers, 0],
        ['inf', '1'],
      ],
    );
    assert.equal(usersPrice?.recurring?.usage_type, 'metered');
    assert.match(String(usersPrice?.recurring?.meter), /^mtr_/);

    stand.calls.length = 0;
    const second = await syncCatalog(stand.stripe);
    assert.deepEqual(second, {
      products: { created: 0, updated: 0, kept: products.length },
      prices: { created: 0, replaced: 0, kept: prices.length },
      meters: { created: 0, kept: meters.length },
    });
    assert.deepEqual(stand.calls, ['meters.list'], 'only reads');

    const starter = PLAN_CATALOG.find((plan) => plan.code === 'starter') as { priceMinor: number };
    const was = starter.priceMinor;
    starter.priceMinor = was + 100;
    try {
      const third = await syncCatalog(stand.stripe);
      assert.deepEqual(third.prices, { created: 0, replaced: 1, kept: prices.length - 1 });
      const starterPrices = stand.prices.filter((price) => price.metadata?.woolly === 'plan:starter');
      assert.deepEqual(
        starterPrices.map((price) => [price.unit_amount, price.active, price.lookup_key ?? null]),
        [
          [was, false, null],
          [was + 100, true, 'plan:starter'],
        ],
      );
    } finally {
      starter.priceMinor = was;
    }
  });
});
