/**
 * The usage samplers: worker jobs that measure what each server uses and append it to the
 * ledger through `recordUsage`, whose key (meter, instance, bucket) makes a retried job, a
 * crashed one run again, or two samplers at once count once. What can be measured after the
 * fact is caught up after a worker outage (search hours, past days' active users); a bucket's
 * size cannot be, so a storage hour missed is not invented.
 */
import type { Task } from 'graphile-worker';
import type { Pool } from 'pg';
import type { SecretBox } from '../core/crypto.ts';
import type { Logger } from '../core/log.ts';
import { type BucketSizer, type BucketTarget, makeS3BucketSizer } from './bucket-sizer.ts';
import { type ActiveUsersSource, makeMastodonMeasures } from './mastodon-measures.ts';
import { latestRevision, recordUsage, type UsageSample } from './metering.ts';

export const SAMPLE_SEARCH_TASK = 'billing:sample-search-hours';
export const SAMPLE_STORAGE_TASK = 'billing:sample-storage';
export const SAMPLE_ACTIVE_USERS_TASK = 'billing:sample-active-users';

const HOUR_MS = 3_600_000;
const DAY_MS = 86_400_000;
/**
 * How far back a catch-up goes: Stripe takes meter events up to 35 days old; a day is kept in
 * hand so a sample recorded at the edge is still inside the window when the reporter sends it.
 */
const CATCH_UP_MS = 34 * DAY_MS;
const GIB = 1024 ** 3;

/** Servers that serve their users, and so pay for search and are asked for active users. */
const SERVING = ['running', 'updating'];
/** Servers whose bucket is kept, and so pay for storage: a suspended server keeps its media. */
const KEEPING_DATA = ['running', 'updating', 'suspended'];

export interface SamplerDeps {
  pool: Pick<Pool, 'query'>;
  /** Opens the add-ons' sealed credentials and the servers' admin API tokens. */
  box: SecretBox;
  log: Logger;
  sizer: BucketSizer;
  measures: ActiveUsersSource;
  /** A server's public base URL, `https://<domain>` (tests point it at a stand-in). */
  baseUrlOf?: (domain: string) => string;
  now?: () => Date;
}

/** What a sampler run did: samples new to the ledger, servers measured, and servers that failed (skipped, logged). */
export interface SamplerResult {
  recorded: number;
  measured: number;
  failed: number;
}

const floorTo = (at: number, unit: number) => Math.floor(at / unit) * unit;
const ceilTo = (at: number, unit: number) => Math.ceil(at / unit) * unit;
const isoDay = (at: Date) => at.toISOString().slice(0, 10);

/** The SecretBox context of an instance's sealed record, as the provisioner seals it. */
const sealedContext = (instanceId: string, name: string) => `instance:${instanceId}:${name}`;

async function openSealed(
  deps: Pick<SamplerDeps, 'pool' | 'box'>,
  instanceId: string,
  name: string,
): Promise<string | null> {
  const { rows } = await deps.pool.query<{ keyId: string; ciphertext: string }>(
    `select "keyId", ciphertext from "SecretRecord" where "instanceId" = $1::uuid and name = $2`,
    [instanceId, name],
  );
  const [record] = rows;
  return record ? deps.box.open(record, sealedContext(instanceId, name)) : null;
}

/**
 * The whole UTC hours to count for a server's search add-on: from the latest of the first
 * whole hour after it was attached, the hour after the last one counted (so a worker outage
 * is caught up) and the first whole hour after its last resume (the hours it was suspended
 * are never counted), no further back than Stripe's window, up to the last hour that has
 * ended. A partly attached or partly resumed first hour is not counted.
 */
