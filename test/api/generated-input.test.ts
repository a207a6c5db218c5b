/**
 * Generated input (fast-check): thousands of requests built from the API's operations with
 * hostile values in every place — wrong types, unknown fields, SQL, HTML, confusable Unicode,
 * oversized strings, bad content types, missing and foreign credentials. Asserts: never a 5xx,
 * every error is a documented problem+json (checked by `call`), and a refused request
 * changes no row.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import fc from 'fast-check';
import { call, startTestApp, type TestApp } from '../support/app.ts';
import { makeTestDatabase, type TestDatabase } from '../support/db.ts';
import { createOrganization, createUserWithToken } from '../support/factories.ts';

const RUNS = 2000;

let database: TestDatabase;
let app: TestApp;
const tokens: Record<string, string> = {};
let ownOrg: string;
let foreignOrg: string;
let ownOrderId: string;

before(async () => {
  database = await makeTestDatabase();
  app = await startTestApp(database);
  const customer = await createUserWithToken(database.db);
  const reader = await createUserWithToken(database.db, { scopes: ['instances:read'] });
  const staff = await createUserWithToken(database.db, { staffRole: 'admin' });
  const stranger = await createUserWithToken(database.db);
  Object.assign(tokens, { customer: customer.token, reader: reader.token, staff: staff.token });
  ownOrg = await createOrganization(database.db, customer.userId);
  foreignOrg = await createOrganization(database.db, stranger.userId);
  const placed = await call(`${app.url}/v1/orders`, {
    token: customer.token,
    body: { organizationId: ownOrg, plan: 'starter', domain: 'fuzz-base.woolly.test' },
  });
  ownOrderId = placed.body.id;
});

after(async () => {
  await app.release();
  await database.release();
});

/** Every table a request could write, counted in one round trip. */
async function rowCounts(): Promise<string> {
  const [row] = await database.db.$queryRaw<Record<string, bigint>[]>`
    select (select count(*) from "Organization") as organizations, (select count(*) from "Membership") as memberships,
           (select count(*) from "Order") as orders, (select count(*) from "Instance") as instances,
           (select count(*) from "InstanceAddon") as addons, (select count(*) from "Subscription") as subscriptions,
           (select count(*) from "UsageEvent") as usage, (select count(*) from "ApiToken") as tokens,
           (select count(*) from "ApiToken" where "revokedAt" is not null) as revoked,
           (select count(*) from "AuditLog") as audit, (select count(*) from graphile_worker._private_jobs) as jobs,
           (select count(*) from "Order" where status = 'paid') as paid`;
  return JSON.stringify(row, (_key, value) => (typeof value === 'bigint' ? Number(value) : value));
}

const hostileString = fc.oneof(
  fc.string(),
  fc.string({ unit: 'grapheme', maxLength: 40 }),
  fc.constantFrom(
    '\'; drop table "Order"; --',
    '" OR 1=1 --',
    '<script>alert(1)</script>',
    '<img src=x onerror=alert(1)>',
    'ｃｈｅｓｓ.woolly.test',
    'chess\u200b.woolly.test',
    'раураl.woolly.test',
    '\u212Aing.woolly.test',
    'chess.woolly.test\u0000',
    '../../etc/passwd',
    '%00',
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a log4shell-style payload, on purpose.
    '${jndi:ldap://x}',
    ' ',
    '',
    'x'.repeat(10_000),
    'starter',
    'chess.woolly.test',
    'instances:write',
    'admin',
  ),
);

const anyJson: fc.Arbitrary<unknown> = fc.oneof(
  hostileString,
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.array(hostileString, { maxLength: 4 }),
  fc.dictionary(hostileString, hostileString, { maxKeys: 3 }),
);

const uuidish = fc.oneof(fc.uuid(), hostileString, fc.constantFrom('00000000-0000-0000-0000-000000000000'));

/** A body that is mostly the right shape, with any field replaced, dropped or added. */
function mutatedBody(valid: () => Record<string, unknown>): fc.Arbitrary<unknown> {
  return fc.oneof(
    anyJson,
    fc
      .tuple(fc.constantFrom(...Object.keys(valid())), anyJson, fc.boolean(), fc.option(hostileString))
      .map(([field, value, drop, extra]) => {
        const body: Record<string, unknown> = { ...valid() };
        if (drop) delete body[field];
        else body[field] = value;
        if (extra !== null) body[extra] = 'extra';
        return body;
      }),
  );
}

interface GeneratedRequest {
  method: 'GET' | 'POST' | 'DELETE';
  path: string;
  body?: unknown;
  rawBody?: string;
  contentType?: string | null;
  auth: 'none' | 'bad' | 'customer' | 'reader' | 'staff';
  idempotencyKey?: string;
}

