import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { PassThrough } from 'node:stream';
import { after, before, test } from 'node:test';
import { makeOutboxMailer, type OutboxMailer } from '../../api/auth/mailer.ts';
import { loadConfig } from '../../core/config.ts';
import { hashPassword } from '../../core/crypto.ts';
import { makeLogger } from '../../core/log.ts';
import { call, startTestApp, type TestApp } from '../support/app.ts';
import { makeTestDatabase, type TestDatabase } from '../support/db.ts';
import { createOrganization, createUserWithToken } from '../support/factories.ts';

let database: TestDatabase;
let app: TestApp;
let outbox: OutboxMailer;

before(async () => {
  database = await makeTestDatabase();
  const log = makeLogger(loadConfig({ NODE_ENV: 'test' }), new PassThrough().resume());
  outbox = makeOutboxMailer({ from: 'Woolly <no-reply@woolly.test>', log });
  app = await startTestApp(database, {}, { mailer: outbox });
});
after(async () => {
  await app.release();
  await database.release();
});

interface Person {
  userId: string;
  token: string;
  email: string;
}

/** A user with an API token, and the address invitations to them use. */
async function createPerson(options: { staffRole?: 'ops' | 'admin' } = {}): Promise<Person> {
  const user = await createUserWithToken(database.db, options);
  const { email } = await database.db.user.findUniqueOrThrow({ where: { id: user.userId } });
  return { ...user, email };
}

/** An organization owned by a new person. */
async function createOwnedOrganization(): Promise<{ org: string; owner: Person }> {
  const owner = await createPerson();
  return { org: await createOrganization(database.db, owner.userId, 'owner'), owner };
}

async function addMember(org: string, role: 'owner' | 'admin' | 'billing' | 'viewer'): Promise<Person> {
  const person = await createPerson();
  await database.db.membership.create({ data: { organizationId: org, userId: person.userId, role } });
  return person;
}

function invite(org: string, token: string, body: { email: string; role: string }) {
  return call(`${app.url}/v1/organizations/${org}/invitations`, { token, body });
}

function accept(token: string | undefined, invitationToken: string, headers: Record<string, string> = {}) {
  return call(`${app.url}/v1/invitations/accept`, { token, body: { token: invitationToken }, headers });
}

/** The token in the newest invitation mail to `to`. */
function tokenFromMail(to: string): string {
  const mail = outbox.sent.findLast((sent) => sent.to === to);
  assert.ok(mail, `no mail to ${to}`);
  const match = /#accept-invitation=([A-Za-z0-9_-]+)/.exec(mail.text);
  assert.ok(match?.[1], 'the mail carries the link');
  return match[1];
}

/** Rows a refused request must not have written. */
async function rowCounts(): Promise<Record<string, number>> {
  const [invitations, revoked, accepted, memberships, audit] = await Promise.all([
    database.db.invitation.count(),
    database.db.invitation.count({ where: { revokedAt: { not: null } } }),
    database.db.invitation.count({ where: { acceptedAt: { not: null } } }),
    database.db.membership.count(),
    database.db.auditLog.count(),
  ]);
  return { invitations, revoked, accepted, memberships, audit };
}

