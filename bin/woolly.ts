#!/usr/bin/env -S node --import tsx
import { readFile } from 'node:fs/promises';
import type { Server } from 'node:http';
import path from 'node:path';
import { Command } from 'commander';
import { makeApp } from '../api/app.ts';
import { ensureFirstOpsUser } from '../api/auth/first-ops-user.ts';
import { listen } from '../api/server.ts';
import { apiTasks } from '../api/tasks.ts';
import { syncCatalog } from '../billing/catalog-sync.ts';
import { billingTasks } from '../billing/index.ts';
import { makeStripeClient } from '../billing/stripe-gateway.ts';
import { type Config, ConfigError, loadConfig, type MasterKey } from '../core/config.ts';
import { makeSecretBox, readOrCreateLocalMasterKey } from '../core/crypto.ts';
import { type EmbeddedDatabase, makePool, makePrisma, migrate, startEmbeddedPostgres } from '../core/db.ts';
import { type Logger, makeLogger } from '../core/log.ts';
import { seedCatalog } from '../core/seed.ts';
import { startWorker } from '../core/worker.ts';
import { DEFAULT_CHARTS, PLATFORM_PROJECT, platformOutputs, platformProgram } from '../infra/platform.ts';
import { registerPlatformCluster } from '../infra/platform-registration.ts';
import { openStack, PulumiUnavailable, pulumiSettings } from '../infra/workspace.ts';
import {
  CLUSTER_NAME,
  ClusterRegistrationError,
  listClusters,
  registerCluster,
} from '../provisioner/clusters.ts';
import { PROVISIONER_CRONTAB } from '../provisioner/index.ts';
import { provisionerRbacYaml } from '../provisioner/rbac.ts';
import { provisionerTasks } from '../provisioner/tasks.ts';

/** Stops the process with one clear line; no stack trace for a mistake the user can fix. */
function fail(message: string): never {
  console.error(`woolly: ${message}`);
  process.exit(2);
}

function boot(): { config: Config; log: Logger } {
  try {
    const config = loadConfig();
    return { config, log: makeLogger(config) };
  } catch (error) {
    if (error instanceof ConfigError) fail(error.message);
    throw error;
  }
}

/** The configured database, or the embedded one under the data directory. */
async function openDatabase(
  config: Config,
  log: Logger,
  allowEmbedded: boolean,
): Promise<{ url: string; embedded?: EmbeddedDatabase }> {
  if (config.databaseUrl) return { url: config.databaseUrl };
  if (!allowEmbedded)
    fail('DATABASE_URL is required for this command (only `woolly start` runs an embedded PostgreSQL)');
  log.info('no DATABASE_URL: starting embedded PostgreSQL', {
    dataDir: path.resolve(config.dataDir),
    port: config.embeddedPgPort,
  });
  const embedded = await startEmbeddedPostgres({
    dir: config.dataDir,
    port: config.embeddedPgPort,
    database: 'woolly',
    log,
  });
  return { url: embedded.url, embedded };
}

/**
 * Runs an ops command's `work` on the database (embedded when there is no DATABASE_URL), then
 * lets go of it; a refused cluster registration is the command's one line.
 */
async function withDatabase(
  config: Config,
  log: Logger,
  work: (db: ReturnType<typeof makePrisma>) => Promise<void>,
) {
  const database = await openDatabase(config, log, true);
  const db = makePrisma(database.url);
  try {
    await work(db);
  } catch (error) {
    if (error instanceof ClusterRegistrationError) fail(error.message);
    throw error;
  } finally {
    await db.$disconnect();
    await database.embedded?.release();
  }
}

async function masterKeys(config: Config, log: Logger): Promise<MasterKey[]> {
  if (config.masterKeys.length > 0) return config.masterKeys;
  const file = path.resolve(config.dataDir, 'master.key');
  log.warn('WOOLLY_MASTER_KEYS is not set: using a local key file (development only)', { file });
  return [await readOrCreateLocalMasterKey(file)];
}

/** Runs `release` functions in reverse order on SIGINT/SIGTERM, then exits. */
function onShutdown(log: Logger, releases: (() => Promise<unknown>)[]): void {
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info('shutting down', { signal });
    for (const release of releases.reverse()) {
      await release().catch((error: unknown) => log.error('shutdown step failed', { error }));
    }
    process.exit(0);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
}

