import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  STRIPE_MOCK_API_KEY,
  type StripeMock,
  startStripeMock,
  stripeMockSkipReason,
  stripeMockVersion,
} from './stripe-mock.ts';

// Without go and without a cached binary, skip locally (naming build.sh); under CI=true, fail.
const skip = stripeMockSkipReason();

type Params = Record<string, string | number | Record<string, string | number>>;

/** Stripe's form encoding, one level of nesting (`recurring[interval]=month`), as stripe-node sends it. */
function form(params: Params): string {
  const body = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (typeof value === 'object') {
      for (const [inner, innerValue] of Object.entries(value))
        body.append(`${key}[${inner}]`, String(innerValue));
    } else {
      body.append(key, String(value));
    }
  }
  return body.toString();
}

interface StripeError {
  error: { type: string; message: string };
}

describe('stripe-mock', { skip, timeout: 120_000 }, () => {
  let mock: StripeMock;
  before(async () => {
    // The first call in a process may build stripe-mock (about 1 minute cold).
    mock = await startStripeMock();
  });
  after(async () => {
    await mock?.release();
  });

  async function call(
    method: 'GET' | 'POST',
    path: string,
    params: Params = {},
    headers: Record<string, string> = { authorization: `Bearer ${STRIPE_MOCK_API_KEY}` },
  ): Promise<{ status: number; headers: Headers; body: Record<string, unknown> }> {
    const query = method === 'GET' && Object.keys(params).length > 0 ? `?${form(params)}` : '';
    const response = await fetch(`${mock.url}${path}${query}`, {
      method,
      headers: { ...headers, 'content-type': 'application/x-www-form-urlencoded' },
      body: method === 'POST' ? form(params) : undefined,
    });
    return { status: response.status, headers: response.headers, body: await response.json() };
  }

  test('answers on loopback as the version pinned in stripe/go.mod and wants a test-mode secret key', async () => {
    assert.match(mock.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    const anonymous = await call('GET', '/v1/customers', {}, {});
    assert.equal(anonymous.status, 401);
    assert.equal((anonymous.body as unknown as StripeError).error.type, 'invalid_request_error');
    const listed = await call('GET', '/v1/customers');
    assert.equal(listed.status, 200);
    assert.equal(listed.body.object, 'list');
    assert.equal(listed.headers.get('stripe-mock-version'), stripeMockVersion());
  });

  test('creating a customer echoes the posted fields, but a later retrieve does not remember them', async () => {
    const created = await call('POST', '/v1/customers', { email: 'ann@example.com', name: 'Ann' });
    assert.equal(created.status, 200, JSON.stringify(created.body));
    assert.equal(created.body.object, 'customer');
    assert.match(String(created.body.id), /^cus_/);
    assert.equal(created.body.email, 'ann@example.com');
    assert.equal(created.body.livemode, false);

    // Stateless: the id in the path is echoed, everything else comes from the fixture.
    const retrieved = await call('GET', `/v1/customers/${created.body.id}`);
    assert.equal(retrieved.status, 200);
    assert.equal(retrieved.body.id, created.body.id);
    assert.notEqual(retrieved.body.email, 'ann@example.com');
  });

  test('creates a product and a monthly price with a lookup key, and lists prices by lookup key', async () => {
    const product = await call('POST', '/v1/products', { name: 'Mastodon hosting' });
    assert.equal(product.status, 200, JSON.stringify(product.body));
    assert.equal(product.body.object, 'product');
    assert.equal(product.body.name, 'Mastodon hosting');

    const price = await call('POST', '/v1/prices', {
      currency: 'eur',
      product: String(product.body.id),
      unit_amount: 900,
      lookup_key: 'hosting_small_monthly',
      recurring: { interval: 'month' },
    });
    assert.equal(price.status, 200, JSON.stringify(price.body));
    assert.equal(price.body.object, 'price');
    assert.equal(price.body.lookup_key, 'hosting_small_monthly');
    assert.equal(price.body.product, product.body.id);
    assert.equal((price.body.recurring as { interval: string }).interval, 'month');

    const listed = await call('GET', '/v1/prices', { lookup_keys: { 0: 'hosting_small_monthly' } });
    assert.equal(listed.status, 200, JSON.stringify(listed.body));
    assert.equal(listed.body.object, 'list');
  });

  test('creates a billing meter, a meter event and a cancel adjustment on the v1 endpoints', async () => {
    const meter = await call('POST', '/v1/billing/meters', {
      display_name: 'Storage (GB-hours)',
      event_name: 'storage_gb_hours',
      default_aggregation: { formula: 'sum' },
      customer_mapping: { type: 'by_id', event_payload_key: 'stripe_customer_id' },
      value_settings: { event_payload_key: 'value' },
    });
    assert.equal(meter.status, 200, JSON.stringify(meter.body));
    assert.equal(meter.body.object, 'billing.meter');
    assert.equal(meter.body.event_name, 'storage_gb_hours');
    assert.deepEqual(meter.body.default_aggregation, { formula: 'sum' });

    const price = await call('POST', '/v1/prices', {
      currency: 'eur',
      product: 'prod_storage',
      unit_amount_decimal: '0.05',
      lookup_key: 'storage_gb_hours',
      recurring: { interval: 'month', usage_type: 'metered', meter: String(meter.body.id) },
    });
    assert.equal(price.status, 200, JSON.stringify(price.body));

    const event = await call('POST', '/v1/billing/meter_events', {
      event_name: 'storage_gb_hours',
      identifier: 'srv_1-2026-01-01T00',
      timestamp: Math.floor(Date.now() / 1000),
      payload: { stripe_customer_id: 'cus_1', value: '42' },
    });
    assert.equal(event.status, 200, JSON.stringify(event.body));
    assert.equal(event.body.object, 'billing.meter_event');
    assert.equal(event.body.identifier, 'srv_1-2026-01-01T00');

    const adjustment = await call('POST', '/v1/billing/meter_event_adjustments', {
      event_name: 'storage_gb_hours',
      type: 'cancel',
      cancel: { identifier: 'srv_1-2026-01-01T00' },
    });
    assert.equal(adjustment.status, 200, JSON.stringify(adjustment.body));
    assert.equal(adjustment.body.object, 'billing.meter_event_adjustment');
  });

  test('rejects a request missing a required parameter with a 400 in Stripe error shape', async () => {
    const missing = await call('POST', '/v1/billing/meter_events', { event_name: 'storage_gb_hours' });
    assert.equal(missing.status, 400);
    const { error } = missing.body as unknown as StripeError;
    assert.equal(error.type, 'invalid_request_error');
    assert.match(error.message, /'payload' is required/);
  });

  test('rejects unknown parameters, wrong types and values outside an enum', async () => {
    const cases: Array<[string, Params, RegExp]> = [
      ['/v1/customers', { emial: 'typo@example.com' }, /additional properties are not allowed/],
      [
        '/v1/prices',
        { currency: 'eur', product: 'prod_1', unit_amount: 'nine' },
        /'unit_amount'.*not numeric/,
      ],
      [
        '/v1/billing/meters',
        { display_name: 'x', event_name: 'x', default_aggregation: { formula: 'median' } },
        /'formula'.*not in enumeration/,
      ],
    ];
    for (const [path, params, message] of cases) {
      const rejected = await call('POST', path, params);
      assert.equal(rejected.status, 400, `${path} ${JSON.stringify(params)}`);
      assert.match((rejected.body as unknown as StripeError).error.message, message);
    }
  });

  test('answers 404 for routes outside its v1 spec, including the v2 meter event stream', async () => {
    for (const path of ['/v1/usage_records', '/v2/billing/meter_event_session']) {
      const missing = await call('POST', path);
      assert.equal(missing.status, 404, path);
      assert.match((missing.body as unknown as StripeError).error.message, /Unrecognized request URL/);
    }
  });

  test('a second stripe-mock runs beside the first on its own port', async () => {
    const second = await startStripeMock();
    try {
      assert.notEqual(second.port, mock.port);
      const response = await fetch(`${second.url}/v1/customers`, {
        headers: { authorization: `Bearer ${STRIPE_MOCK_API_KEY}` },
      });
      assert.equal(response.status, 200);
    } finally {
      await second.release();
    }
    const stopped = await fetch(`${second.url}/v1/customers`).catch((error: unknown) => error);
    assert.ok(stopped instanceof Error, 'the released stripe-mock no longer answers');
  });
});
