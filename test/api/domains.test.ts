/**
 * Custom domains over HTTP, verified against a real DNS server on a loopback UDP port
 * (test/support/dns-server.ts) that the app's resolver is pointed at.
 */
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { after, before, describe, test } from 'node:test';
import { call, startTestApp, type TestApp } from '../support/app.ts';
import { makeTestDatabase, type TestDatabase } from '../support/db.ts';
import { type DnsTestServer, startDnsServer } from '../support/dns-server.ts';
import { createOrganization, createUserWithToken } from '../support/factories.ts';

let database: TestDatabase;
let dns: DnsTestServer;
let app: TestApp;

before(async () => {
  database = await makeTestDatabase();
  dns = await startDnsServer();
  app = await startTestApp(database, { WOOLLY_DNS_SERVERS: dns.address });
});

after(async () => {
  await app.release();
  await dns.release();
  await database.release();
});

/** A customer owning a new organization. */
async function customer() {
  const user = await createUserWithToken(database.db);
  const org = await createOrganization(database.db, user.userId, 'owner');
  return { token: user.token, org };
}

const claim = (who: { token: string; org: string }, hostname: string, url = app.url) =>
  call(`${url}/v1/organizations/${who.org}/domains`, { token: who.token, body: { hostname } });
const verify = (who: { token: string; org: string }, domainId: string, url = app.url) =>
  call(`${url}/v1/organizations/${who.org}/domains/${domainId}/verify`, { method: 'POST', token: who.token });
const order = (who: { token: string; org: string }, domain: string) =>
  call(`${app.url}/v1/orders`, {
    token: who.token,
    body: { organizationId: who.org, plan: 'starter', domain },
  });
/** Publishes a claim's TXT record on the test DNS server, as its owner would at their provider. */
const publish = (claimed: { dnsRecord: { name: string; value: string } }) =>
  dns.txt.set(claimed.dnsRecord.name, [claimed.dnsRecord.value]);

async function auditActions(organizationId: string): Promise<string[]> {
  const rows = await database.db.auditLog.findMany({
    where: { organizationId, action: { startsWith: 'domain.' } },
    orderBy: { id: 'asc' },
  });
  return rows.map((row) => row.action);
}

