/**
 * GET /v1/domains/check: whether an organization could order a server at a domain, decided by
 * the same code as POST /v1/orders, so that the two agree on every name.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { call, startTestApp, type TestApp } from '../support/app.ts';
import { makeTestDatabase, type TestDatabase } from '../support/db.ts';
import { createOrganization, createUserWithToken } from '../support/factories.ts';

let database: TestDatabase;
let app: TestApp;
let owner: { userId: string; token: string };
let outsider: { userId: string; token: string };
let org: string;
let foreignOrg: string;

const unique = (name: string) => `${name}-${randomUUID().slice(0, 8)}`;

/** A server of `organizationId` at `domain`, in `status`. */
async function server(organizationId: string, domain: string, status: 'running' | 'deleted') {
  const plan = await database.db.plan.findUniqueOrThrow({ where: { code: 'starter' } });
  await database.db.instance.create({
    data: { organizationId, planId: plan.id, domain, mastodonVersion: 'v4.5.11', status, spec: {} },
  });
}

async function claim(organizationId: string, hostname: string, verified: boolean) {
  await database.db.customDomain.create({
    data: { organizationId, hostname, verificationToken: 't', verifiedAt: verified ? new Date() : null },
  });
}

function check(domain: string, options: { token?: string; organizationId?: string } = {}) {
  const query = new URLSearchParams({ organizationId: options.organizationId ?? org, domain });
  return call(`${app.url}/v1/domains/check?${query}`, { token: options.token ?? owner.token });
}

function order(domain: string) {
  return call(`${app.url}/v1/orders`, {
    token: owner.token,
    body: { organizationId: org, plan: 'starter', domain },
  });
}

/** The names the cases check, made in `before`. */
const names = {
  taken: '',
  deleted: '',
  ownCustom: '',
  foreignCustom: '',
  unverifiedCustom: '',
};

before(async () => {
  database = await makeTestDatabase();
  app = await startTestApp(database);
  owner = await createUserWithToken(database.db);
  org = await createOrganization(database.db, owner.userId, 'owner');
  outsider = await createUserWithToken(database.db);
  foreignOrg = await createOrganization(database.db, outsider.userId, 'owner');

  names.taken = `${unique('taken')}.woolly.test`;
  await server(foreignOrg, names.taken, 'running');
  names.deleted = `${unique('gone')}.woolly.test`;
  await server(org, names.deleted, 'deleted');
  const ours = `${unique('ours')}.example`;
  await claim(org, ours, true);
  names.ownCustom = `social.${ours}`;
  const theirs = `${unique('theirs')}.example`;
  await claim(foreignOrg, theirs, true);
  names.foreignCustom = `social.${theirs}`;
  const pending = `${unique('pending')}.example`;
  await claim(org, pending, false);
  names.unverifiedCustom = pending;
});

after(async () => {
  await app.release();
  await database.release();
});

