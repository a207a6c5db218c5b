/**
 * The migrations are the only way the schema reaches a database, and some are written by
 * hand (data backfills, partial indexes). This checks that a database migrated from scratch
 * has exactly the tables, columns, enums, indexes and constraints that prisma/schema.prisma
 * describes, so the Prisma client never runs against a shape that is not there. Prisma's
 * database-reading diff modes are unavailable with a driver adapter, so the test builds a
 * second database from the schema (`migrate diff --from-empty`, which works offline) and
 * compares the two catalogs.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { makeEmptyDatabase, makeTestDatabase, type TestDatabase } from '../support/db.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
let migrated: TestDatabase;
let fromSchema: { url: string; release(): Promise<void> };

before(async () => {
  migrated = await makeTestDatabase();
  fromSchema = await makeEmptyDatabase();
});

after(async () => {
  await migrated.release();
  await fromSchema.release();
});

function schemaSql(databaseUrl: string): string {
  const cli = createRequire(import.meta.url).resolve('prisma/build/index.js');
  const args = [
    'migrate',
    'diff',
    '--from-empty',
    '--to-schema-datamodel',
    'prisma/schema.prisma',
    '--script',
  ];
  const result = spawnSync(process.execPath, [cli, ...args], {
    cwd: root,
    encoding: 'utf8',
    // The CLI needs the adapter's connection string, or it tries to download an engine.
    env: {
      ...process.env,
      DATABASE_URL: databaseUrl,
      PRISMA_HIDE_UPDATE_MESSAGE: '1',
      CHECKPOINT_DISABLE: '1',
    },
  });
  assert.equal(result.status, 0, result.stderr);
  return result.stdout;
}

/** The public schema's shape as sorted lines; partial indexes (hand-written) are listed apart. */
async function catalog(url: string): Promise<{ shape: string[]; partialIndexes: string[] }> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const columns = await client.query<{ line: string }>(`
      select format('column %s.%s %s %s default %s', table_name, column_name, udt_name, is_nullable, column_default) as line
        from information_schema.columns where table_schema = 'public' and table_name <> '_prisma_migrations'`);
    const enums = await client.query<{ line: string }>(`
      select format('enum %s %s', t.typname, string_agg(e.enumlabel, ',' order by e.enumlabel)) as line
        from pg_type t join pg_enum e on e.enumtypid = t.oid join pg_namespace n on n.oid = t.typnamespace
       where n.nspname = 'public' group by t.typname`);
    const indexes = await client.query<{ line: string }>(`
      select format('index %s', indexdef) as line from pg_indexes
       where schemaname = 'public' and tablename <> '_prisma_migrations'`);
    const constraints = await client.query<{ line: string }>(`
      select format('constraint %s %s', conname, pg_get_constraintdef(c.oid)) as line
        from pg_constraint c join pg_namespace n on n.oid = c.connamespace
       where n.nspname = 'public' and conrelid::regclass::text <> '_prisma_migrations'`);
    const all = [...columns.rows, ...enums.rows, ...indexes.rows, ...constraints.rows].map((row) => row.line);
    return {
      shape: all.filter((line) => !/^index .* WHERE /.test(line)).sort(),
      partialIndexes: all.filter((line) => /^index .* WHERE /.test(line)).sort(),
    };
  } finally {
    await client.end();
  }
}

test('a database built by the migrations has the shape prisma/schema.prisma describes', async () => {
  const client = new pg.Client({ connectionString: fromSchema.url });
  await client.connect();
  try {
    await client.query(schemaSql(fromSchema.url));
  } finally {
    await client.end();
  }
  const expected = await catalog(fromSchema.url);
  const actual = await catalog(migrated.url);
  assert.deepEqual(actual.shape, expected.shape);
  assert.deepEqual(expected.partialIndexes, [], 'Prisma schemas cannot declare partial indexes');
});
