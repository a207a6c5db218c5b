import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { combine, execute, isUniqueViolation } from '../../core/db.ts';
import { makeTestDatabase, type TestDatabase } from '../support/db.ts';

let database: TestDatabase;
let pool: pg.Pool;

before(async () => {
  database = await makeTestDatabase();
  pool = new pg.Pool({ connectionString: database.url, max: 2 });
});

after(async () => {
  await pool.end();
  await database.release();
});

const organization = (slug: string) => ({
  text: `insert into "Organization" (id, name, slug) values (gen_random_uuid(), $1::text, $2::text) returning 1`,
  values: [`Org ${slug}`, slug],
});

test('combined statements run as one, each with its own placeholders', async () => {
  const combined = combine('test-two-orgs', [organization('alpha'), organization('beta')]);
  assert.deepEqual(combined.values, ['Org alpha', 'alpha', 'Org beta', 'beta']);
  assert.match(combined.text, /\$3::text, \$4::text/);
  await execute(pool, combined);
  const slugs = await database.db.organization.findMany({ where: { slug: { in: ['alpha', 'beta'] } } });
  assert.equal(slugs.length, 2);
});

test('when one combined statement fails, none of the others is written', async () => {
  const before = await database.db.organization.count();
  await assert.rejects(
    execute(pool, combine('test-conflict', [organization('gamma'), organization('alpha')])),
    (error) => isUniqueViolation(error, 'Organization_slug_key'),
  );
  assert.equal(await database.db.organization.count(), before);
});

test('the same statements run on a Prisma transaction', async () => {
  await database.db.$transaction((tx) => execute(tx, organization('delta')));
  assert.equal(await database.db.organization.count({ where: { slug: 'delta' } }), 1);
});
