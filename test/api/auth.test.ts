import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { PassThrough } from 'node:stream';
import { after, before, test } from 'node:test';
import { makeApp } from '../../api/app.ts';
import { deleteStaleLoginThrottles } from '../../api/auth/local.ts';
import { makeOutboxMailer, type OutboxMailer } from '../../api/auth/mailer.ts';
import { loadConfig } from '../../core/config.ts';
import { hashPassword, hashToken } from '../../core/crypto.ts';
import { makePool } from '../../core/db.ts';
import { makeLogger } from '../../core/log.ts';
import { call } from '../support/app.ts';
import { makeTestDatabase, type TestDatabase } from '../support/db.ts';
import { createOrganization, createUserWithToken } from '../support/factories.ts';

let database: TestDatabase;
let url: string;
let outbox: OutboxMailer;
let release: () => Promise<void>;

/** The app as startTestApp makes it, plus an in-memory outbox the tests read sign-up mail from. */
before(async () => {
  database = await makeTestDatabase();
  const config = loadConfig({ NODE_ENV: 'test' });
  const log = makeLogger(config, new PassThrough().resume());
  outbox = makeOutboxMailer({ from: 'Woolly <no-reply@woolly.test>', log });
  const pool = makePool(database.url);
  const server = makeApp({ db: database.db, pool, config, log, mailer: outbox }).listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  release = async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await pool.end();
  };
});
after(async () => {
  await release();
  await database.release();
});

const PASSWORD = 'correct horse battery staple';

/** A user who can sign in with PASSWORD; verified unless told otherwise. */
async function createPasswordUser(
  options: { staffRole?: 'ops' | 'admin'; verified?: boolean } = {},
): Promise<{ id: string; email: string }> {
  return database.db.user.create({
    data: {
      email: `person-${randomUUID()}@example.test`,
      name: 'Person',
      passwordHash: await hashPassword(PASSWORD),
      emailVerifiedAt: options.verified === false ? null : new Date(),
      staffRole: options.staffRole ?? null,
    },
    select: { id: true, email: true },
  });
}

/** The `woolly.sid=…` pair of a response's Set-Cookie, to send back as a Cookie header ('' if none). */
function sessionCookie(headers: Headers): string {
  const line = headers.getSetCookie().find((cookie) => cookie.startsWith('woolly.sid='));
  return line?.split(';')[0] ?? '';
}

async function signIn(email: string, password = PASSWORD, headers: Record<string, string> = {}) {
  const response = await call(`${url}/v1/session`, { body: { email, password }, headers });
  return { response, cookie: sessionCookie(response.headers), csrfToken: response.body?.csrfToken as string };
}

/** Rows a refused request must not have written. */
async function rowCounts(): Promise<Record<string, number>> {
  const [organizations, memberships, audit, idempotency] = await Promise.all([
    database.db.organization.count(),
    database.db.membership.count(),
    database.db.auditLog.count(),
    database.db.idempotencyRecord.count(),
  ]);
  return { organizations, memberships, audit, idempotency };
}

