import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import { call, startTestApp, type TestApp } from '../support/app.ts';
import { makeTestDatabase, type TestDatabase } from '../support/db.ts';
import { createOrganization, createUserWithToken } from '../support/factories.ts';

type Role = 'owner' | 'admin' | 'billing' | 'viewer';

let database: TestDatabase;
let app: TestApp;

before(async () => {
  database = await makeTestDatabase();
  app = await startTestApp(database);
});
after(async () => {
  await app.release();
  await database.release();
});

/** An organization with one member of each given role, in that order. */
async function createTeam(
  roles: Role[],
): Promise<{ org: string; people: { userId: string; token: string }[] }> {
  const [first = 'owner', ...rest] = roles;
  const founder = await createUserWithToken(database.db);
  const org = await createOrganization(database.db, founder.userId, first);
  const people = [founder];
  for (const role of rest) {
    const person = await createUserWithToken(database.db);
    await database.db.membership.create({ data: { organizationId: org, userId: person.userId, role } });
    people.push(person);
  }
  return { org, people };
}

const memberPath = (org: string, userId: string) => `${app.url}/v1/organizations/${org}/members/${userId}`;
const setRole = (org: string, userId: string, token: string, role: Role) =>
  call(memberPath(org, userId), { method: 'PATCH', token, body: { role } });
const remove = (org: string, userId: string, token: string) =>
  call(memberPath(org, userId), { method: 'DELETE', token });

async function rolesOf(org: string): Promise<Role[]> {
  const rows = await database.db.membership.findMany({ where: { organizationId: org } });
  return rows.map((row) => row.role).sort();
}

/** Rows (and roles) a refused request must not have changed. */
async function snapshot(org: string) {
  return {
    roles: await rolesOf(org),
    memberships: await database.db.membership.count(),
    audit: await database.db.auditLog.count(),
  };
}

test("an owner changes a member's role; the audit row says from and to", async () => {
  const { org, people } = await createTeam(['owner', 'viewer']);
  const [owner, viewer] = people as [{ userId: string; token: string }, { userId: string; token: string }];
  const response = await setRole(org, viewer.userId, owner.token, 'admin');
  assert.equal(response.status, 200, JSON.stringify(response.body));
  assert.equal(response.body.userId, viewer.userId);
  assert.equal(response.body.role, 'admin');
  const row = await database.db.auditLog.findFirstOrThrow({
    where: { action: 'member.update', organizationId: org },
  });
  assert.equal(row.targetType, 'member');
  assert.equal(row.targetId, viewer.userId);
  assert.equal(row.actorUserId, owner.userId);
  assert.deepEqual(row.data, { from: 'viewer', to: 'admin' });
});

test('admins, billing members and viewers cannot change roles or remove others (404), and nothing changes', async () => {
  const { org, people } = await createTeam(['owner', 'admin', 'billing', 'viewer']);
  const [owner, ...others] = people;
  assert.ok(owner);
  const before = await snapshot(org);
  for (const caller of others) {
    assert.equal((await setRole(org, owner.userId, caller.token, 'viewer')).status, 404);
    assert.equal(
      (await setRole(org, caller.userId, caller.token, 'owner')).status,
      404,
      'nor promote themselves',
    );
    assert.equal((await remove(org, owner.userId, caller.token)).status, 404);
  }
  assert.deepEqual(await snapshot(org), before);
});

test('the last owner cannot be demoted (409, nothing changes); with a second owner it can', async () => {
  const { org, people } = await createTeam(['owner', 'admin']);
  const [owner, admin] = people as [{ userId: string; token: string }, { userId: string; token: string }];
  const before = await snapshot(org);
  const refused = await setRole(org, owner.userId, owner.token, 'admin');
  assert.equal(refused.status, 409);
  assert.match(refused.body.detail, /last owner/);
  assert.deepEqual(await snapshot(org), before);

  assert.equal((await setRole(org, admin.userId, owner.token, 'owner')).status, 200);
  assert.equal((await setRole(org, owner.userId, owner.token, 'admin')).status, 200);
  assert.deepEqual(await rolesOf(org), ['admin', 'owner']);
});

test('the last owner can never be removed, not even by leaving (409)', async () => {
  const { org, people } = await createTeam(['owner', 'viewer']);
  const [owner] = people as [{ userId: string; token: string }];
  const staff = await createUserWithToken(database.db, { staffRole: 'admin' });
  const before = await snapshot(org);
  for (const token of [owner.token, staff.token]) {
    const refused = await remove(org, owner.userId, token);
    assert.equal(refused.status, 409);
    assert.match(refused.body.detail, /last owner/);
  }
  assert.deepEqual(await snapshot(org), before);
});

