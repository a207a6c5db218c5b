/**
 * `npm run bench -- dashboard`: the production build's JavaScript (gzip), and how fast the
 * fleet page shows 1,000 servers in headless Chromium, next to a baseline in the same browser
 * and process: a bare express page serving the same first 50 rows as plain HTML. The figure
 * that matters is the ratio, and the absolute time against the 1.5 s target.
 */
import { readFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import express from 'express';
import { chromium } from 'playwright-core';
import { makeApp } from '../api/app.ts';
import { listen } from '../api/server.ts';
import { loadConfig } from '../core/config.ts';
import { hashPassword } from '../core/crypto.ts';
import { makePool, makePrisma } from '../core/db.ts';
import { makeLogger } from '../core/log.ts';
import { seedCatalog } from '../core/seed.ts';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 7);
const dist = path.resolve(import.meta.dirname, '..', 'dashboard', 'dist');

async function serve(app: express.Express): Promise<{ url: string; close(): Promise<void> }> {
  const server = listen(app, 0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? 0;

/** Every JS file of the build, and its gzip size. */
async function buildSizes(): Promise<{ totalGzip: number; files: Map<string, number> }> {
  const manifest = JSON.parse(await readFile(path.join(dist, '.vite', 'manifest.json'), 'utf8')) as Record<
    string,
    { file: string }
  >;
  const files = new Map<string, number>();
  for (const { file } of Object.values(manifest)) {
    if (!file.endsWith('.js') || files.has(file)) continue;
    files.set(file, gzipSync(await readFile(path.join(dist, file))).length);
  }
  return { totalGzip: [...files.values()].reduce((a, b) => a + b, 0), files };
}

export async function benchDashboard(databaseUrl: string): Promise<Record<string, unknown>> {
  const db = makePrisma(databaseUrl);
  await seedCatalog(db);
  const pool = makePool(databaseUrl);
  const password = 'bench password of the ops user';
  const email = `ops-${Date.now()}@example.test`;
  await db.user.create({
    data: {
      email,
      passwordHash: await hashPassword(password),
      emailVerifiedAt: new Date(),
      staffRole: 'ops',
    },
  });
  const org = await db.organization.create({ data: { name: 'Bench', slug: `bench-d-${Date.now()}` } });
  const plan = await db.plan.findUniqueOrThrow({ where: { code: 'community' } });
  await db.instance.createMany({
    data: Array.from({ length: 1000 }, (_, i) => ({
      organizationId: org.id,
      planId: plan.id,
      domain: `fleet-${String(i).padStart(4, '0')}.woolly.test`,
      mastodonVersion: 'v4.5.11',
      status: i % 10 === 0 ? ('provisioning' as const) : ('running' as const),
      spec: {},
    })),
  });
  const config = loadConfig({
    NODE_ENV: 'test',
    DATABASE_URL: databaseUrl,
    WOOLLY_MASTER_KEYS: `b:${Buffer.alloc(32).toString('base64')}`,
    WOOLLY_SESSION_SECRET: 'bench-session-secret-of-at-least-32-characters',
    LOG_LEVEL: 'warn',
  });
  const log = makeLogger(config);
  const woolly = await serve(makeApp({ db, pool, config, log }));

  // Baseline: the first page of the same rows as static HTML from a bare express app.
  const rows = await db.instance.findMany({
    orderBy: { createdAt: 'desc' },
    take: 50,
    select: { domain: true },
  });
  const bare = express();
  const html = `<!doctype html><html lang="en"><title>Fleet</title><table><tbody>${rows
    .map((row) => `<tr><td><a href="#">${row.domain}</a></td><td>running</td></tr>`)
    .join('')}</tbody></table></html>`;
  bare.get('/', (_req, res) => res.type('html').send(html));
  const baseline = await serve(bare);

  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-sync',
    ],
  });
  try {
    const sizes = await buildSizes();
    const signIn = await browser.newContext({ baseURL: woolly.url });
    const page = await signIn.newPage();
    await page.goto('/dashboard/sign-in');
    await page.getByLabel('E-mail').fill(email);
    await page.getByLabel('Password').fill(password);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL('**/dashboard/fleet');
    const cookies = await signIn.cookies();
    await signIn.close();

    /** A cold load (new context, empty cache): ms from navigation start until 50 rows show. */
    const load = async (url: string, withCookies: boolean) => {
      const context = await browser.newContext();
      if (withCookies) await context.addCookies(cookies);
      const tab = await context.newPage();
      const scripts: string[] = [];
      tab.on('response', (response) => {
        if (response.request().resourceType() === 'script') scripts.push(new URL(response.url()).pathname);
      });
      await tab.goto(url, { waitUntil: 'commit' });
      await tab.waitForFunction(() => document.querySelectorAll('tbody tr a').length >= 50, undefined, {
        timeout: 15_000,
        polling: 'raf',
      });
      const ms = await tab.evaluate(() => performance.now());
      await context.close();
      return { ms, scripts };
    };

    const fleetMs: number[] = [];
    const bareMs: number[] = [];
    let scripts: string[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const fleet = await load(`${woolly.url}/dashboard/fleet`, true);
      fleetMs.push(fleet.ms);
      scripts = fleet.scripts;
      bareMs.push((await load(baseline.url, false)).ms);
    }
    const initialGzip = scripts
      .map((script) => sizes.files.get(script.replace(/^\/dashboard\//, '')) ?? 0)
      .reduce((a, b) => a + b, 0);
    const result = {
      instances: 1000,
      rounds: ROUNDS,
      build: { jsGzipBytes: sizes.totalGzip, jsFiles: sizes.files.size },
      fleetPage: {
        initialJsGzipBytes: initialGzip,
        scriptsLoaded: scripts.length,
        firstRowsMsMedian: Math.round(median(fleetMs)),
        firstRowsMs: fleetMs.map(Math.round),
      },
      baseline: {
        what: 'bare express, the same 50 rows as static HTML',
        firstRowsMsMedian: Math.round(median(bareMs)),
      },
      targets: { initialJsGzipBytes: 250 * 1024, fleetPageMs: 1500 },
      ratios: { fleetVsStaticHtml: Number((median(fleetMs) / median(bareMs)).toFixed(2)) },
    };
    console.log(JSON.stringify(result, null, 2));
    return result;
  } finally {
    await browser.close();
    await woolly.close();
    await baseline.close();
    await pool.end();
    await db.$disconnect();
  }
}