test('an invitee who accepts joins with the invited role; the link came by mail, never in a response', async () => {
  const { org, owner } = await createOwnedOrganization();
  const invitee = await createPerson();
  const invited = await invite(org, owner.token, { email: invitee.email.toUpperCase(), role: 'admin' });
  assert.equal(invited.status, 201, JSON.stringify(invited.body));
  assert.equal(invited.headers.get('location'), `/v1/organizations/${org}/invitations/${invited.body.id}`);
  assert.equal(invited.body.email, invitee.email, 'stored in lower case');
  assert.equal(invited.body.role, 'admin');
  assert.equal(invited.body.status, 'pending');
  assert.equal(invited.body.invitedBy, owner.email);
  const days = (Date.parse(invited.body.expiresAt) - Date.parse(invited.body.createdAt)) / 86_400_000;
  assert.ok(Math.abs(days - 7) < 0.001, `expires in 7 days, not ${days}`);

  const mail = outbox.sent.findLast((sent) => sent.to === invitee.email);
  assert.ok(mail);
  const token = tokenFromMail(invitee.email);
  const { publicUrl } = loadConfig({ NODE_ENV: 'test' });
  assert.ok(mail.text.includes(`${publicUrl}/dashboard/#accept-invitation=${token}`), mail.text);
  assert.ok(!JSON.stringify(invited.body).includes(token), 'the token is in the mail only');
  const stored = await database.db.invitation.findUniqueOrThrow({ where: { id: invited.body.id } });
  assert.notEqual(stored.tokenHash, token, 'only the hash is kept');

  const joined = await accept(invitee.token, token);
  assert.equal(joined.status, 201, JSON.stringify(joined.body));
  assert.equal(joined.headers.get('location'), `/v1/organizations/${org}/members/${invitee.userId}`);
  assert.equal(joined.body.userId, invitee.userId);
  assert.equal(joined.body.role, 'admin');

  const members = await call(`${app.url}/v1/organizations/${org}/members`, { token: invitee.token });
  assert.equal(members.status, 200);
  assert.ok(members.body.data.some((m: { userId: string; role: string }) => m.userId === invitee.userId));
  const list = await call(`${app.url}/v1/organizations/${org}/invitations`, { token: owner.token });
  assert.equal(list.body.data[0].status, 'accepted');

  const rows = await database.db.auditLog.findMany({
    where: { organizationId: org },
    orderBy: { id: 'asc' },
  });
  const created = rows.find((row) => row.action === 'invitation.create');
  const accepted = rows.find((row) => row.action === 'invitation.accept');
  assert.ok(created && accepted, rows.map((row) => row.action).join());
  assert.equal(created.targetId, invited.body.id);
  assert.equal(created.actorUserId, owner.userId);
  assert.deepEqual(created.data, { email: invitee.email, role: 'admin' });
  assert.equal(accepted.actorUserId, invitee.userId);
  assert.deepEqual(accepted.data, { userId: invitee.userId, role: 'admin' });
  assert.ok(accepted.requestId);
});

test('an invitee signed in with a session accepts with the CSRF token', async () => {
  const { org, owner } = await createOwnedOrganization();
  const password = 'correct horse battery staple';
  const email = `session-${randomUUID()}@example.test`;
  await database.db.user.create({
    data: { email, name: 'Grace', passwordHash: await hashPassword(password), emailVerifiedAt: new Date() },
  });
  assert.equal((await invite(org, owner.token, { email, role: 'billing' })).status, 201);
  const signedIn = await call(`${app.url}/v1/session`, { body: { email, password } });
  assert.equal(signedIn.status, 200);
  const cookie = signedIn.headers.getSetCookie()[0]?.split(';')[0] ?? '';
  const joined = await accept(undefined, tokenFromMail(email), {
    cookie,
    'x-csrf-token': signedIn.body.csrfToken,
  });
  assert.equal(joined.status, 201, JSON.stringify(joined.body));
  assert.equal(joined.body.role, 'billing');
  assert.equal(joined.body.name, 'Grace');
});

test('an invitation cannot be accepted by an account of another address (403); the invitee still can', async () => {
  const { org, owner } = await createOwnedOrganization();
  const invitee = await createPerson();
  const stranger = await createPerson();
  await invite(org, owner.token, { email: invitee.email, role: 'viewer' });
  const token = tokenFromMail(invitee.email);
  const before = await rowCounts();
  const refused = await accept(stranger.token, token);
  assert.equal(refused.status, 403);
  assert.match(refused.body.detail, /another e-mail address/);
  assert.deepEqual(await rowCounts(), before, 'nothing written');
  assert.equal((await accept(invitee.token, token)).status, 201);
});