async function run(options: { api: boolean; worker: boolean; embedded: boolean }): Promise<void> {
  const { config, log } = boot();
  const releases: (() => Promise<unknown>)[] = [];
  onShutdown(log, releases);
  const database = await openDatabase(config, log, options.embedded);
  if (database.embedded) releases.push(database.embedded.release);
  // The keys in force, the local development key included, for everything derived from them.
  const keys = await masterKeys(config, log);
  const box = makeSecretBox(keys);
  if (options.embedded) {
    const applied = await migrate(database.url);
    if (applied.length > 0) log.info('migrations applied', { migrations: applied });
  }
  const db = makePrisma(database.url);
  releases.push(() => db.$disconnect());
  if (options.embedded) await seedCatalog(db);

  if (options.worker) {
    const api = apiTasks({ db, log });
    const pool = makePool(database.url);
    releases.push(() => pool.end());
    const billing = billingTasks({ db, pool, log, box, config });
    const worker = await startWorker({
      databaseUrl: database.url,
      concurrency: config.workerConcurrency,
      log,
      tasks: {
        ...provisionerTasks({
          db,
          box,
          log,
          pulumi: pulumiSettings(config, keys[0] ?? fail('no master key')),
        }),
        ...api.tasks,
        ...billing.tasks,
      },
      crontab: [api.crontab, PROVISIONER_CRONTAB, billing.crontab].filter(Boolean).join('\n'),
    });
    releases.push(() => worker.release());
  }
  if (options.api) {
    const pool = makePool(database.url);
    releases.push(() => pool.end());
    const server: Server = listen(
      makeApp({ db, pool, config: { ...config, masterKeys: keys }, log }),
      config.port,
      config.host,
    );
    await new Promise<void>((resolve, reject) => server.once('listening', resolve).once('error', reject));
    // Open event streams would hold close() forever: idle connections go at once, the rest
    // (streams, slow requests) after a 2 s grace.
    releases.push(
      () =>
        new Promise((resolve) => {
          server.close(resolve);
          server.closeIdleConnections();
          setTimeout(() => server.closeAllConnections(), 2000).unref();
        }),
    );
    const address = server.address();
    const port = typeof address === 'object' && address ? address.port : config.port;
    const url = `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`;
    const ops = await ensureFirstOpsUser(db, config.baseDomain);
    if (ops) {
      console.log(
        [
          'First start: created the ops user. These credentials are shown this once; store them now.',
          `  email:     ${ops.email}`,
          `  password:  ${ops.password}`,
          `  API token: ${ops.token}`,
        ].join('\n'),
      );
    }
    console.log(
      `Woolly is ready at ${url}  (dashboard ${url}/dashboard/, API ${url}/v1, health ${url}/healthz)`,
    );
  } else {
    console.log('Woolly worker is running');
  }
}

const program = new Command('woolly').description('Control plane for hosted Mastodon servers');

program
  .command('start')
  .description('API, dashboard and worker in one process; embedded PostgreSQL when DATABASE_URL is unset')
  .action(() => run({ api: true, worker: true, embedded: true }));
program
  .command('serve')
  .description('API and dashboard only (stateless; run several)')
  .action(() => run({ api: true, worker: false, embedded: false }));
program
  .command('worker')
  .description('job runner only: provisioning and billing jobs (run several)')
  .action(() => run({ api: false, worker: true, embedded: false }));
program
  .command('migrate')
  .description('apply pending database migrations')
  .action(async () => {
    const { config, log } = boot();
    const database = await openDatabase(config, log, true);
    const applied = await migrate(database.url);
    console.log(applied.length > 0 ? `applied: ${applied.join(', ')}` : 'the database is up to date');
    await database.embedded?.release();
  });
program
  .command('seed')
  .description('bring the plan and add-on catalog in line with the code')
  .action(async () => {
    const { config, log } = boot();
    await withDatabase(config, log, (db) => seedCatalog(db));
    console.log('catalog seeded');
  });