test('two owners stepping down at once leave one owner', async () => {
  for (let round = 0; round < 5; round++) {
    const { org, people } = await createTeam(['owner', 'owner', 'viewer']);
    const [a, b] = people as [{ userId: string; token: string }, { userId: string; token: string }];
    const statuses = await Promise.all([
      setRole(org, a.userId, a.token, 'admin'),
      setRole(org, b.userId, b.token, 'admin'),
    ]).then((responses) => responses.map((response) => response.status).sort());
    assert.deepEqual(statuses, [200, 409]);
    assert.deepEqual(await rolesOf(org), ['admin', 'owner', 'viewer']);
  }
});

test('two owners demoting or removing each other at once leave one owner', async () => {
  for (let round = 0; round < 5; round++) {
    const { org, people } = await createTeam(['owner', 'owner']);
    const [a, b] = people as [{ userId: string; token: string }, { userId: string; token: string }];
    // Whoever goes second is no longer an owner, so the organization is not theirs to manage.
    const statuses = await Promise.all([
      setRole(org, b.userId, a.token, 'viewer'),
      round % 2 === 0 ? setRole(org, a.userId, b.token, 'viewer') : remove(org, a.userId, b.token),
    ]).then((responses) => responses.map((response) => response.status));
    assert.equal(statuses.filter((status) => status === 200 || status === 204).length, 1, String(statuses));
    assert.equal((await rolesOf(org)).filter((role) => role === 'owner').length, 1);
  }
});

test('two owners leaving at once leave one owner', async () => {
  const { org, people } = await createTeam(['owner', 'owner']);
  const [a, b] = people as [{ userId: string; token: string }, { userId: string; token: string }];
  const statuses = await Promise.all([remove(org, a.userId, a.token), remove(org, b.userId, b.token)]).then(
    (responses) => responses.map((response) => response.status).sort(),
  );
  assert.deepEqual(statuses, [204, 409]);
  assert.deepEqual(await rolesOf(org), ['owner']);
});

test('any member may leave; the audit row says they left', async () => {
  const { org, people } = await createTeam(['owner', 'viewer', 'billing']);
  const [, viewer, billing] = people as { userId: string; token: string }[];
  assert.ok(viewer && billing);
  assert.equal((await remove(org, billing.userId, viewer.token)).status, 404, 'not someone else');
  const left = await remove(org, viewer.userId, viewer.token);
  assert.equal(left.status, 204);
  assert.deepEqual(await rolesOf(org), ['billing', 'owner']);
  const row = await database.db.auditLog.findFirstOrThrow({
    where: { action: 'member.remove', organizationId: org },
  });
  assert.equal(row.targetId, viewer.userId);
  assert.deepEqual(row.data, { role: 'viewer', left: true });
  assert.equal(
    (await call(`${app.url}/v1/organizations/${org}/members`, { token: viewer.token })).status,
    404,
    'a former member sees the organization no more',
  );
});

test('owners and staff remove anyone; the audit row names who did it', async () => {
  const { org, people } = await createTeam(['owner', 'owner', 'admin']);
  const [owner, other, admin] = people as { userId: string; token: string }[];
  assert.ok(owner && other && admin);
  assert.equal((await remove(org, other.userId, owner.token)).status, 204);
  const staff = await createUserWithToken(database.db, { staffRole: 'ops' });
  assert.equal((await remove(org, admin.userId, staff.token)).status, 204);
  assert.deepEqual(await rolesOf(org), ['owner']);
  const rows = await database.db.auditLog.findMany({
    where: { action: 'member.remove', organizationId: org },
    orderBy: { id: 'asc' },
  });
  assert.deepEqual(
    rows.map((row) => [row.actorUserId, row.targetId, row.data]),
    [
      [owner.userId, other.userId, { role: 'owner', left: false }],
      [staff.userId, admin.userId, { role: 'admin', left: false }],
    ],
  );
});

test('a user who is not a member, or another organization, answers 404', async () => {
  const { org, people } = await createTeam(['owner']);
  const [owner] = people as [{ userId: string; token: string }];
  const other = await createTeam(['owner', 'viewer']);
  const [, foreignMember] = other.people as [unknown, { userId: string; token: string }];
  const before = await snapshot(org);
  assert.equal((await setRole(org, foreignMember.userId, owner.token, 'admin')).status, 404);
  assert.equal((await remove(org, foreignMember.userId, owner.token)).status, 404);
  assert.equal((await setRole(org, randomUUID(), owner.token, 'admin')).status, 404);
  assert.equal((await setRole(other.org, foreignMember.userId, owner.token, 'admin')).status, 404);
  assert.equal((await remove(other.org, foreignMember.userId, owner.token)).status, 404);
  assert.deepEqual(await snapshot(org), before);
  assert.deepEqual(await rolesOf(other.org), ['owner', 'viewer']);
});

test('setting the role a member has changes nothing and writes no audit row', async () => {
  const { org, people } = await createTeam(['owner', 'viewer']);
  const [owner, viewer] = people as [{ userId: string; token: string }, { userId: string; token: string }];
  const before = await snapshot(org);
  const response = await setRole(org, viewer.userId, owner.token, 'viewer');
  assert.equal(response.status, 200);
  assert.equal(response.body.role, 'viewer');
  assert.deepEqual(await snapshot(org), before);
});
