/**
 * The usage samplers against a real PostgreSQL: search hours counted per whole hour and caught
 * up after an outage; bucket sizes listed through S3 ListObjectsV2 on gofakes3 (a real S3
 * server built from the Go module proxy, which does not check signatures: the signer is
 * checked against AWS's published example); active users asked from `mastodonStandIn`, an
 * in-process HTTP server standing in for Mastodon's admin measures API, which checks the
 * token and the request body. Every sample goes through the ledger, so repeats count once.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PassThrough } from 'node:stream';
import { after, before, beforeEach, describe, it } from 'node:test';
import { parseCrontab } from 'graphile-worker';
import pg from 'pg';
import { type BucketSizer, makeS3BucketSizer } from '../../billing/bucket-sizer.ts';
import { makeMastodonMeasures } from '../../billing/mastodon-measures.ts';
import {
  daysToSample,
  monthThrough,
  SAMPLE_ACTIVE_USERS_TASK,
  SAMPLE_SEARCH_TASK,
  SAMPLE_STORAGE_TASK,
  type SamplerDeps,
  sampleActiveUsers,
  sampleSearchHours,
  sampleStorage,
  searchHoursToCount,
  usageSamplerTasks,
  wholeGibOf,
} from '../../billing/samplers.ts';
import { makeMasterKey, makeSecretBox } from '../../core/crypto.ts';
import { makeLogger } from '../../core/log.ts';
import { signS3Get } from '../../core/s3-signing.ts';
import { makeTestDatabase, type TestDatabase } from '../support/db.ts';
import { createOrganization, createUserWithToken } from '../support/factories.ts';
import { type S3Server, s3ServerSkipReason, startS3Server } from '../support/s3-server.ts';

const at = (iso: string) => new Date(iso);
const GIB = 1024 ** 3;
const box = makeSecretBox([makeMasterKey('test')]);

describe('sampling windows', () => {
  it('search hours: whole hours only, from the latest of attach, last counted and resume, within 34 days', () => {
    const now = at('2026-11-20T12:30:00Z');
    const iso = (hours: Date[]) => hours.map((hour) => hour.toISOString().slice(11, 13));
    assert.deepEqual(
      iso(
        searchHoursToCount({
          attachedAt: at('2026-11-20T06:45:00Z'),
          lastCounted: null,
          resumedAt: null,
          now,
        }),
      ),
      ['07', '08', '09', '10', '11'],
    );
    assert.deepEqual(
      iso(
        searchHoursToCount({
          attachedAt: at('2026-11-01T00:00:00Z'),
          lastCounted: at('2026-11-20T08:00:00Z'),
          resumedAt: at('2026-11-20T10:20:00Z'),
          now,
        }),
      ),
      ['11'],
      'the suspended hours between 09:00 and the resume are not counted',
    );
    const longAgo = searchHoursToCount({
      attachedAt: at('2026-01-01T00:00:00Z'),
      lastCounted: null,
      resumedAt: null,
      now,
    });
    assert.equal(longAgo[0]?.toISOString(), '2026-10-17T13:00:00.000Z', '34 days back, not the whole year');
  });

  it('active users: each day once it is over, caught up after an outage, the month through that day', () => {
    const iso = (days: Date[]) => days.map((day) => day.toISOString().slice(0, 10));
    assert.deepEqual(iso(daysToSample({ lastSampled: null, now: at('2026-11-20T00:20:00Z') })), [
      '2026-11-19',
    ]);
    assert.deepEqual(
      iso(daysToSample({ lastSampled: at('2026-11-19T00:00:00Z'), now: at('2026-11-20T23:00:00Z') })),
      [],
    );
    assert.deepEqual(
      iso(daysToSample({ lastSampled: at('2026-11-29T00:00:00Z'), now: at('2026-12-02T01:00:00Z') })),
      ['2026-11-30', '2026-12-01'],
    );
    assert.deepEqual(monthThrough(at('2026-11-30T00:00:00Z')), { from: '2026-11-01', to: '2026-11-30' });
    assert.deepEqual(monthThrough(at('2026-12-01T00:00:00Z')), { from: '2026-12-01', to: '2026-12-01' });
  });

  it('storage in whole GiB, rounded down', () => {
    assert.deepEqual(
      [wholeGibOf(0), wholeGibOf(GIB - 1), wholeGibOf(GIB), wholeGibOf(5.9 * GIB)],
      [0, 0, 1, 5],
    );
  });
});

describe('signS3Get', () => {
  it("signs a listing as AWS's own SigV4 example does (GET Bucket, sorted query)", () => {
    const headers = signS3Get(
      new URL('https://examplebucket.s3.amazonaws.com/?prefix=J&max-keys=2'),
      {
        region: 'us-east-1',
        accessKeyId: 'AKIAIOSFODNN7EXAMPLE',
        secretAccessKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
      },
      at('2013-05-24T00:00:00Z'),
    );
    assert.equal(
      headers.authorization,
      'AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, ' +
        'SignedHeaders=host;x-amz-content-sha256;x-amz-date, ' +
        'Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7',
    );
    assert.equal(headers['x-amz-date'], '20130524T000000Z');
  });
});

describe('usage samplers (PostgreSQL, gofakes3, mastodonStandIn)', { skip: s3ServerSkipReason() }, () => {
  let database: TestDatabase;
  let pool: pg.Pool;
  let s3: S3Server;
  let organizationId: string;
  let planId: string;
  let logged: string[];
  let deps: SamplerDeps;
  let mastodonStandIn: Server;
  let mastodonUrl: string;
  /** What mastodonStandIn was asked, per domain: the `end_at` of each request. */
  let asked: Map<string, string[]>;
  /** Domains mastodonStandIn answers 500 for. */
  const failing = new Set<string>();
  /** The admin tokens each server's database holds, and whose server it is. */
  const tokens = new Map<string, string>();

  before(async () => {
    [database, s3] = await Promise.all([makeTestDatabase(), startS3Server('mastodon')]);
    pool = new pg.Pool({ connectionString: database.url, max: 4 });
    const { userId } = await createUserWithToken(database.db);
    organizationId = await createOrganization(database.db, userId);
    planId = (await database.db.plan.findUniqueOrThrow({ where: { code: 'community' } })).id;
    // Mastodon's admin measures API, as far as the sampler uses it: a form body with
    // keys[]=active_users, start_at and end_at, and a Bearer token the server holds. One
    // stand-in serves every domain; the token says whose server is asked.
    mastodonStandIn = createServer((request, response) => {
      const domain = tokens.get((request.headers.authorization ?? '').replace(/^Bearer /, ''));
      let body = '';
      request.on('data', (chunk) => {
        body += chunk;
      });
      request.on('end', () => {
        const form = new URLSearchParams(body);
        const answer = (status: number, json: unknown) => {
          response.writeHead(status, { 'content-type': 'application/json' });
          response.end(JSON.stringify(json));
        };
        if (request.method !== 'POST' || request.url !== '/api/v1/admin/measures')
          return answer(404, { error: 'Not found' });
        if (!domain) return answer(401, { error: 'The access token is invalid' });
        const [start, end] = [form.get('start_at') ?? '', form.get('end_at') ?? ''];
        if (form.getAll('keys[]').join() !== 'active_users' || !/^\d{4}-\d{2}-01$/.test(start) || !end)
          return answer(422, { error: 'bad measures request' });
        if (failing.has(domain)) return answer(500, { error: 'We are sorry, but something went wrong' });
        asked.set(domain, [...(asked.get(domain) ?? []), end]);
        // The month's count so far: ten per day of the range.
        const total = (Number(end.slice(8, 10)) - Number(start.slice(8, 10)) + 1) * 10;
        return answer(200, [
          { key: 'active_users', unit: null, total: String(total), previous_total: '0', data: [] },
        ]);
      });
    });
    await new Promise<void>((resolve) => mastodonStandIn.listen(0, '127.0.0.1', resolve));
    mastodonUrl = `http://127.0.0.1:${(mastodonStandIn.address() as AddressInfo).port}`;
  });
  after(async () => {
    await pool?.end();
    await new Promise((resolve) => mastodonStandIn?.close(resolve));
    await Promise.all([database?.release(), s3?.release()]);
  });
  beforeEach(async () => {
    await pool.query(`delete from "UsageEvent" where meter <> 'subscription_start'`);
    await pool.query(`delete from "Instance"`);
    logged = [];
    asked = new Map();
    failing.clear();
    tokens.clear();
    const sink = new PassThrough();
    sink.on('data', (chunk: Buffer) => logged.push(chunk.toString('utf8')));
    deps = {
      pool,
      box,
      log: makeLogger({ log: { level: 'info', format: 'json' } }, sink),
      sizer: makeS3BucketSizer(),
      // Every server's Mastodon is the stand-in; every routed bucket is gofakes3.
      measures: makeMastodonMeasures({ baseUrlOf: () => mastodonUrl }),
      baseUrlOf: () => s3.url,
    };
  });

  const makeInstance = async (
    name: string,
    options: { status?: 'running' | 'suspended' | 'updating'; addons?: [string, Date][] } = {},
  ) => {
    const instance = await database.db.instance.create({
      data: {
        organizationId,
        planId,
        domain: `${name}.samplers.woolly.test`,
        mastodonVersion: 'v4.5.11',
        status: options.status ?? 'running',
        spec: {},
      },
    });
    for (const [code, createdAt] of options.addons ?? []) {
      const type = await database.db.addonType.findUniqueOrThrow({ where: { code } });
      await database.db.instanceAddon.create({
        data: { instanceId: instance.id, addonTypeId: type.id, createdAt },
      });
    }
    return instance;
  };
  /** The log lines written, as `<message> | <error> | <instanceId>`. */
  const logLines = () =>
    logged
      .join('')
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as { message: string; error?: string; instanceId?: string })
      .map((line) => `${line.message} | ${line.error ?? ''} | ${line.instanceId ?? ''}`);
  const seal = (instanceId: string, name: string, value: string) =>
    database.db.secretRecord.create({
      data: { instanceId, name, ...box.seal(value, `instance:${instanceId}:${name}`) },
    });
  const ledger = async (meter: string) =>
    (
      await pool.query<{ instanceId: string; quantity: string; bucket: Date }>(
        `select "instanceId", quantity::text, "occurredAt" as bucket from "UsageEvent" where meter = $1 order by "instanceId", "occurredAt"`,
        [meter],
      )
    ).rows.map((row) => [row.instanceId, row.bucket.toISOString(), Number(row.quantity)]);

  it('search hours: one per whole hour the add-on served, ten runs at once count once, an outage caught up, suspended servers not', async () => {
    const now = at('2026-11-20T12:30:00Z');
    const search = await makeInstance('search', { addons: [['elasticsearch', at('2026-11-20T09:45:00Z')]] });
    await makeInstance('paused', {
      status: 'suspended',
      addons: [['elasticsearch', at('2026-11-20T01:00:00Z')]],
    });
    await makeInstance('plain', { addons: [['custom_domain', at('2026-11-20T01:00:00Z')]] });
    const runs = await Promise.all(
      Array.from({ length: 10 }, () => sampleSearchHours({ ...deps, now: () => now })),
    );
    assert.equal(
      runs.reduce((sum, run) => sum + run.recorded, 0),
      2,
    );
    assert.deepEqual(await ledger('search_hours'), [
      [search.id, '2026-11-20T10:00:00.000Z', 1],
      [search.id, '2026-11-20T11:00:00.000Z', 1],
    ]);
    // The worker is down for three hours; its next run counts them all.
    const later = await sampleSearchHours({ ...deps, now: () => at('2026-11-20T15:05:00Z') });
    assert.equal(later.recorded, 3);
    assert.deepEqual(
      (await ledger('search_hours')).map(([, bucket]) => String(bucket).slice(11, 13)),
      ['10', '11', '12', '13', '14'],
    );
  });

  it('storage: the bucket listed through S3 on gofakes3 with the sealed key pair, at its endpoint or through the server route', async () => {
    const now = new Date();
    for (const [key, size] of [
      ['media_attachments/files/1/original/a.png', 1000],
      ['media_attachments/files/2/original/b c.mp4', 2500],
      ['cache/x', 7],
      ['accounts/avatars/d.jpg', 300],
      ['e', 1],
    ] as const) {
      await s3.put(key, Buffer.alloc(size));
    }
    const paged = makeS3BucketSizer({ pageSize: 2 });
    assert.equal(
      await paged.sizeOf({
        url: `${s3.url}/mastodon`,
        region: 'us-east-1',
        accessKeyId: 'a',
        secretAccessKey: 'b',
      }),
      3808,
      'every object of every page (three pages of two)',
    );
    const seen: { url: string; credential: string }[] = [];
    const listed = makeS3BucketSizer({
      fetch: (url, init) => {
        const authorization = (init?.headers as Record<string, string> | undefined)?.authorization ?? '';
        seen.push({ url: String(url), credential: /Credential=([^/]+)\//.exec(authorization)?.[1] ?? '' });
        return fetch(url, init);
      },
    });
    const cloud = await makeInstance('cloud', { addons: [['object_storage', now]] });
    const routed = await makeInstance('routed', { status: 'updating', addons: [['object_storage', now]] });
    const stack = (instanceId: string, objectStorage: object) =>
      database.db.addonStack.create({
        data: {
          instanceId,
          stackName: `woolly-addons/${instanceId}`,
          state: 'up',
          outputs: { objectStorage },
        },
      });
    await stack(cloud.id, { bucket: 'mastodon', endpoint: `${s3.url}/`, region: 'eu-west-1' });
    await stack(routed.id, {
      bucket: 'mastodon',
      endpoint: 'http://object-storage.ns.svc.cluster.local:9000',
      region: 'us-east-1',
      route: { path: '/mastodon/', service: 'object-storage', port: 9000 },
    });
    await seal(
      cloud.id,
      'ADDON_OUTPUTS',
      JSON.stringify({ AWS_ACCESS_KEY_ID: 'AKIACLOUD', AWS_SECRET_ACCESS_KEY: 'cloud-secret' }),
    );
    await seal(
      routed.id,
      'ADDON_OUTPUTS',
      JSON.stringify({ AWS_ACCESS_KEY_ID: 'woolly-routed', AWS_SECRET_ACCESS_KEY: 'routed-secret' }),
    );
    const run = () => sampleStorage({ ...deps, sizer: listed, now: () => now });
    assert.deepEqual(await run(), { recorded: 2, measured: 2, failed: 0 });
    assert.deepEqual(
      await run(),
      { recorded: 0, measured: 2, failed: 0 },
      'a second run in the hour counts once',
    );
    const hour = new Date(now);
    hour.setUTCMinutes(0, 0, 0);
    assert.deepEqual(
      (await ledger('storage_gb_hours')).sort(),
      [
        [cloud.id, hour.toISOString(), 0],
        [routed.id, hour.toISOString(), 0],
      ].sort(),
      '3,808 bytes is 0 whole GiB',
    );
    const urls = seen.map((request) => `${request.credential} ${request.url.replace(s3.url, '')}`).sort();
    assert.deepEqual(urls.slice(0, 2), [
      'AKIACLOUD /mastodon?list-type=2&max-keys=1000',
      'AKIACLOUD /mastodon?list-type=2&max-keys=1000',
    ]);
    assert.deepEqual(urls.slice(2), [
      'woolly-routed /mastodon/?list-type=2&max-keys=1000',
      'woolly-routed /mastodon/?list-type=2&max-keys=1000',
    ]);
  });

  it('storage: whole GiB of what the sizer measures; a bucket that cannot be listed is skipped and logged, never a zero', async () => {
    const now = new Date();
    const big = await makeInstance('big', { addons: [['object_storage', now]] });
    const gone = await makeInstance('gone', { addons: [['object_storage', now]] });
    const bare = await makeInstance('bare', { addons: [['object_storage', now]] });
    for (const [instance, bucket] of [
      [big, 'mastodon'],
      [gone, 'no-such-bucket'],
      [bare, 'mastodon'],
    ] as const) {
      await database.db.addonStack.create({
        data: {
          instanceId: instance.id,
          stackName: `woolly-addons/${instance.id}`,
          state: 'up',
          outputs: { objectStorage: { bucket, endpoint: s3.url, region: 'us-east-1' } },
        },
      });
    }
    for (const instance of [big, gone]) {
      await seal(
        instance.id,
        'ADDON_OUTPUTS',
        JSON.stringify({ AWS_ACCESS_KEY_ID: 'AKIA', AWS_SECRET_ACCESS_KEY: 'very-secret-key' }),
      );
    }
    // A stand-in sizer for the size (gofakes3 cannot hold GiBs here), the real one for the rest.
    const real = makeS3BucketSizer();
    const sizerStandIn: BucketSizer = {
      sizeOf: (target) =>
        target.url.endsWith('/mastodon') ? Promise.resolve(5.9 * GIB) : real.sizeOf(target),
    };
    assert.deepEqual(await sampleStorage({ ...deps, sizer: sizerStandIn, now: () => now }), {
      recorded: 1,
      measured: 1,
      failed: 2,
    });
    assert.deepEqual(
      (await ledger('storage_gb_hours')).map(([instanceId, , quantity]) => [instanceId, quantity]),
      [[big.id, 5]],
    );
    assert.deepEqual(
      new Set(logLines()),
      new Set([
        `storage not sampled | listing ${s3.url}/no-such-bucket failed: HTTP 404 (NoSuchBucket) | ${gone.id}`,
        `storage not sampled: the add-on stack has no bucket or no credentials |  | ${bare.id}`,
      ]),
    );
    assert.doesNotMatch(logged.join(''), /very-secret-key/);

    // Suspended: nothing writes to the bucket and the route shows the maintenance page, so the
    // last measured size is carried forward without listing; one never measured is skipped.
    await database.db.instance.updateMany({
      where: { id: { in: [big.id, bare.id] } },
      data: { status: 'suspended' },
    });
    logged = [];
    const unreachable: BucketSizer = {
      sizeOf: () => Promise.reject(new Error('a suspended server is not listed')),
    };
    const nextHour = new Date(now.getTime() + 3_600_000);
    const suspended = await sampleStorage({ ...deps, sizer: unreachable, now: () => nextHour });
    assert.deepEqual(suspended, { recorded: 1, measured: 1, failed: 2 }, 'gone (running) still fails');
    assert.deepEqual(
      (await ledger('storage_gb_hours')).filter(([instanceId]) => instanceId === big.id).map(([, , q]) => q),
      [5, 5],
    );
    assert.ok(
      logLines().includes(
        `storage not sampled: suspended before its bucket was ever measured |  | ${bare.id}`,
      ),
    );
  });

  it('active users: one sample a day from the server itself, past days caught up; no token or an error is skipped, never a zero', async () => {
    const ada = await makeInstance('ada');
    const bob = await makeInstance('bob');
    const fresh = await makeInstance('fresh');
    const broken = await makeInstance('broken');
    await makeInstance('paused', { status: 'suspended' });
    // A server on the dry-run target is planned, not made: never asked, even with a token.
    const planned = await makeInstance('planned');
    const dryRun = await database.db.cluster.create({
      data: { name: 'samplers-dry-run', target: 'dry_run', region: 'test', capacity: 10 },
    });
    await database.db.instance.update({ where: { id: planned.id }, data: { clusterId: dryRun.id } });
    await seal(planned.id, 'ADMIN_API_TOKEN', `token-of-${planned.domain}`);
    tokens.set(`token-of-${planned.domain}`, planned.domain);
    for (const instance of [ada, bob, broken]) {
      const token = `token-of-${instance.domain}`;
      // bob's database holds another token (its owner Job never ran): Mastodon answers 401.
      tokens.set(instance === bob ? 'another-token' : token, instance.domain);
      await seal(instance.id, 'ADMIN_API_TOKEN', token);
    }
    failing.add(broken.domain);
    const run = (iso: string) => sampleActiveUsers({ ...deps, now: () => at(iso) });
    assert.deepEqual(await run('2026-11-20T00:20:00Z'), { recorded: 1, measured: 1, failed: 3 });
    assert.deepEqual(
      await run('2026-11-20T01:20:00Z'),
      { recorded: 0, measured: 0, failed: 3 },
      'ada is done for the day',
    );
    assert.deepEqual(await run('2026-11-23T00:20:00Z'), { recorded: 3, measured: 1, failed: 3 });
    assert.deepEqual(await ledger('active_users'), [
      [ada.id, '2026-11-19T00:00:00.000Z', 190],
      [ada.id, '2026-11-20T00:00:00.000Z', 200],
      [ada.id, '2026-11-21T00:00:00.000Z', 210],
      [ada.id, '2026-11-22T00:00:00.000Z', 220],
    ]);
    assert.deepEqual(asked.get(ada.domain), ['2026-11-19', '2026-11-20', '2026-11-21', '2026-11-22']);
    assert.equal(asked.get(planned.domain), undefined, 'the dry-run server was not asked');
    assert.deepEqual(
      new Set(logLines()),
      new Set([
        `active users not sampled | active users of bob.samplers.woolly.test: HTTP 401 | ${bob.id}`,
        `active users not sampled: the server has no admin API token yet |  | ${fresh.id}`,
        `active users not sampled | active users of broken.samplers.woolly.test: HTTP 500 | ${broken.id}`,
      ]),
    );
    assert.doesNotMatch(logged.join(''), /token-of-|another-token/, 'no token in the logs');
  });

  it('the tasks run the samplers hourly, each under a job key', async () => {
    const { tasks, crontab } = usageSamplerTasks({
      pool,
      box,
      log: deps.log,
      sizer: deps.sizer,
      measures: deps.measures,
    });
    const entries = parseCrontab(crontab);
    assert.deepEqual(
      entries.map((entry) => [entry.task, entry.options.jobKey]),
      [SAMPLE_SEARCH_TASK, SAMPLE_STORAGE_TASK, SAMPLE_ACTIVE_USERS_TASK].map((task) => [task, task]),
    );
    const minute = (min: number) => ({ min, hour: 10, date: 20, month: 11, dow: 5 });
    assert.deepEqual(
      entries.map((entry) => [entry.match(minute(5)), entry.match(minute(10)), entry.match(minute(20))]),
      [
        [true, false, false],
        [false, true, false],
        [false, false, true],
      ],
    );
    const search = await makeInstance('tasked', {
      addons: [['elasticsearch', new Date(Date.now() - 3 * 3_600_000)]],
    });
    await tasks[SAMPLE_SEARCH_TASK]?.({}, {} as never);
    assert.ok((await ledger('search_hours')).filter(([id]) => id === search.id).length >= 2);
    assert.match(logged.join(''), /usage sampled.*billing:sample-search-hours/);
  });
});
