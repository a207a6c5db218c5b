/**
 * Per-server roles and databases, made on the tests' real PostgreSQL server (which checks
 * passwords) through its superuser connection, as the provisioner does on a cluster's.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, test } from 'node:test';
import pg from 'pg';
import { dropInstanceDatabase, ensureInstanceDatabase } from '../../provisioner/database.ts';
import { adminUrl } from '../support/db.ts';

const made: string[] = [];
after(async () => {
  for (const name of made) await dropInstanceDatabase(adminUrl(), name);
});

function newName(): string {
  const name = `mastodon_${randomBytes(6).toString('hex')}`;
  made.push(name);
  return name;
}

/** Connects as `role` with `password` to `database`; resolves to the client or rejects. */
async function connectAs(role: string, password: string, database = role): Promise<pg.Client> {
  const url = new URL(adminUrl(database));
  url.username = role;
  url.password = password;
  const client = new pg.Client({ connectionString: url.toString() });
  await client.connect();
  return client;
}

test('the role logs in to its own database, owns it, and holds no other power', async () => {
  const name = newName();
  const password = randomBytes(24).toString('base64url');
  const created = await ensureInstanceDatabase(adminUrl(), { name, password, connectionLimit: 7 });
  assert.deepEqual(created, { createdRole: true, createdDatabase: true });

  const client = await connectAs(name, password);
  try {
    await client.query('create table statuses (id bigint primary key, text text)');
    await client.query(`insert into statuses values (1, 'hello')`);
  } finally {
    await client.end();
  }
  const admin = new pg.Client({ connectionString: adminUrl() });
  await admin.connect();
  try {
    const { rows } = await admin.query(
      'select rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolconnlimit from pg_roles where rolname = $1',
      [name],
    );
    assert.deepEqual(rows[0], {
      rolsuper: false,
      rolcreatedb: false,
      rolcreaterole: false,
      rolreplication: false,
      rolconnlimit: 7,
    });
  } finally {
    await admin.end();
  }
  await assert.rejects(connectAs(name, 'not-the-password'), /password authentication failed/);
});

test("one server's role cannot connect to another server's database", async () => {
  const [first, second] = [newName(), newName()];
  await ensureInstanceDatabase(adminUrl(), { name: first, password: 'first-password', connectionLimit: 5 });
  await ensureInstanceDatabase(adminUrl(), { name: second, password: 'second-password', connectionLimit: 5 });
  await assert.rejects(connectAs(first, 'first-password', second), /permission denied/);
});

test('repeating it changes nothing but a new password or limit, which it applies', async () => {
  const name = newName();
  await ensureInstanceDatabase(adminUrl(), { name, password: 'old-password', connectionLimit: 5 });
  const again = await ensureInstanceDatabase(adminUrl(), {
    name,
    password: 'new-password',
    connectionLimit: 9,
  });
  assert.deepEqual(again, { createdRole: false, createdDatabase: false });
  await assert.rejects(connectAs(name, 'old-password'), /password authentication failed/);
  const client = await connectAs(name, 'new-password');
  const { rows } = await client.query('select rolconnlimit from pg_roles where rolname = current_user');
  await client.end();
  assert.equal(rows[0].rolconnlimit, 9);
});

test('drop removes database and role, and dropping again is fine', async () => {
  const name = newName();
  await ensureInstanceDatabase(adminUrl(), { name, password: 'some-password', connectionLimit: 5 });
  const open = await connectAs(name, 'some-password');
  open.on('error', () => undefined);
  await dropInstanceDatabase(adminUrl(), name);
  await dropInstanceDatabase(adminUrl(), name);
  const admin = new pg.Client({ connectionString: adminUrl() });
  await admin.connect();
  const { rows } = await admin.query(
    'select (select count(*) from pg_database where datname = $1)::int as databases, (select count(*) from pg_roles where rolname = $1)::int as roles',
    [name],
  );
  await admin.end();
  assert.deepEqual(rows[0], { databases: 0, roles: 0 });
  await open.end().catch(() => undefined);
});

test('bad names are refused before any SQL, and a failure never shows the password', async () => {
  for (const name of ['Mastodon', 'a-b', 'x; drop role postgres', '', 'a'.repeat(64)]) {
    await assert.rejects(
      ensureInstanceDatabase(adminUrl(), { name, password: 'p', connectionLimit: 5 }),
      /not a valid database or role name/,
    );
  }
  // An admin without CREATEROLE: creating the role fails on the server.
  const weak = newName();
  await ensureInstanceDatabase(adminUrl(), { name: weak, password: 'weak-admin', connectionLimit: 5 });
  const url = new URL(adminUrl(weak));
  url.username = weak;
  url.password = 'weak-admin';
  const secret = `s3cret-${randomBytes(8).toString('hex')}`;
  const name = newName();
  const error = await ensureInstanceDatabase(url.toString(), {
    name,
    password: secret,
    connectionLimit: 5,
  }).then(
    () => assert.fail('a role without CREATEROLE made a role'),
    (caught: Error) => caught,
  );
  assert.match(error.message, /creating role .* failed: permission denied/);
  assert.ok(!error.message.includes(secret) && !String(error.stack).includes(secret));
});