describe('GET /v1/domains/check', () => {
  test('a free name under the base domain is available, and is answered normalised', async () => {
    const name = unique('free');
    const response = await check(` ${name.toUpperCase()}.Woolly.Test. `);
    assert.equal(response.status, 200, JSON.stringify(response.body));
    assert.deepEqual(response.body, { domain: `${name}.woolly.test`, available: true, reason: null });
  });

  test("a name another organization's server holds is not available", async () => {
    const response = await check(names.taken);
    assert.deepEqual(response.body, {
      domain: names.taken,
      available: false,
      reason: `The domain ${names.taken} is taken or was used before; Mastodon domains are never reused.`,
    });
  });

  test("a deleted server's domain is never available again", async () => {
    const response = await check(names.deleted);
    assert.equal(response.body.available, false);
    assert.match(response.body.reason, /never reused/);
  });

  test("a cancelled order's domain is available again (no server ever ran there)", async () => {
    const name = `${unique('cancelled')}.woolly.test`;
    const placed = await order(name);
    assert.equal(placed.status, 201, JSON.stringify(placed.body));
    assert.equal((await check(name)).body.available, false);
    const cancelled = await call(`${app.url}/v1/orders/${placed.body.id}/cancel`, {
      token: owner.token,
      method: 'POST',
    });
    assert.equal(cancelled.status, 200, JSON.stringify(cancelled.body));
    assert.equal((await check(name)).body.available, true);
  });

  test('a name under a custom domain the organization verified is available', async () => {
    const response = await check(names.ownCustom);
    assert.deepEqual(response.body, { domain: names.ownCustom, available: true, reason: null });
  });

  test('a custom domain verified by another organization, or only claimed, is not available', async () => {
    for (const name of [names.foreignCustom, names.unverifiedCustom]) {
      const response = await check(name);
      assert.equal(response.body.available, false, name);
      assert.match(
        response.body.reason,
        /is neither under woolly\.test nor at or under a domain this organization has verified/,
      );
    }
  });

  test('malformed and reserved names are not available, with what is wrong with them', async () => {
    const malformed = await check('bad_name!.woolly.test');
    assert.deepEqual(malformed.body, {
      domain: 'bad_name!.woolly.test',
      available: false,
      reason:
        'The domain must be a host name: letters, digits and hyphens, labels of 1 to 63 characters, not starting or ending with a hyphen.',
    });
    const reserved = await check('www.woolly.test');
    assert.equal(reserved.body.reason, 'The name "www" is reserved; choose another.');
    const deep = await check('a.b.woolly.test');
    assert.match(deep.body.reason, /directly under woolly\.test/);
  });

  test('billing members and staff may check; viewers and outsiders are told the organization is not there', async () => {
    const billing = await createUserWithToken(database.db);
    const viewer = await createUserWithToken(database.db);
    await database.db.membership.createMany({
      data: [
        { organizationId: org, userId: billing.userId, role: 'billing' },
        { organizationId: org, userId: viewer.userId, role: 'viewer' },
      ],
    });
    const staff = await createUserWithToken(database.db, { staffRole: 'ops' });
    const name = `${unique('who')}.woolly.test`;
    assert.equal((await check(name, { token: billing.token })).status, 200);
    assert.equal((await check(name, { token: staff.token })).status, 200);
    for (const token of [viewer.token, outsider.token]) {
      const refused = await check(name, { token });
      assert.equal(refused.status, 404);
      assert.equal(refused.body.code, 'not_found');
    }
    const nowhere = await check(name, { token: staff.token, organizationId: randomUUID() });
    assert.equal(nowhere.status, 404);
  });

  test('a missing or invalid query is refused with 400 problem+json', async () => {
    for (const query of [
      `organizationId=${org}`,
      'domain=x.woolly.test',
      'organizationId=not-a-uuid&domain=x.woolly.test',
      `organizationId=${org}&domain=`,
      `organizationId=${org}&domain=${'a'.repeat(254)}`,
    ]) {
      const response = await call(`${app.url}/v1/domains/check?${query}`, { token: owner.token });
      assert.equal(response.status, 400, query);
      assert.equal(response.body.code, 'validation_failed', query);
      assert.match(response.headers.get('content-type') ?? '', /^application\/problem\+json/);
    }
  });

  test('a token without instances:read may not check', async () => {
    const writer = await createUserWithToken(database.db, { scopes: ['billing:read'] });
    await database.db.membership.create({
      data: { organizationId: org, userId: writer.userId, role: 'owner' },
    });
    assert.equal((await check(`${unique('scope')}.woolly.test`, { token: writer.token })).status, 403);
  });
});

test('the check and POST /v1/orders agree on every name: refused exactly when unavailable, for the same reason', async () => {
  const cases = [
    `${unique('agree')}.woolly.test`,
    names.taken,
    names.deleted,
    names.ownCustom,
    names.foreignCustom,
    names.unverifiedCustom,
    'bad_name!.woolly.test',
    'www.woolly.test',
    'a.b.woolly.test',
    '192.0.2.10',
    'chess.onion',
  ];
  for (const name of cases) {
    const verdict = await check(name);
    assert.equal(verdict.status, 200, `${name}: ${JSON.stringify(verdict.body)}`);
    const orders = await database.db.order.count();
    const placed = await order(name);
    if (verdict.body.available) {
      assert.equal(placed.status, 201, `${name}: ${JSON.stringify(placed.body)}`);
      assert.equal(placed.body.domain, verdict.body.domain, name);
      // Ordered now: the next check finds it taken, for the reason a second order is refused with.
      const again = await check(name);
      assert.equal(again.body.available, false, name);
      const twice = await order(name);
      assert.equal(twice.status, 409, name);
      assert.equal(twice.body.detail, again.body.reason, name);
    } else {
      assert.ok([400, 409, 422].includes(placed.status), `${name}: ${placed.status}`);
      assert.equal(placed.body.detail, verdict.body.reason, name);
      assert.equal(await database.db.order.count(), orders, `${name}: a refused order writes nothing`);
    }
  }
});