const cluster = program.command('cluster').description('the Kubernetes clusters servers are placed on');
cluster
  .command('add <name>')
  .description('register a cluster: its kubeconfig and database admin URL are sealed with the master key')
  .requiredOption('--region <region>', 'where it runs, e.g. eu-central')
  .requiredOption('--capacity <servers>', 'how many servers it may hold', (value) => Number(value))
  .requiredOption('--kubeconfig <file>', 'kubeconfig of the provisioner’s service account')
  .requiredOption(
    '--database-admin-url-file <file>',
    'file holding the postgres:// URL of a CREATEROLE, CREATEDB role',
  )
  .option(
    '--settings <file>',
    'JSON of the shared services (database host, SMTP, ingress class, issuer, backups bucket)',
  )
  .option(
    '--backup-credentials-file <file>',
    'JSON {"accessKeyId", "secretAccessKey"} of the backup bucket named in the settings',
  )
  .action(async (name: string, options: Record<string, string | number>) => {
    const { config, log } = boot();
    const read = (file: string) =>
      readFile(String(file), 'utf8').catch((error: NodeJS.ErrnoException) =>
        fail(`cannot read ${file}: ${error.code}`),
      );
    const input = {
      name,
      region: String(options.region),
      capacity: Number(options.capacity),
      kubeconfig: await read(String(options.kubeconfig)),
      databaseAdminUrl: (await read(String(options.databaseAdminUrlFile))).trim(),
      settings: options.settings
        ? await read(String(options.settings)).then((text) => {
            try {
              return JSON.parse(text) as unknown;
            } catch {
              return fail(`${options.settings} is not JSON`);
            }
          })
        : undefined,
      backupCredentials: options.backupCredentialsFile
        ? await read(String(options.backupCredentialsFile)).then((text) => {
            try {
              return JSON.parse(text) as { accessKeyId: string; secretAccessKey: string };
            } catch {
              return fail(`${options.backupCredentialsFile} is not JSON`);
            }
          })
        : undefined,
    };
    await withDatabase(config, log, async (db) => {
      await registerCluster(db, makeSecretBox(await masterKeys(config, log)), input);
      console.log(`cluster ${name} registered (${input.region}, room for ${input.capacity} servers)`);
    });
  });
cluster
  .command('list')
  .description('clusters with their region and how full they are')
  .action(async () => {
    const { config, log } = boot();
    await withDatabase(config, log, async (db) => {
      for (const row of await listClusters(db)) {
        console.log(`${row.name}\t${row.target}\t${row.region}\t${row.servers}/${row.capacity}`);
      }
    });
  });
cluster
  .command('rbac')
  .description('print the provisioner’s ClusterRole and its binding, for kubectl apply -f -')
  .option('--service-account <namespace/name>', 'bind a ServiceAccount', 'woolly-system/woolly-provisioner')
  .option('--user <name>', 'bind a user instead (e.g. a token or certificate identity)')
  .action((options: { serviceAccount: string; user?: string }) => {
    const [namespace, name] = options.serviceAccount.split('/');
    if (!options.user && (!namespace || !name)) fail('--service-account must be <namespace>/<name>');
    process.stdout.write(
      provisionerRbacYaml(
        options.user
          ? { kind: 'User', name: options.user }
          : { kind: 'ServiceAccount', name: name ?? '', namespace: namespace ?? '' },
      ),
    );
  });