describe('a custom domain, from claim to servers', () => {
  test('claim, fail to verify, publish, verify, order at it and under it, and keep it while used', async () => {
    const owner = await customer();
    const claimed = await claim(owner, 'Chess.Example.');
    assert.equal(claimed.status, 201);
    assert.equal(claimed.body.hostname, 'chess.example');
    assert.equal(claimed.body.verifiedAt, null);
    assert.equal(
      claimed.headers.get('location'),
      `/v1/organizations/${owner.org}/domains/${claimed.body.id}`,
    );
    assert.equal(claimed.body.dnsRecord.type, 'TXT');
    assert.equal(claimed.body.dnsRecord.name, '_woolly-challenge.chess.example');
    assert.match(claimed.body.dnsRecord.value, /^woolly-verification=[A-Za-z0-9_-]{32}$/);

    const early = await verify(owner, claimed.body.id);
    assert.equal(early.status, 422);
    assert.equal(early.body.code, 'unprocessable');
    assert.match(early.body.detail, /_woolly-challenge\.chess\.example does not exist in DNS \(NXDOMAIN\)/);
    assert.ok(early.body.detail.includes(`"${claimed.body.dnsRecord.value}"`), early.body.detail);
    const afterEarly = await database.db.customDomain.findUniqueOrThrow({ where: { id: claimed.body.id } });
    assert.equal(afterEarly.verifiedAt, null);
    assert.ok(afterEarly.lastCheckedAt);
    assert.equal(afterEarly.lastCheckError, early.body.detail);

    const refused = await order(owner, 'chess.example');
    assert.equal(refused.status, 422);
    assert.deepEqual(
      refused.body.errors.map((error: { field: string }) => error.field),
      ['domain'],
    );
    assert.match(refused.body.detail, /Claim chess\.example .* then verify it/);

    dns.txt.set(claimed.body.dnsRecord.name, ['woolly-verification=someone-elses-token']);
    const wrong = await verify(owner, claimed.body.id);
    assert.equal(wrong.status, 422);
    assert.match(wrong.body.detail, /hold "woolly-verification=someone-elses-token", not the expected value/);

    publish(claimed.body);
    const verified = await verify(owner, claimed.body.id);
    assert.equal(verified.status, 200);
    assert.ok(verified.body.verifiedAt);
    assert.equal(verified.body.lastCheckError, null);
    assert.deepEqual(dns.queries.at(-1), { name: '_woolly-challenge.chess.example', type: 16 });

    const listed = await call(`${app.url}/v1/organizations/${owner.org}/domains`, { token: owner.token });
    assert.deepEqual(
      listed.body.data.map((d: { hostname: string; verifiedAt: string | null }) => [
        d.hostname,
        d.verifiedAt,
      ]),
      [['chess.example', verified.body.verifiedAt]],
    );

    const atIt = await order(owner, 'chess.example');
    assert.equal(atIt.status, 201, JSON.stringify(atIt.body));
    const underIt = await order(owner, 'Social.Chess.Example');
    assert.equal(underIt.status, 201, JSON.stringify(underIt.body));
    const instance = await database.db.instance.findUniqueOrThrow({ where: { id: underIt.body.instanceId } });
    assert.equal(instance.domain, 'social.chess.example');
    const unverified = await order(owner, 'chess.example.org');
    assert.equal(unverified.status, 422);
    assert.equal(unverified.body.errors[0].field, 'domain');

    const remove = () =>
      call(`${app.url}/v1/organizations/${owner.org}/domains/${claimed.body.id}`, {
        method: 'DELETE',
        token: owner.token,
      });
    const inUse = await remove();
    assert.equal(inUse.status, 409);
    assert.match(inUse.body.detail, /still uses chess\.example; delete that server first/);
    assert.equal(await database.db.customDomain.count({ where: { id: claimed.body.id } }), 1);

    await database.db.instance.updateMany({
      where: { organizationId: owner.org },
      data: { status: 'deleted' },
    });
    const removed = await remove();
    assert.equal(removed.status, 204);
    assert.equal(await database.db.customDomain.count({ where: { id: claimed.body.id } }), 0);
    assert.deepEqual(await auditActions(owner.org), [
      'domain.claim',
      'domain.verify',
      'domain.verify',
      'domain.verify',
      'domain.remove',
    ]);
  });

  test('a name with no TXT record is refused, saying so', async () => {
    const owner = await customer();
    const claimed = await claim(owner, 'nodata.example');
    dns.txt.set(claimed.body.dnsRecord.name, []);
    const response = await verify(owner, claimed.body.id);
    assert.equal(response.status, 422);
    assert.match(response.body.detail, /exists but has no TXT record/);
  });

  test("another organization's verified hostname cannot be ordered, nor a name under it", async () => {
    const holder = await customer();
    const claimed = await claim(holder, 'club.example');
    publish(claimed.body);
    assert.equal((await verify(holder, claimed.body.id)).status, 200);
    const other = await customer();
    for (const domain of ['club.example', 'www.club.example']) {
      const response = await order(other, domain);
      assert.equal(response.status, 422, domain);
      assert.equal(response.body.errors[0].field, 'domain');
    }
  });
});