export function searchHoursToCount(input: {
  attachedAt: Date;
  lastCounted: Date | null;
  resumedAt: Date | null;
  now: Date;
}): Date[] {
  const now = input.now.getTime();
  const from = Math.max(
    ceilTo(input.attachedAt.getTime(), HOUR_MS),
    input.lastCounted ? input.lastCounted.getTime() + HOUR_MS : 0,
    input.resumedAt ? ceilTo(input.resumedAt.getTime(), HOUR_MS) : 0,
    ceilTo(now - CATCH_UP_MS, HOUR_MS),
  );
  const hours: Date[] = [];
  for (let hour = from; hour + HOUR_MS <= now; hour += HOUR_MS) hours.push(new Date(hour));
  return hours;
}

/**
 * `search_hours`: 1 for each whole hour a serving server (running or updating) had the
 * `elasticsearch` add-on. A suspended server is scaled to zero and its members cannot search,
 * so it does not pay for search, then or when the hours are caught up after its resume.
 */
export async function sampleSearchHours(deps: SamplerDeps): Promise<SamplerResult> {
  const now = deps.now?.() ?? new Date();
  const { rows } = await deps.pool.query<{
    instanceId: string;
    attachedAt: Date;
    lastCounted: Date | null;
    resumedAt: Date | null;
  }>(
    `select a."instanceId", a."createdAt" as "attachedAt",
            (select max(u."occurredAt") from "UsageEvent" u
              where u."instanceId" = a."instanceId" and u.meter = 'search_hours') as "lastCounted",
            (select max(coalesce(o."finishedAt", o."startedAt")) from "Operation" o
              where o."instanceId" = a."instanceId" and o.kind = 'resume') as "resumedAt"
       from "InstanceAddon" a
       join "AddonType" t on t.id = a."addonTypeId"
       join "Instance" i on i.id = a."instanceId"
      where t.code = 'elasticsearch' and i.status::text = any($1::text[])`,
    [SERVING],
  );
  const samples: UsageSample[] = rows.flatMap((row) =>
    searchHoursToCount({ ...row, now }).map((bucket) => ({
      instanceId: row.instanceId,
      meter: 'search_hours' as const,
      quantity: 1,
      bucket,
    })),
  );
  const { recorded } = await recordUsage(deps.pool, samples, now.getTime());
  return { recorded, measured: rows.length, failed: 0 };
}

/**
 * A bucket's size as the `storage_gb_hours` sample: whole GiB (the unit of `storageGb` in the
 * catalog, whose volumes are `Gi` and whose policy counts 1024³ bytes), rounded down, so a
 * customer never pays for a GiB not wholly used (at most one GiB-hour an hour in their favour).
 */
export const wholeGibOf = (bytes: number) => Math.floor(bytes / GIB);

interface StoredBucket {
  instanceId: string;
  domain: string;
  status: string;
  /** The last sample of this server's storage, carried forward while it is suspended. */
  lastGib: string | null;
  outputs: {
    objectStorage?: {
      bucket: string;
      endpoint: string;
      region: string;
      route?: { path: string };
    } | null;
  };
}

/**
 * Where the sampler lists a server's bucket. A cloud bucket is listed at its endpoint,
 * path-style. The in-cluster store (MinIO) sits behind a ClusterIP Service the worker, outside
 * the cluster, cannot reach; but it is routed through the server's own Ingress at
 * `https://<domain><route.path>` for visitors' media, and the same route serves a signed S3
 * listing, so that is where it is listed (no Kubernetes credentials needed, and the API
 * server's service proxy would strip the Authorization header and the NetworkPolicy only lets
 * the server's pods and the ingress controller in).
 */
function bucketUrlOf(stored: StoredBucket, baseUrlOf: (domain: string) => string): string | null {
  const storage = stored.outputs.objectStorage;
  if (!storage) return null;
  if (storage.route) return `${baseUrlOf(stored.domain)}${storage.route.path}`;
  return `${storage.endpoint.replace(/\/+$/, '')}/${encodeURIComponent(storage.bucket)}`;
}