cluster
  .command('bootstrap')
  .description(
    'prepare a cluster with the platform stack (ingress-nginx, cert-manager and its ClusterIssuer, metrics-server, the provisioner’s ServiceAccount and RBAC), then register it; run again to update it and renew its token',
  )
  .requiredOption('--name <name>', 'the cluster’s name (a DNS label; also its Pulumi stack)')
  .requiredOption('--region <region>', 'where it runs, e.g. eu-central')
  .requiredOption(
    '--kubeconfig <file>',
    'kubeconfig of a cluster administrator (used here only, never stored)',
  )
  .requiredOption(
    '--database-admin-url-file <file>',
    'file holding the postgres:// URL of a CREATEROLE, CREATEDB role',
  )
  .requiredOption('--acme-email <email>', 'contact of the Let’s Encrypt account')
  .option('--acme-staging', 'use Let’s Encrypt’s staging directory (untrusted certificates, for trials)')
  .option('--capacity <servers>', 'how many servers it may hold', (value) => Number(value), 50)
  .option('--no-charts', 'install no Helm chart (the cluster’s operators install them; the CRDs must exist)')
  .action(
    async (options: {
      name: string;
      region: string;
      kubeconfig: string;
      databaseAdminUrlFile: string;
      acmeEmail: string;
      acmeStaging?: boolean;
      capacity: number;
      charts: boolean;
    }) => {
      const { config, log } = boot();
      // Everything that can be checked is, before any change to the cluster.
      if (!CLUSTER_NAME.test(options.name))
        fail(`--name "${options.name}" must be a DNS label (a-z, 0-9, -)`);
      if (!options.region.trim()) fail('--region is empty');
      if (!Number.isInteger(options.capacity) || options.capacity < 1)
        fail('--capacity must be a whole number of servers, at least 1');
      if (!/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(options.acmeEmail))
        fail('--acme-email is not an e-mail address');
      const read = (file: string) =>
        readFile(file, 'utf8').catch((error: NodeJS.ErrnoException) =>
          fail(`cannot read ${file}: ${error.code}`),
        );
      const adminKubeconfig = await read(options.kubeconfig);
      const databaseAdminUrl = (await read(options.databaseAdminUrlFile)).trim();
      if (!/^postgres(ql)?:\/\//.test(databaseAdminUrl))
        fail(`${options.databaseAdminUrlFile} does not hold a postgres:// URL`);

      const keys = await masterKeys(config, log);
      const stack = await openStack(pulumiSettings(config, keys[0] ?? fail('no master key')), {
        project: PLATFORM_PROJECT,
        stack: options.name,
        program: platformProgram({
          adminKubeconfig,
          acme: { email: options.acmeEmail, server: options.acmeStaging ? 'staging' : 'production' },
          charts: options.charts ? DEFAULT_CHARTS : null,
        }),
      }).catch((error: unknown) => fail(error instanceof PulumiUnavailable ? error.message : String(error)));
      // Pulumi's progress goes to stderr; it shows no secret (the kubeconfig is a secret input).
      const result = await stack
        .up({ onOutput: (line) => process.stderr.write(line) })
        .catch(() =>
          fail(`the platform stack ${PLATFORM_PROJECT}/${options.name} failed (its output is above)`),
        );
      await withDatabase(config, log, async (db) => {
        const registered = await registerPlatformCluster(db, makeSecretBox(keys), {
          name: options.name,
          region: options.region,
          capacity: options.capacity,
          adminKubeconfig,
          databaseAdminUrl,
          outputs: platformOutputs(result.outputs),
        });
        console.log(
          `cluster ${options.name} ${registered.created ? 'bootstrapped and registered' : 'bootstrapped again and its registration updated'} (${options.region.trim()}, room for ${options.capacity} servers)`,
        );
        console.log(
          `the provisioner’s token expires ${registered.tokenExpiresAt.toISOString()}: run \`woolly cluster bootstrap\` again before then`,
        );
      });
    },
  );

program
  .command('billing')
  .description('Stripe billing')
  .command('sync')
  .description(
    "make Stripe hold Woolly's catalog: plans, add-ons, sponsorship tiers, meters and metered prices (safe to re-run)",
  )
  .action(async () => {
    const { config } = boot();
    if (!config.stripe)
      fail('billing sync needs WOOLLY_BILLING_PROVIDER=stripe with WOOLLY_STRIPE_SECRET_KEY');
    const report = await syncCatalog(makeStripeClient(config.stripe, { maxNetworkRetries: 2 }));
    console.log(
      `products: ${report.products.created} created, ${report.products.updated} updated, ${report.products.kept} kept; ` +
        `prices: ${report.prices.created} created, ${report.prices.replaced} replaced, ${report.prices.kept} kept; ` +
        `meters: ${report.meters.created} created, ${report.meters.kept} kept`,
    );
  });

await program
  .parseAsync()
  .catch((error: unknown) => fail(error instanceof Error ? error.message : String(error)));