/** The token in the newest mail to `to`. */
function verificationToken(to: string): string {
  const mail = outbox.sent.findLast((sent) => sent.to === to);
  const token = mail?.text.match(/#verify-email=([A-Za-z0-9_-]+)/)?.[1];
  assert.ok(token, `no verification link mailed to ${to}`);
  return token;
}

const slug = () => `org-${randomUUID().slice(0, 8)}`;

test('a signed-in user lists instances and reads the session with the cookie alone', async () => {
  const user = await createPasswordUser();
  const { response, cookie, csrfToken } = await signIn(user.email.toUpperCase());
  assert.equal(response.status, 200);
  assert.deepEqual(response.body.user, {
    id: user.id,
    email: user.email,
    name: 'Person',
    staffRole: null,
    emailVerified: true,
  });
  assert.ok(cookie && csrfToken.length >= 32);

  const instances = await call(`${url}/v1/instances`, { headers: { cookie } });
  assert.equal(instances.status, 200);
  const session = await call(`${url}/v1/session`, { headers: { cookie } });
  assert.equal(session.status, 200);
  assert.equal(session.body.user.id, user.id);
  assert.equal(session.body.csrfToken, csrfToken);
  assert.equal((await call(`${url}/v1/session`)).status, 401, 'no cookie, no session');
  assert.equal(
    await database.db.auditLog.count({
      where: { action: 'session.create', targetId: user.id, actor: `session:${user.id}` },
    }),
    1,
  );
});

test('a cookie-authenticated change without the right X-CSRF-Token is refused (403) and writes nothing; with it, it succeeds', async () => {
  const user = await createPasswordUser();
  const { cookie, csrfToken } = await signIn(user.email);
  const body = { name: 'Chess Club', slug: slug() };
  const before = await rowCounts();
  const attempts: Record<string, string>[] = [
    { cookie },
    { cookie, 'x-csrf-token': 'not-the-token' },
    { cookie, 'x-csrf-token': '' },
  ];
  for (const headers of attempts) {
    const refused = await call(`${url}/v1/organizations`, { body, headers });
    assert.equal(refused.status, 403, JSON.stringify(headers));
    assert.equal(refused.body.code, 'forbidden');
    assert.match(refused.body.detail, /X-CSRF-Token/);
  }
  assert.deepEqual(await rowCounts(), before);

  const created = await call(`${url}/v1/organizations`, {
    body,
    headers: { cookie, 'x-csrf-token': csrfToken },
  });
  assert.equal(created.status, 201);
  const row = await database.db.auditLog.findFirstOrThrow({
    where: { action: 'organization.create', targetId: created.body.id },
  });
  assert.equal(row.actor, `session:${user.id}`);
  assert.equal(row.actorUserId, user.id);
});

test('requests with a bearer token need no CSRF token', async () => {
  const { token } = await createUserWithToken(database.db);
  const created = await call(`${url}/v1/organizations`, { token, body: { name: 'Bots', slug: slug() } });
  assert.equal(created.status, 201);
});

test('an unknown e-mail address and a wrong password get the identical 401', async () => {
  const user = await createPasswordUser();
  const wrong = await signIn(user.email, 'not the password at all');
  const unknown = await signIn(`nobody-${randomUUID()}@example.test`, 'not the password at all');
  for (const { response } of [wrong, unknown]) {
    assert.equal(response.status, 401);
    assert.equal(sessionCookie(response.headers), '', 'no session for a refusal');
  }
  const shape = (body: Record<string, unknown>) => ({
    keys: Object.keys(body).sort(),
    type: body.type,
    title: body.title,
    code: body.code,
    detail: body.detail,
  });
  assert.deepEqual(shape(wrong.response.body), shape(unknown.response.body));
  assert.equal(wrong.response.body.detail, 'The e-mail address or password is wrong.');
  const failures = await database.db.auditLog.findMany({
    where: {
      action: 'session.failed',
      requestId: { in: [wrong, unknown].map((r) => r.response.body.requestId) },
    },
  });
  assert.equal(failures.length, 2, 'both refusals are audited');
  assert.ok(failures.every((row) => row.actor === 'anonymous' && row.actorUserId === null));
});

/** The sign-in failure count of an address (keyed by its SHA-256). */
const throttleOf = (email: string) =>
  database.db.loginThrottle.findUnique({ where: { emailHash: hashToken(email.toLowerCase()) } });

/** Moves an address's lock into the past, as if its time had run out. */
const passLock = (email: string) =>
  database.db.loginThrottle.update({
    where: { emailHash: hashToken(email.toLowerCase()) },
    data: { lockedUntil: new Date(Date.now() - 1000) },
  });

test('five failures lock the account (429 with Retry-After, even for the right password); once the lock time has passed (moved back in the DB) the right password works and resets the counters', async () => {
  const user = await createPasswordUser();
  for (let attempt = 1; attempt <= 5; attempt++) {
    assert.equal((await signIn(user.email, `wrong-${attempt}`)).response.status, 401, `attempt ${attempt}`);
  }
  for (const password of ['wrong-6', PASSWORD]) {
    const { response, cookie } = await signIn(user.email, password);
    assert.equal(response.status, 429, password);
    assert.equal(response.body.code, 'too_many_requests');
    const retryAfter = Number(response.headers.get('retry-after'));
    assert.ok(retryAfter >= 1 && retryAfter <= 60, `Retry-After ${retryAfter}`);
    assert.equal(cookie, '');
  }
  const locked = await throttleOf(user.email);
  assert.equal(locked?.failedCount, 5, 'refusals during the lock are not counted');

  await passLock(user.email);
  const { response } = await signIn(user.email);
  assert.equal(response.status, 200);
  assert.equal(await throttleOf(user.email), null, 'a success forgets the failures');
  assert.equal(
    await database.db.auditLog.count({ where: { action: 'session.failed', targetId: user.id } }),
    7,
  );
});

test('an address with no account locks the same way, so a 429 does not tell that an account exists', async () => {
  const known = await createPasswordUser();
  const unknown = `nobody-${Date.now()}@example.test`;
  const answers = async (email: string) => {
    const statuses: number[] = [];
    for (let attempt = 1; attempt <= 6; attempt++)
      statuses.push((await signIn(email, 'wrong')).response.status);
    const last = await signIn(email, 'wrong');
    return {
      statuses,
      detail: last.response.body.detail,
      retryAfter: last.response.headers.get('retry-after'),
    };
  };
  const [forKnown, forUnknown] = [await answers(known.email), await answers(unknown)];
  assert.deepEqual(forKnown.statuses, [401, 401, 401, 401, 401, 429]);
  assert.deepEqual(forUnknown, forKnown);
  assert.equal((await throttleOf(unknown))?.failedCount, 5);
  assert.equal(await database.db.user.count({ where: { email: unknown } }), 0, 'no account is made for it');
});

test('each failure after a lock doubles the lock, up to an hour (lock time moved back in the DB to pass it)', async () => {
  const user = await createPasswordUser();
  const lockSeconds = async () =>
    Math.round((((await throttleOf(user.email))?.lockedUntil?.getTime() ?? 0) - Date.now()) / 1000);
  const passTheLock = () => passLock(user.email);
  for (let attempt = 1; attempt <= 5; attempt++) await signIn(user.email, 'wrong');
  assert.ok(Math.abs((await lockSeconds()) - 60) <= 2);
  await passTheLock();
  assert.equal((await signIn(user.email, 'wrong')).response.status, 401);
  assert.ok(Math.abs((await lockSeconds()) - 120) <= 2);
  const next = await signIn(user.email, PASSWORD);
  assert.ok(Math.abs(Number(next.response.headers.get('retry-after')) - 120) <= 2);

  await database.db.loginThrottle.update({
    where: { emailHash: hashToken(user.email) },
    data: { failedCount: 40, lockedUntil: new Date(Date.now() - 1000) },
  });
  await signIn(user.email, 'wrong');
  assert.ok(Math.abs((await lockSeconds()) - 3600) <= 2, 'capped at one hour');
});

test('the session lists the user’s memberships by organization name, so the dashboard can hide what a role may not do', async () => {
  const user = await createPasswordUser();
  const other = await createPasswordUser();
  const organization = (name: string) =>
    database.db.organization.create({ data: { name, slug: slug() }, select: { id: true } });
  const zebra = await organization('Zebra Club');
  const alpha = await organization('Alpha Society');
  const foreign = await organization('Aardvark Guild');
  await database.db.membership.createMany({
    data: [
      { organizationId: zebra.id, userId: user.id, role: 'viewer' },
      { organizationId: alpha.id, userId: user.id, role: 'billing' },
      { organizationId: foreign.id, userId: other.id, role: 'owner' },
    ],
  });
  const expected = [
    { organizationId: alpha.id, organizationName: 'Alpha Society', role: 'billing' },
    { organizationId: zebra.id, organizationName: 'Zebra Club', role: 'viewer' },
  ];
  const { response, cookie } = await signIn(user.email);
  assert.deepEqual(response.body.memberships, expected);
  const session = await call(`${url}/v1/session`, { headers: { cookie } });
  assert.deepEqual(session.body.memberships, expected);

  await database.db.membership.update({
    where: { organizationId_userId: { organizationId: zebra.id, userId: user.id } },
    data: { role: 'admin' },
  });
  const later = await call(`${url}/v1/session`, { headers: { cookie } });
  assert.equal(later.body.memberships[1].role, 'admin', 'read afresh, not kept in the session');

  const loner = await createPasswordUser();
  assert.deepEqual((await signIn(loner.email)).response.body.memberships, []);
});

test('signing in gives a new session id; the one the browser had before stops working', async () => {
  const user = await createPasswordUser();
  const first = await signIn(user.email);
  const second = await signIn(user.email, PASSWORD, { cookie: first.cookie });
  assert.ok(first.cookie && second.cookie);
  assert.notEqual(second.cookie, first.cookie);
  assert.notEqual(second.csrfToken, first.csrfToken);
  assert.equal((await call(`${url}/v1/session`, { headers: { cookie: first.cookie } })).status, 401);
  assert.equal((await call(`${url}/v1/session`, { headers: { cookie: second.cookie } })).status, 200);
});

test('signing out ends the session: the cookie no longer works and its row is gone', async () => {
  const user = await createPasswordUser();
  const { cookie, csrfToken } = await signIn(user.email);
  assert.ok(cookie);
  const sessionsOfUser = () =>
    database.db.$queryRaw<{ n: number }[]>`
      select count(*)::int as n from "session" where sess -> 'passport' ->> 'user' = ${user.id}`;
  assert.equal((await sessionsOfUser())[0]?.n, 1);

  const forged = await call(`${url}/v1/session`, { method: 'DELETE', headers: { cookie } });
  assert.equal(forged.status, 403, 'signing out with the cookie needs the CSRF token too');
  const out = await call(`${url}/v1/session`, {
    method: 'DELETE',
    headers: { cookie, 'x-csrf-token': csrfToken },
  });
  assert.equal(out.status, 204);
  assert.match(out.headers.getSetCookie().join('\n'), /woolly\.sid=;.*Expires=Thu, 01 Jan 1970/);
  assert.equal((await sessionsOfUser())[0]?.n, 0);
  assert.equal((await call(`${url}/v1/instances`, { headers: { cookie } })).status, 401);
  assert.equal(
    await database.db.auditLog.count({ where: { action: 'session.delete', targetId: user.id } }),
    1,
  );
  const again = await call(`${url}/v1/session`, { method: 'DELETE' });
  assert.equal(again.status, 204, 'signing out without a session is harmless');
});

test('sign-up mails a verification link; until it is followed the user can sign in but not order', async () => {
  const email = `new-${randomUUID()}@Example.test`;
  const signedUp = await call(`${url}/v1/signup`, { body: { email, password: PASSWORD, name: 'Ada' } });
  assert.equal(signedUp.status, 202);
  const normalised = email.toLowerCase();
  assert.equal(signedUp.body.email, normalised);
  const token = verificationToken(normalised);
  const stored = await database.db.emailVerification.findFirstOrThrow({
    where: { user: { email: normalised } },
  });
  assert.notEqual(stored.tokenHash, token, 'only the hash of the token is stored');

  const { response, cookie, csrfToken } = await signIn(normalised);
  assert.equal(response.status, 200);
  assert.equal(response.body.user.emailVerified, false);
  const headers = { cookie: cookie, 'x-csrf-token': csrfToken };
  const org = await call(`${url}/v1/organizations`, { headers, body: { name: 'Ada Club', slug: slug() } });
  assert.equal(org.status, 201);
  const order = { organizationId: org.body.id, plan: 'starter', domain: `ada-${slug()}.woolly.test` };
  const refused = await call(`${url}/v1/orders`, { headers, body: order });
  assert.equal(refused.status, 403);
  assert.match(refused.body.detail, /Confirm your e-mail address/);
  assert.equal(await database.db.order.count({ where: { organizationId: org.body.id } }), 0);

  const verified = await call(`${url}/v1/signup/verify`, { body: { token } });
  assert.equal(verified.status, 204);
  const session = await call(`${url}/v1/session`, { headers: { cookie: cookie } });
  assert.equal(session.body.user.emailVerified, true, 'the same session sees the verification');
  const placed = await call(`${url}/v1/orders`, { headers, body: order });
  assert.equal(placed.status, 201);
  const userId = response.body.user.id;
  for (const action of ['user.signup', 'user.verify_email']) {
    assert.equal(await database.db.auditLog.count({ where: { action, targetId: userId } }), 1, action);
  }
});

test('a verification link works once, and not after 24 hours', async () => {
  const email = `once-${randomUUID()}@example.test`;
  await call(`${url}/v1/signup`, { body: { email, password: PASSWORD, name: 'Once' } });
  const token = verificationToken(email);
  assert.equal((await call(`${url}/v1/signup/verify`, { body: { token } })).status, 204);
  const reused = await call(`${url}/v1/signup/verify`, { body: { token } });
  assert.equal(reused.status, 400);
  assert.deepEqual(reused.body.errors, [{ field: 'token', message: 'is unknown or used' }]);

  const late = `late-${randomUUID()}@example.test`;
  await call(`${url}/v1/signup`, { body: { email: late, password: PASSWORD, name: 'Late' } });
  await database.db.emailVerification.updateMany({
    where: { user: { email: late } },
    data: { expiresAt: new Date(Date.now() - 1000) },
  });
  const expired = await call(`${url}/v1/signup/verify`, { body: { token: verificationToken(late) } });
  assert.equal(expired.status, 400);
  assert.match(expired.body.detail, /expired/);
  const user = await database.db.user.findUniqueOrThrow({ where: { email: late } });
  assert.equal(user.emailVerifiedAt, null);
});

test('signing up with a taken address answers exactly as for a new one, changes nothing, and tells the owner by mail', async () => {
  const owner = await createPasswordUser();
  const fresh = `fresh-${randomUUID()}@example.test`;
  const users = await database.db.user.count();
  const taken = await call(`${url}/v1/signup`, {
    body: { email: owner.email, password: 'another password entirely', name: 'Mallory' },
  });
  const created = await call(`${url}/v1/signup`, { body: { email: fresh, password: PASSWORD, name: 'New' } });
  assert.equal(taken.status, 202);
  assert.equal(created.status, 202);
  assert.deepEqual(Object.keys(taken.body).sort(), Object.keys(created.body).sort());
  assert.equal(taken.body.detail, created.body.detail);
  assert.equal(await database.db.user.count(), users + 1, 'only the new address made an account');

  assert.equal((await signIn(owner.email, 'another password entirely')).response.status, 401);
  assert.equal((await signIn(owner.email)).response.status, 200, 'the owner keeps their password');
  const notice = outbox.sent.findLast((mail) => mail.to === owner.email);
  assert.match(notice?.text ?? '', /already has an account/);
  assert.doesNotMatch(notice?.text ?? '', /verify-email=/);
});

test('following the link of a later sign-up of an unverified address makes its password the one, and ends the earlier sign-up’s sessions and tokens', async () => {
  const email = `squat-${randomUUID()}@example.test`;
  await call(`${url}/v1/signup`, { body: { email, password: 'the squatter password', name: 'Squatter' } });
  const squatter = await signIn(email, 'the squatter password');
  assert.equal(squatter.response.status, 200);
  const token = await call(`${url}/v1/tokens`, {
    headers: { cookie: squatter.cookie, 'x-csrf-token': squatter.csrfToken },
    body: { name: 'kept access', scopes: ['instances:read'] },
  });
  assert.equal(token.status, 201);

  await call(`${url}/v1/signup`, { body: { email, password: PASSWORD, name: 'Owner' } });
  assert.equal(
    (await call(`${url}/v1/signup/verify`, { body: { token: verificationToken(email) } })).status,
    204,
  );

  assert.equal((await call(`${url}/v1/session`, { headers: { cookie: squatter.cookie } })).status, 401);
  assert.equal((await call(`${url}/v1/instances`, { token: token.body.token })).status, 401);
  assert.equal((await signIn(email, 'the squatter password')).response.status, 401);
  assert.equal((await signIn(email)).response.status, 200);
});

test('an operator-made account (API token, no password) that signs up and verifies keeps its tokens', async () => {
  const { userId, token } = await createUserWithToken(database.db);
  const { email } = await database.db.user.findUniqueOrThrow({ where: { id: userId } });
  assert.equal(
    (await call(`${url}/v1/signup`, { body: { email, password: PASSWORD, name: 'Op' } })).status,
    202,
  );
  assert.equal(
    (await call(`${url}/v1/signup/verify`, { body: { token: verificationToken(email) } })).status,
    204,
  );
  assert.equal((await call(`${url}/v1/instances`, { token })).status, 200);
  assert.equal((await signIn(email)).response.status, 200);
});

test('the session row in PostgreSQL holds the user id and CSRF token, never the password', async () => {
  const user = await createPasswordUser();
  const { cookie } = await signIn(user.email);
  const sid = decodeURIComponent(cookie?.split('=')[1] ?? '')
    .replace(/^s:/, '')
    .split('.')[0];
  const [row] = await database.db.$queryRaw<{ sess: Record<string, unknown> }[]>`
    select sess from "session" where sid = ${sid}`;
  assert.ok(row, 'the session is stored in PostgreSQL');
  assert.deepEqual(Object.keys(row.sess).sort(), ['cookie', 'csrfToken', 'passport']);
  assert.deepEqual(row.sess.passport, { user: user.id });
  const hash = (await database.db.user.findUniqueOrThrow({ where: { id: user.id } })).passwordHash ?? '';
  const stored = JSON.stringify(row.sess);
  assert.ok(!stored.includes(PASSWORD) && !stored.includes(hash) && !/scrypt/.test(stored), stored);
});

test('the session cookie is HttpOnly and SameSite=Lax, and Secure only when a loopback proxy says https', async () => {
  const user = await createPasswordUser();
  const plain = (await signIn(user.email)).response.headers.getSetCookie().join('\n');
  assert.match(plain, /^woolly\.sid=/);
  assert.match(plain, /; HttpOnly/);
  assert.match(plain, /; SameSite=Lax/);
  assert.match(plain, /; Expires=/);
  assert.doesNotMatch(plain, /; Secure/);
  const overTls = await signIn(user.email, PASSWORD, { 'x-forwarded-proto': 'https' });
  assert.match(overTls.response.headers.getSetCookie().join('\n'), /; Secure/);
});

test('sign-in and sign-up sent by a browser from another site are refused; same-origin ones pass', async () => {
  const user = await createPasswordUser();
  const signup = { email: `xsite-${randomUUID()}@example.test`, password: PASSWORD, name: 'X' };
  const crossSite: Record<string, string>[] = [
    { origin: 'https://evil.example' },
    { origin: 'null' },
    { 'sec-fetch-site': 'cross-site' },
    { 'sec-fetch-site': 'same-site', origin: url },
  ];
  for (const headers of crossSite) {
    const refused = await signIn(user.email, PASSWORD, headers);
    assert.equal(refused.response.status, 403, JSON.stringify(headers));
    assert.equal(refused.cookie, '');
    assert.equal((await call(`${url}/v1/signup`, { body: signup, headers })).status, 403);
  }
  assert.equal(await database.db.user.count({ where: { email: signup.email } }), 0);
  assert.equal((await signIn(user.email, PASSWORD, { origin: url })).response.status, 200);
  assert.equal(
    (await signIn(user.email, PASSWORD, { 'sec-fetch-site': 'same-origin' })).response.status,
    200,
  );
});

test('a session holds the scopes of its role: a customer cannot approve a payment, staff can', async () => {
  const customer = await createPasswordUser();
  const organizationId = await createOrganization(database.db, customer.id);
  const customerSession = await signIn(customer.email);
  const headers = { cookie: customerSession.cookie, 'x-csrf-token': customerSession.csrfToken };
  const order = await call(`${url}/v1/orders`, {
    headers,
    body: { organizationId, plan: 'starter', domain: `pay-${slug()}.woolly.test` },
  });
  assert.equal(order.status, 201);
  assert.equal(order.body.status, 'pending_payment');
  const approveUrl = `${url}/v1/orders/${order.body.id}/approve-payment`;
  assert.equal((await call(approveUrl, { method: 'POST', headers })).status, 403);

  const staff = await signIn((await createPasswordUser({ staffRole: 'admin' })).email);
  assert.equal(staff.response.body.user.staffRole, 'admin');
  const approved = await call(approveUrl, {
    method: 'POST',
    headers: { cookie: staff.cookie, 'x-csrf-token': staff.csrfToken },
  });
  assert.equal(approved.status, 200);
  assert.equal(approved.body.status, 'paid');
});

test('failure counts are forgotten a day after the last attempt, unless their lock still runs', async () => {
  const now = new Date();
  const dayAndAMinuteAgo = new Date(now.getTime() - (24 * 60 + 1) * 60_000);
  const row = (emailHash: string, updatedAt: Date, lockedUntil: Date | null) => ({
    emailHash,
    failedCount: 3,
    updatedAt,
    lockedUntil,
  });
  await database.db.loginThrottle.createMany({
    data: [
      row('stale', dayAndAMinuteAgo, null),
      row('stale-lock-over', dayAndAMinuteAgo, new Date(now.getTime() - 1000)),
      row('stale-but-locked', dayAndAMinuteAgo, new Date(now.getTime() + 60_000)),
      row('recent', new Date(now.getTime() - 60_000), null),
    ],
  });
  assert.equal(await deleteStaleLoginThrottles(database.db, now), 2);
  const left = await database.db.loginThrottle.findMany({
    where: { emailHash: { in: ['stale', 'stale-lock-over', 'stale-but-locked', 'recent'] } },
    orderBy: { emailHash: 'asc' },
  });
  assert.deepEqual(
    left.map((throttle) => throttle.emailHash),
    ['recent', 'stale-but-locked'],
  );
});
