import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { makeTestDatabase, type TestDatabase } from '../support/db.ts';

const root = path.resolve(import.meta.dirname, '..', '..');
let database: TestDatabase;

before(async () => {
  database = await makeTestDatabase();
});
after(async () => {
  await database.release();
});

function woolly(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'bin/woolly.ts', ...args], {
      cwd: root,
      env: { PATH: process.env.PATH ?? '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

test('a bad variable stops start with one line naming it, before anything runs', async () => {
  const result = await woolly(['start'], {
    PORT: 'eighty',
    WOOLLY_BASE_DOMAIN: 'not a domain',
    DATABASE_URL: database.url,
  });
  assert.equal(result.code, 2);
  assert.equal(result.stdout, '');
  const lines = result.stderr.trim().split('\n');
  assert.equal(lines.length, 1, result.stderr);
  assert.match(lines[0] ?? '', /^woolly: invalid configuration: .*\bPORT\b.*\bWOOLLY_BASE_DOMAIN\b/);
});

test('a master key of the wrong length is refused without echoing it', async () => {
  const key = Buffer.from('too-short-key').toString('base64');
  const result = await woolly(['migrate'], { WOOLLY_MASTER_KEYS: `k1:${key}`, DATABASE_URL: database.url });
  assert.equal(result.code, 2);
  assert.match(result.stderr, /^woolly: invalid configuration: WOOLLY_MASTER_KEYS must be/);
  assert.ok(!result.stderr.includes(key));
});

test('migrate on an up-to-date database says so and changes nothing', async () => {
  const before = await database.db.$queryRaw<{ n: bigint }[]>`select count(*) as n from _prisma_migrations`;
  const result = await woolly(['migrate'], { DATABASE_URL: database.url });
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stdout.trim(), 'the database is up to date');
  const afterCount = await database.db.$queryRaw<
    { n: bigint }[]
  >`select count(*) as n from _prisma_migrations`;
  assert.deepEqual(afterCount, before);
});

test('serve refuses to run without DATABASE_URL (only start embeds PostgreSQL)', async () => {
  const result = await woolly(['serve'], {});
  assert.equal(result.code, 2);
  assert.equal(
    result.stderr.trim().split('\n').at(-1),
    'woolly: DATABASE_URL is required for this command (only `woolly start` runs an embedded PostgreSQL)',
  );
});

test('billing sync without Stripe configured is one clear line', async () => {
  const result = await woolly(['billing', 'sync'], {});
  assert.equal(result.code, 2);
  assert.equal(
    result.stderr.trim(),
    'woolly: billing sync needs WOOLLY_BILLING_PROVIDER=stripe with WOOLLY_STRIPE_SECRET_KEY',
  );
});

test('an unknown command is one clear line', async () => {
  const result = await woolly(['provision-everything'], {});
  assert.notEqual(result.code, 0);
  assert.match(result.stderr, /unknown command 'provision-everything'/);
});

test('cluster add registers a cluster from files and cluster list shows it; a bad kubeconfig is one line', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'woolly-cluster-'));
  try {
    const kubeconfig = path.join(dir, 'kubeconfig');
    const adminUrl = path.join(dir, 'admin-url');
    await writeFile(
      kubeconfig,
      [
        'current-context: w',
        'clusters: [{ name: c, cluster: { server: "https://10.1.0.1:6443" } }]',
        'users: [{ name: u, user: { token: t } }]',
        'contexts: [{ name: w, context: { cluster: c, user: u } }]',
      ].join('\n'),
    );
    await writeFile(adminUrl, 'postgresql://admin:secret-admin-pw@10.1.0.5/postgres\n');
    const env = {
      DATABASE_URL: database.url,
      WOOLLY_MASTER_KEYS: `k1:${Buffer.alloc(32, 7).toString('base64')}`,
    };
    const common = ['--region', 'eu-west', '--capacity', '12', '--database-admin-url-file', adminUrl];
    const added = await woolly(['cluster', 'add', 'ams1', ...common, '--kubeconfig', kubeconfig], env);
    assert.equal(added.code, 0, added.stderr);
    assert.equal(added.stdout.trim(), 'cluster ams1 registered (eu-west, room for 12 servers)');
    assert.ok(!added.stdout.includes('secret-admin-pw') && !added.stderr.includes('secret-admin-pw'));

    const listed = await woolly(['cluster', 'list'], env);
    assert.equal(listed.code, 0, listed.stderr);
    assert.ok(listed.stdout.split('\n').includes('ams1\tkubernetes\teu-west\t0/12'), listed.stdout);

    await writeFile(kubeconfig, 'current-context: nowhere\n');
    const refused = await woolly(['cluster', 'add', 'ams2', ...common, '--kubeconfig', kubeconfig], env);
    assert.equal(refused.code, 2);
    assert.equal(
      refused.stderr.trim().split('\n').at(-1),
      'woolly: the kubeconfig has no current-context naming a cluster and a user',
    );
    assert.equal(await database.db.cluster.count({ where: { name: 'ams2' } }), 0);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