const auth = fc.constantFrom<GeneratedRequest['auth']>('none', 'bad', 'customer', 'reader', 'staff');
const contentType = fc.option(
  fc.constantFrom(
    'application/json',
    'text/plain',
    'application/x-www-form-urlencoded',
    'application/json; charset=latin1',
    'application/xml',
  ),
);

const request: fc.Arbitrary<GeneratedRequest> = fc.oneof(
  fc.record({
    method: fc.constant('POST' as const),
    path: fc.constant('/v1/orders'),
    body: mutatedBody(() => ({
      organizationId: fc.sample(fc.constantFrom(ownOrg, foreignOrg), 1)[0],
      plan: 'starter',
      domain: 'x.woolly.test',
      addons: [],
    })),
    contentType,
    auth,
    idempotencyKey: fc.option(hostileString, { nil: undefined }),
  }),
  fc.record({
    method: fc.constant('POST' as const),
    path: fc.constant('/v1/organizations'),
    body: mutatedBody(() => ({ name: 'Fuzz', slug: 'fuzz' })),
    contentType,
    auth,
  }),
  fc.record({
    method: fc.constant('POST' as const),
    path: fc.constant('/v1/tokens'),
    body: mutatedBody(() => ({ name: 'fuzz', scopes: ['instances:read'] })),
    contentType,
    auth,
  }),
  fc.record({
    method: fc.constant('POST' as const),
    path: fc
      .oneof(uuidish, fc.constant('own'))
      .map((id) => `/v1/orders/${encodeURIComponent(id === 'own' ? ownOrderId : id)}/approve-payment`),
    rawBody: fc.option(fc.oneof(fc.string(), fc.constant('{}'), fc.constant('{"a":')), { nil: undefined }),
    contentType,
    auth,
  }),
  fc.record({
    method: fc.constantFrom('GET' as const, 'DELETE' as const),
    path: fc.oneof(
      uuidish.map((id) => `/v1/instances/${encodeURIComponent(id)}`),
      uuidish.map((id) => `/v1/orders/${encodeURIComponent(id)}`),
      uuidish.map((id) => `/v1/tokens/${encodeURIComponent(id)}`),
      fc
        .tuple(hostileString, hostileString)
        .map(
          ([status, limit]) =>
            `/v1/instances?status=${encodeURIComponent(status)}&limit=${encodeURIComponent(limit)}`,
        ),
    ),
    auth,
  }),
  fc.record({
    method: fc.constant('POST' as const),
    path: fc.constantFrom('/v1/orders', '/v1/organizations', '/v1/tokens'),
    rawBody: fc.oneof(
      fc.string(),
      fc.constantFrom('{', '[1,2', '{"a":1}}', 'null', '"text"', `{"name":"${'y'.repeat(200_000)}"}`),
    ),
    contentType: fc.constant('application/json'),
    auth,
  }),
);

test(`${RUNS} generated requests: no 5xx, documented problem+json errors, refused requests write nothing`, async () => {
  const statuses = new Map<number, number>();
  await fc.assert(
    fc.asyncProperty(request, async (generated) => {
      const before = await rowCounts();
      const headers: Record<string, string> = {};
      if (generated.contentType) headers['content-type'] = generated.contentType;
      if (generated.idempotencyKey !== undefined) headers['idempotency-key'] = generated.idempotencyKey;
      const token =
        generated.auth === 'none'
          ? undefined
          : generated.auth === 'bad'
            ? 'wly_forged'
            : tokens[generated.auth];
      let response: Awaited<ReturnType<typeof call>>;
      try {
        response = await call(`${app.url}${generated.path}`, {
          method: generated.method,
          token,
          headers,
          ...(generated.rawBody !== undefined ? { rawBody: generated.rawBody } : {}),
          ...(generated.body !== undefined ? { body: generated.body } : {}),
        });
      } catch (error) {
        // fetch refuses some header values (e.g. non-Latin-1 Idempotency-Key) before sending.
        if (
          error instanceof TypeError &&
          /ByteString|header/i.test(String(error.message) + String(error.cause))
        )
          return;
        throw error;
      }
      statuses.set(response.status, (statuses.get(response.status) ?? 0) + 1);
      assert.ok(
        response.status < 500,
        `${generated.method} ${generated.path} → ${response.status} ${JSON.stringify(response.body)}`,
      );
      if (response.status >= 400) {
        assert.match(response.headers.get('content-type') ?? '', /^application\/problem\+json/);
        assert.equal(
          await rowCounts(),
          before,
          `${generated.method} ${generated.path} → ${response.status} wrote rows`,
        );
      }
    }),
    { numRuns: RUNS },
  );
  // The generator must reach both sides: some requests refused, some accepted.
  const refused = [...statuses].filter(([status]) => status >= 400).reduce((sum, [, n]) => sum + n, 0);
  assert.ok(refused > RUNS / 2, `refused ${refused}`);
  assert.ok(statuses.has(400) && statuses.has(401) && statuses.has(404), JSON.stringify([...statuses]));
});