test('a used, revoked, replaced, expired or unknown token answers 400 naming the token field', async () => {
  const { org, owner } = await createOwnedOrganization();
  const refusedWith = async (person: Person, token: string, message: string) => {
    const before = await rowCounts();
    const response = await accept(person.token, token);
    assert.equal(response.status, 400, JSON.stringify(response.body));
    assert.equal(response.body.code, 'validation_failed');
    assert.deepEqual(response.body.errors, [{ field: 'token', message }]);
    assert.deepEqual(await rowCounts(), before, 'nothing written');
  };

  const used = await createPerson();
  await invite(org, owner.token, { email: used.email, role: 'viewer' });
  const usedToken = tokenFromMail(used.email);
  assert.equal((await accept(used.token, usedToken)).status, 201);
  await refusedWith(used, usedToken, 'is unknown, used or revoked');

  const revoked = await createPerson();
  const invitation = await invite(org, owner.token, { email: revoked.email, role: 'viewer' });
  const revokePath = `${app.url}/v1/organizations/${org}/invitations/${invitation.body.id}`;
  assert.equal((await call(revokePath, { method: 'DELETE', token: owner.token })).status, 204);
  await refusedWith(revoked, tokenFromMail(revoked.email), 'is unknown, used or revoked');

  const replaced = await createPerson();
  await invite(org, owner.token, { email: replaced.email, role: 'viewer' });
  const firstToken = tokenFromMail(replaced.email);
  await invite(org, owner.token, { email: replaced.email, role: 'admin' });
  await refusedWith(replaced, firstToken, 'is unknown, used or revoked');
  const joined = await accept(replaced.token, tokenFromMail(replaced.email));
  assert.equal(joined.body.role, 'admin', 'the newest invitation counts');

  const late = await createPerson();
  const expiring = await invite(org, owner.token, { email: late.email, role: 'viewer' });
  await database.db.invitation.update({
    where: { id: expiring.body.id },
    data: { expiresAt: new Date(Date.now() - 1000) },
  });
  await refusedWith(late, tokenFromMail(late.email), 'has expired');

  await refusedWith(late, 'not-a-token-anyone-was-sent', 'is unknown, used or revoked');
});

test('inviting an address again revokes its pending invitation, with an audit row for each', async () => {
  const { org, owner } = await createOwnedOrganization();
  const email = `again-${randomUUID()}@example.test`;
  const first = await invite(org, owner.token, { email, role: 'viewer' });
  const second = await invite(org, owner.token, { email, role: 'billing' });
  assert.equal(second.status, 201);
  const list = await call(`${app.url}/v1/organizations/${org}/invitations`, { token: owner.token });
  assert.deepEqual(
    list.body.data.map((i: { id: string; status: string }) => [i.id, i.status]),
    [
      [second.body.id, 'pending'],
      [first.body.id, 'revoked'],
    ],
  );
  const revocation = await database.db.auditLog.findFirstOrThrow({
    where: { action: 'invitation.revoke', targetId: first.body.id },
  });
  assert.deepEqual(revocation.data, { replacedBy: second.body.id });
  assert.equal(revocation.organizationId, org);
});

test('the list shows pending invitations first, then the others, newest first', async () => {
  const { org, owner } = await createOwnedOrganization();
  const ids: string[] = [];
  for (const name of ['a', 'b', 'c', 'd']) {
    const response = await invite(org, owner.token, {
      email: `${name}-${randomUUID()}@example.test`,
      role: 'viewer',
    });
    ids.push(response.body.id);
  }
  const [a, b, c, d] = ids;
  await call(`${app.url}/v1/organizations/${org}/invitations/${b}`, { method: 'DELETE', token: owner.token });
  await call(`${app.url}/v1/organizations/${org}/invitations/${d}`, { method: 'DELETE', token: owner.token });
  const list = await call(`${app.url}/v1/organizations/${org}/invitations`, { token: owner.token });
  assert.deepEqual(
    list.body.data.map((i: { id: string; status: string }) => [i.id, i.status]),
    [
      [c, 'pending'],
      [a, 'pending'],
      [d, 'revoked'],
      [b, 'revoked'],
    ],
  );
});

test('an admin may invite, but not an owner (422, nothing written); owners and staff may', async () => {
  const { org, owner } = await createOwnedOrganization();
  const admin = await addMember(org, 'admin');
  assert.equal(
    (await invite(org, admin.token, { email: `v-${randomUUID()}@example.test`, role: 'admin' })).status,
    201,
  );
  const before = await rowCounts();
  const refused = await invite(org, admin.token, { email: `o-${randomUUID()}@example.test`, role: 'owner' });
  assert.equal(refused.status, 422, JSON.stringify(refused.body));
  assert.deepEqual(refused.body.errors, [{ field: 'role', message: 'only owners may grant it' }]);
  assert.deepEqual(await rowCounts(), before, 'nothing written');

  assert.equal(
    (await invite(org, owner.token, { email: `o-${randomUUID()}@example.test`, role: 'owner' })).status,
    201,
  );
  const staff = await createPerson({ staffRole: 'ops' });
  assert.equal(
    (await invite(org, staff.token, { email: `s-${randomUUID()}@example.test`, role: 'owner' })).status,
    201,
  );
});