describe('one verified claim per hostname', () => {
  test('two organizations claim a hostname; once the first verifies, the second gets 409 and nothing is written', async () => {
    const first = await customer();
    const second = await customer();
    const firstClaim = await claim(first, 'contested.example');
    const secondClaim = await claim(second, 'contested.example');
    assert.equal(firstClaim.status, 201);
    assert.equal(secondClaim.status, 201);
    publish(firstClaim.body);
    assert.equal((await verify(first, firstClaim.body.id)).status, 200);

    publish(secondClaim.body);
    const beforeAudit = await database.db.auditLog.count();
    const lost = await verify(second, secondClaim.body.id);
    assert.equal(lost.status, 409);
    assert.equal(lost.body.code, 'domain_unavailable');
    assert.equal(lost.body.detail, 'contested.example is already verified by another organization.');
    assert.ok(!JSON.stringify(lost.body).includes(first.org));
    const row = await database.db.customDomain.findUniqueOrThrow({ where: { id: secondClaim.body.id } });
    assert.deepEqual([row.verifiedAt, row.lastCheckedAt, row.lastCheckError], [null, null, null]);
    assert.equal(await database.db.auditLog.count(), beforeAudit);

    const third = await customer();
    const late = await claim(third, 'contested.example');
    assert.equal(late.status, 409);
    assert.equal(late.body.detail, 'contested.example is already verified by another organization.');
  });

  test('the partial unique index refuses a second verified row, whatever the code checks', async () => {
    const [a, b] = [await customer(), await customer()];
    const now = new Date();
    await database.db.customDomain.create({
      data: { organizationId: a.org, hostname: 'raced.example', verificationToken: 'a', verifiedAt: now },
    });
    await database.db.customDomain.create({
      data: { organizationId: b.org, hostname: 'raced.example', verificationToken: 'b' },
    });
    await assert.rejects(
      database.db.customDomain.updateMany({
        where: { organizationId: b.org, hostname: 'raced.example' },
        data: { verifiedAt: now },
      }),
      (error: { code?: string }) => error.code === 'P2002',
    );
  });

  test('the same organization claiming a hostname twice → 409', async () => {
    const owner = await customer();
    assert.equal((await claim(owner, 'twice.example')).status, 201);
    const again = await claim(owner, 'TWICE.example.');
    assert.equal(again.status, 409);
    assert.equal(again.body.code, 'conflict');
    assert.equal(await database.db.customDomain.count({ where: { hostname: 'twice.example' } }), 1);
  });
});

describe('hostnames that cannot be claimed are refused and write nothing', () => {
  const cases: [string, string][] = [
    ['an IPv4 address', '192.0.2.10'],
    ['an IPv6 address', '2001:db8::1'],
    ['a single label', 'chess'],
    ['a name under the base domain', 'chess.woolly.test'],
    ['a Unicode lookalike (Cyrillic а)', 'chess.exаmple'],
    ['a punycode label mixing scripts', 'xn--pypal-4ve.example'],
    ['a special-use name', 'chess.localhost'],
  ];
  let owner: { token: string; org: string };
  before(async () => {
    owner = await customer();
  });
  for (const [why, hostname] of cases) {
    test(`${why} → 400 naming the hostname field`, async () => {
      const [domains, audits] = [await database.db.customDomain.count(), await database.db.auditLog.count()];
      const response = await claim(owner, hostname);
      assert.equal(response.status, 400);
      assert.equal(response.body.code, 'validation_failed');
      assert.deepEqual(
        response.body.errors.map((error: { field: string }) => error.field),
        ['hostname'],
      );
      assert.equal(await database.db.customDomain.count(), domains);
      assert.equal(await database.db.auditLog.count(), audits);
    });
  }
});

describe('domains of other organizations', () => {
  test('answer 404 through the caller’s own organization, and their organization is 404 too', async () => {
    const holder = await customer();
    const claimed = await claim(holder, 'private.example');
    const outsider = await customer();
    const viaOwn = await verify(outsider, claimed.body.id);
    assert.equal(viaOwn.status, 404);
    const viaTheirs = await verify({ token: outsider.token, org: holder.org }, claimed.body.id);
    assert.equal(viaTheirs.status, 404);
    const list = await call(`${app.url}/v1/organizations/${holder.org}/domains`, { token: outsider.token });
    assert.equal(list.status, 404);
  });
});

describe('a DNS server that never answers', () => {
  let silent: dgram.Socket;
  let silentApp: TestApp;
  before(async () => {
    // A bound UDP socket that reads queries and answers none.
    silent = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => silent.bind(0, '127.0.0.1', resolve));
    silentApp = await startTestApp(database, { WOOLLY_DNS_SERVERS: `127.0.0.1:${silent.address().port}` });
  });
  after(async () => {
    await silentApp.release();
    silent.close();
  });

  test('verify → 422 within the 2 s timeout, and the failed check is recorded', async () => {
    const owner = await customer();
    const claimed = await claim(owner, 'silent.example', silentApp.url);
    const started = Date.now();
    const response = await verify(owner, claimed.body.id, silentApp.url);
    const elapsed = Date.now() - started;
    assert.equal(response.status, 422);
    assert.match(response.body.detail, /got no answer within 2 s/);
    assert.ok(elapsed < 3000, `took ${elapsed} ms`);
    const row = await database.db.customDomain.findUniqueOrThrow({ where: { id: claimed.body.id } });
    assert.equal(row.lastCheckError, response.body.detail);
    assert.equal(row.verifiedAt, null);
  });
});
