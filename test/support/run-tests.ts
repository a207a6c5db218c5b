/**
 * `npm test`: starts the PostgreSQL the tests need (embedded, unless DATABASE_URL names a
 * server whose user may create databases), builds a migrated and seeded template database
 * once, then runs every `*.test.ts` under test/ (or the paths given) with Node's test runner.
 * Each test file clones the template into a database of its own (test/support/db.ts).
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { makePrisma, migrate, startEmbeddedPostgres } from '../../core/db.ts';
import { seedCatalog } from '../../core/seed.ts';

const TEMPLATE = 'woolly_test_template';
const root = path.resolve(import.meta.dirname, '..', '..');

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  if (typeof address !== 'object' || !address) throw new Error('no free port');
  return address.port;
}

async function findTests(entry: string): Promise<string[]> {
  const info = await stat(entry);
  if (info.isFile()) return entry.endsWith('.test.ts') ? [entry] : [];
  const children = await readdir(entry, { withFileTypes: true });
  const nested = await Promise.all(
    children
      .filter((child) => child.name !== 'node_modules')
      .map((child) => findTests(path.join(entry, child.name))),
  );
  return nested.flat().sort();
}

function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}

async function prepareTemplate(serverUrl: string): Promise<void> {
  const admin = new pg.Client({ connectionString: withDatabase(serverUrl, 'postgres') });
  await admin.connect();
  try {
    await admin.query(`drop database if exists ${TEMPLATE} with (force)`);
    await admin.query(`create database ${TEMPLATE}`);
  } finally {
    await admin.end();
  }
  const url = withDatabase(serverUrl, TEMPLATE);
  await migrate(url);
  const db = makePrisma(url);
  await seedCatalog(db);
  await db.$disconnect();
}

const started = Date.now();
const targets = process.argv.slice(2);
const files = (
  await Promise.all(
    (targets.length > 0 ? targets : ['test']).map((entry) => findTests(path.resolve(root, entry))),
  )
).flat();
if (files.length === 0) {
  console.error('run-tests: no test files found');
  process.exit(1);
}

/**
 * Go programs the tests run for real, built from Go modules once per machine and cached:
 * the Kubernetes API server and etcd (test/support/kube/build.sh; about 9 minutes cold) and
 * the pulumi CLI with its Kubernetes provider (test/support/pulumi/build.sh; about 18
 * minutes cold), and Stripe's API mock (test/support/stripe/build.sh; about 1 minute cold).
 * Instant once cached. Without Go, their tests skip locally and fail under CI=true.
 */
function ensureBuilt(what: string, script: string): void {
  const started = Date.now();
  const result = spawnSync('bash', [path.join(root, script)], { stdio: ['ignore', 'pipe', 'inherit'] });
  if (result.status === 0) {
    console.log(`run-tests: ${what} in ${result.stdout.toString().trim()} (${Date.now() - started} ms)`);
    return;
  }
  if (process.env.CI === 'true') {
    console.error(`run-tests: building ${what} failed (see above)`);
    process.exit(1);
  }
  console.error(`run-tests: ${what} could not be built; the tests that need them will skip`);
}

ensureBuilt('kube-apiserver and etcd', 'test/support/kube/build.sh');
ensureBuilt('pulumi and its kubernetes provider', 'test/support/pulumi/build.sh');
ensureBuilt('stripe-mock', 'test/support/stripe/build.sh');
ensureBuilt('gofakes3 (S3 server)', 'test/support/s3/build.sh');

let serverUrl = process.env.DATABASE_URL;
let release = async () => {};
if (!serverUrl) {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'woolly-test-pg-'));
  const embedded = await startEmbeddedPostgres({ dir, port: await freePort(), database: 'postgres' });
  serverUrl = embedded.url;
  release = async () => {
    await embedded.release();
    await rm(dir, { recursive: true, force: true });
  };
}

let code = 1;
try {
  await prepareTemplate(serverUrl);
  console.log(
    `run-tests: PostgreSQL and template ready in ${Date.now() - started} ms; ${files.length} test files`,
  );
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      '--test',
      '--test-reporter=spec',
      `--test-concurrency=${Math.max(2, os.availableParallelism())}`,
      ...files,
    ],
    {
      cwd: root,
      stdio: 'inherit',
      env: { ...process.env, WOOLLY_TEST_PG_URL: serverUrl, WOOLLY_TEST_TEMPLATE: TEMPLATE },
    },
  );
  code = await new Promise<number>((resolve) => child.on('close', (exit) => resolve(exit ?? 1)));
} finally {
  await release();
}
process.exit(code);