async function bucketTargetOf(deps: SamplerDeps, stored: StoredBucket): Promise<BucketTarget | null> {
  const url = bucketUrlOf(stored, deps.baseUrlOf ?? ((domain) => `https://${domain}`));
  const sealed = await openSealed(deps, stored.instanceId, 'ADDON_OUTPUTS');
  const secrets = sealed ? (JSON.parse(sealed) as Record<string, string | undefined>) : {};
  const { AWS_ACCESS_KEY_ID: accessKeyId, AWS_SECRET_ACCESS_KEY: secretAccessKey } = secrets;
  const region = stored.outputs.objectStorage?.region;
  if (!url || !region || !accessKeyId || !secretAccessKey) return null;
  return { url, region, accessKeyId, secretAccessKey };
}

/**
 * This hour's size of a server's bucket in whole GiB. A suspended server runs nothing that
 * writes to its bucket, and its Ingress sends every path (the in-cluster bucket's route too)
 * to the maintenance page, so its last measured size is carried forward; null when it was
 * never measured.
 */
async function measureGib(deps: SamplerDeps, stored: StoredBucket): Promise<number | null> {
  if (stored.status === 'suspended') return stored.lastGib === null ? null : Number(stored.lastGib);
  const target = await bucketTargetOf(deps, stored);
  if (!target) return null;
  return wholeGibOf(await deps.sizer.sizeOf(target));
}

/**
 * `storage_gb_hours`: the size of each server's bucket (servers with the `object_storage`
 * add-on and a stack that is up, while their data is kept, suspended too) as this hour's
 * sample. A server whose bucket cannot be measured is logged and counted as failed: no sample
 * rather than a made-up one.
 */
export async function sampleStorage(deps: SamplerDeps): Promise<SamplerResult> {
  const now = deps.now?.() ?? new Date();
  const bucket = new Date(floorTo(now.getTime(), HOUR_MS));
  const { rows } = await deps.pool.query<StoredBucket>(
    `select i.id as "instanceId", i.domain, i.status::text, s.outputs,
            (select u.quantity::text from "UsageEvent" u
              where u."instanceId" = i.id and u.meter = 'storage_gb_hours'
                and ${latestRevision('u')}
              order by u."occurredAt" desc limit 1) as "lastGib"
       from "Instance" i
       join "InstanceAddon" a on a."instanceId" = i.id
       join "AddonType" t on t.id = a."addonTypeId" and t.code = 'object_storage'
       join "AddonStack" s on s."instanceId" = i.id and s.state = 'up'
      where i.status::text = any($1::text[])`,
    [KEEPING_DATA],
  );
  const result: SamplerResult = { recorded: 0, measured: 0, failed: 0 };
  for (const stored of rows) {
    const log = deps.log.child({ instanceId: stored.instanceId, meter: 'storage_gb_hours' });
    try {
      const quantity = await measureGib(deps, stored);
      if (quantity === null) {
        log.warn(
          stored.status === 'suspended'
            ? 'storage not sampled: suspended before its bucket was ever measured'
            : 'storage not sampled: the add-on stack has no bucket or no credentials',
        );
        result.failed++;
        continue;
      }
      const sample: UsageSample = {
        instanceId: stored.instanceId,
        meter: 'storage_gb_hours',
        quantity,
        bucket,
      };
      result.recorded += (await recordUsage(deps.pool, [sample], now.getTime())).recorded;
      result.measured++;
    } catch (error) {
      log.warn('storage not sampled', { error: (error as Error).message });
      result.failed++;
    }
  }
  return result;
}

/**
 * The days whose active users to sample: every day that has ended since the last one sampled
 * (the first time: yesterday only), no further back than Stripe's window. A day is sampled
 * once it is over, so its figure is final.
 */
export function daysToSample(input: { lastSampled: Date | null; now: Date }): Date[] {
  const today = floorTo(input.now.getTime(), DAY_MS);
  const from = Math.max(
    input.lastSampled ? input.lastSampled.getTime() + DAY_MS : today - DAY_MS,
    ceilTo(input.now.getTime() - CATCH_UP_MS, DAY_MS),
  );
  const days: Date[] = [];
  for (let day = from; day < today; day += DAY_MS) days.push(new Date(day));
  return days;
}