test('viewers, billing members and outsiders cannot invite, list or revoke (404), and nothing is written', async () => {
  const { org, owner } = await createOwnedOrganization();
  const pending = await invite(org, owner.token, { email: `p-${randomUUID()}@example.test`, role: 'viewer' });
  const callers = [await addMember(org, 'viewer'), await addMember(org, 'billing'), await createPerson()];
  const before = await rowCounts();
  for (const caller of callers) {
    const invited = await invite(org, caller.token, {
      email: `x-${randomUUID()}@example.test`,
      role: 'viewer',
    });
    const listed = await call(`${app.url}/v1/organizations/${org}/invitations`, { token: caller.token });
    const revoked = await call(`${app.url}/v1/organizations/${org}/invitations/${pending.body.id}`, {
      method: 'DELETE',
      token: caller.token,
    });
    assert.deepEqual([invited.status, listed.status, revoked.status], [404, 404, 404]);
  }
  assert.deepEqual(await rowCounts(), before, 'nothing written');
});

test("an address that is a member already is a conflict (409); another organization's invitation is not found", async () => {
  const { org, owner } = await createOwnedOrganization();
  const member = await addMember(org, 'viewer');
  const before = await rowCounts();
  const conflict = await invite(org, owner.token, { email: member.email.toUpperCase(), role: 'admin' });
  assert.equal(conflict.status, 409);
  assert.deepEqual(conflict.body.errors, [{ field: 'email', message: 'is a member already' }]);
  assert.deepEqual(await rowCounts(), before, 'nothing written');

  const other = await createOwnedOrganization();
  const foreign = await invite(other.org, other.owner.token, {
    email: `f-${randomUUID()}@example.test`,
    role: 'viewer',
  });
  const revoked = await call(`${app.url}/v1/organizations/${org}/invitations/${foreign.body.id}`, {
    method: 'DELETE',
    token: owner.token,
  });
  assert.equal(revoked.status, 404);
  const stored = await database.db.invitation.findUniqueOrThrow({ where: { id: foreign.body.id } });
  assert.equal(stored.revokedAt, null);
});

test('revoking writes one audit row; revoking again changes nothing; an accepted invitation stays (409)', async () => {
  const { org, owner } = await createOwnedOrganization();
  const invitee = await createPerson();
  const invitation = await invite(org, owner.token, { email: invitee.email, role: 'viewer' });
  const path = `${app.url}/v1/organizations/${org}/invitations/${invitation.body.id}`;
  assert.equal((await call(path, { method: 'DELETE', token: owner.token })).status, 204);
  const afterFirst = await rowCounts();
  assert.equal((await call(path, { method: 'DELETE', token: owner.token })).status, 204);
  assert.deepEqual(await rowCounts(), afterFirst);
  assert.equal(
    await database.db.auditLog.count({
      where: { action: 'invitation.revoke', targetId: invitation.body.id },
    }),
    1,
  );

  const second = await invite(org, owner.token, { email: invitee.email, role: 'viewer' });
  assert.equal((await accept(invitee.token, tokenFromMail(invitee.email))).status, 201);
  const before = await rowCounts();
  const refused = await call(`${app.url}/v1/organizations/${org}/invitations/${second.body.id}`, {
    method: 'DELETE',
    token: owner.token,
  });
  assert.equal(refused.status, 409);
  assert.deepEqual(await rowCounts(), before);
});

test('accepting while already a member is a conflict (409); the invitation stays pending', async () => {
  const { org, owner } = await createOwnedOrganization();
  const invitee = await createPerson();
  const invitation = await invite(org, owner.token, { email: invitee.email, role: 'admin' });
  // Joined meanwhile by another way (here: directly), after the invitation was sent.
  await database.db.membership.create({
    data: { organizationId: org, userId: invitee.userId, role: 'viewer' },
  });
  const before = await rowCounts();
  const refused = await accept(invitee.token, tokenFromMail(invitee.email));
  assert.equal(refused.status, 409);
  assert.deepEqual(await rowCounts(), before, 'nothing written');
  const list = await call(`${app.url}/v1/organizations/${org}/invitations`, { token: owner.token });
  assert.equal(list.body.data.find((i: { id: string }) => i.id === invitation.body.id).status, 'pending');
});

test('accepting needs a signed-in caller (401)', async () => {
  const { org, owner } = await createOwnedOrganization();
  const invitee = await createPerson();
  await invite(org, owner.token, { email: invitee.email, role: 'viewer' });
  const before = await rowCounts();
  assert.equal((await accept(undefined, tokenFromMail(invitee.email))).status, 401);
  assert.deepEqual(await rowCounts(), before);
});
