import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { type Db, makePrisma } from '../../core/db.ts';

export interface TestDatabase {
  url: string;
  db: Db;
  release(): Promise<void>;
}

function serverUrl(database: string): string {
  const url = process.env.WOOLLY_TEST_PG_URL;
  if (!url)
    throw new Error('WOOLLY_TEST_PG_URL is not set: run tests with `npm test`, which starts PostgreSQL');
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}

async function admin<T>(run: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: serverUrl('postgres') });
  await client.connect();
  try {
    return await run(client);
  } finally {
    await client.end();
  }
}

/** A fresh database cloned from the migrated, seeded template; `release` drops it. */
export async function makeTestDatabase(): Promise<TestDatabase> {
  const name = `woolly_test_${randomUUID().replaceAll('-', '').slice(0, 16)}`;
  const template = process.env.WOOLLY_TEST_TEMPLATE ?? 'woolly_test_template';
  await admin((client) => client.query(`create database ${name} template ${template}`));
  const url = serverUrl(name);
  const db = makePrisma(url);
  return {
    url,
    db,
    async release() {
      await db.$disconnect();
      await admin((client) => client.query(`drop database if exists ${name} with (force)`));
    },
  };
}

/** An empty database (no migrations, no seed); `release` drops it. */
export async function makeEmptyDatabase(): Promise<{ url: string; release(): Promise<void> }> {
  const name = `woolly_empty_${randomUUID().replaceAll('-', '').slice(0, 16)}`;
  await admin((client) => client.query(`create database ${name}`));
  return {
    url: serverUrl(name),
    async release() {
      await admin((client) => client.query(`drop database if exists ${name} with (force)`));
    },
  };
}

/** The test server's superuser URL on `database` (default `postgres`): an admin connection. */
export function adminUrl(database = 'postgres'): string {
  return serverUrl(database);
}