/** The calendar month of `day` up to and including `day`, as Mastodon counts monthly active users. */
export function monthThrough(day: Date): { from: string; to: string } {
  const first = new Date(Date.UTC(day.getUTCFullYear(), day.getUTCMonth(), 1));
  return { from: isoDay(first), to: isoDay(day) };
}

/**
 * `active_users`: one sample a day per serving server, the month's distinct active users up to
 * the end of that day, asked from the server itself with its admin API token. Days missed
 * while the worker was down are asked for afterwards (Mastodon answers for past ranges). A
 * server with no token yet, or that answers an error, is skipped with a log line and counted
 * as failed; never a zero it did not say.
 */
export async function sampleActiveUsers(deps: SamplerDeps): Promise<SamplerResult> {
  const now = deps.now?.() ?? new Date();
  const { rows } = await deps.pool.query<{ instanceId: string; domain: string; lastSampled: Date | null }>(
    `select i.id as "instanceId", i.domain,
            (select max(u."occurredAt") from "UsageEvent" u
              where u."instanceId" = i.id and u.meter = 'active_users') as "lastSampled"
       from "Instance" i
      where i.status::text = any($1::text[])
        -- A server on the dry-run target is planned, not made: there is nothing to ask.
        and not exists (select 1 from "Cluster" c where c.id = i."clusterId" and c.target = 'dry_run')`,
    [SERVING],
  );
  const result: SamplerResult = { recorded: 0, measured: 0, failed: 0 };
  for (const server of rows) {
    const days = daysToSample({ lastSampled: server.lastSampled, now });
    if (days.length === 0) continue;
    const log = deps.log.child({ instanceId: server.instanceId, meter: 'active_users' });
    const token = await openSealed(deps, server.instanceId, 'ADMIN_API_TOKEN');
    if (!token) {
      log.warn('active users not sampled: the server has no admin API token yet');
      result.failed++;
      continue;
    }
    try {
      const samples: UsageSample[] = [];
      for (const day of days) {
        const quantity = await deps.measures.activeUsers({ domain: server.domain, token }, monthThrough(day));
        samples.push({ instanceId: server.instanceId, meter: 'active_users', quantity, bucket: day });
      }
      result.recorded += (await recordUsage(deps.pool, samples, now.getTime())).recorded;
      result.measured++;
    } catch (error) {
      log.warn('active users not sampled', { error: (error as Error).message });
      result.failed++;
    }
  }
  return result;
}

/**
 * The samplers as worker jobs, with their schedule: search hours and storage every hour (a few
 * minutes past, apart), active users every hour too (each day is sampled once, at the first
 * run after it ends; the later runs catch up servers that failed). Each cron entry has a job
 * key, so a run still queued absorbs the next. `sizer` and `measures` default to the real S3
 * and Mastodon adapters.
 */
export function usageSamplerTasks(
  deps: Omit<SamplerDeps, 'sizer' | 'measures'> & Partial<Pick<SamplerDeps, 'sizer' | 'measures'>>,
): { tasks: Record<string, Task>; crontab: string } {
  const full: SamplerDeps = {
    ...deps,
    sizer: deps.sizer ?? makeS3BucketSizer(),
    measures: deps.measures ?? makeMastodonMeasures(deps.baseUrlOf ? { baseUrlOf: deps.baseUrlOf } : {}),
  };
  const samplers: [string, string, (deps: SamplerDeps) => Promise<SamplerResult>][] = [
    [SAMPLE_SEARCH_TASK, '5 * * * *', sampleSearchHours],
    [SAMPLE_STORAGE_TASK, '10 * * * *', sampleStorage],
    [SAMPLE_ACTIVE_USERS_TASK, '20 * * * *', sampleActiveUsers],
  ];
  return {
    tasks: Object.fromEntries(
      samplers.map(([name, , sample]) => [
        name,
        async () => {
          const result = await sample(full);
          deps.log.info('usage sampled', { task: name, ...result });
        },
      ]),
    ),
    crontab: samplers.map(([name, schedule]) => `${schedule} ${name} ?jobKey=${name}`).join('\n'),
  };
}
