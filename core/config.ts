import { isIP } from 'node:net';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { z } from 'zod';

const hostname = z
  .string()
  .toLowerCase()
  .regex(/^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$/, {
    message: 'must be a DNS name such as hosted.example.com',
  });

/**
 * One `WOOLLY_DNS_SERVERS` entry as node:dns `setServers` takes it (`ip:port`, `[ipv6]:port`;
 * port 53 when left out), or null. Only IP addresses: a resolver cannot be found by name.
 */
function dnsServer(entry: string): string | null {
  const match = /^(?:([0-9.]+)|\[([0-9a-fA-F:.]+)\])(?::([0-9]{1,5}))?$/.exec(entry.trim());
  const host = match?.[1] ?? match?.[2];
  const port = Number(match?.[3] ?? 53);
  if (!host || isIP(host) === 0 || port < 1 || port > 65535) return null;
  return match?.[2] ? `[${host}]:${port}` : `${host}:${port}`;
}

const envSchema = z.object({
  NODE_ENV: z.enum(['development', 'test', 'production']).default('development'),
  /** Unset: `woolly start` runs an embedded PostgreSQL under WOOLLY_DATA_DIR. */
  DATABASE_URL: z.url({ protocol: /^postgres(ql)?$/, message: 'must be a postgresql:// URL' }).optional(),
  WOOLLY_DATA_DIR: z.string().min(1).default('./data'),
  WOOLLY_EMBEDDED_PG_PORT: z.coerce.number().int().min(1).max(65535).default(54329),
  HOST: z.string().min(1).default('127.0.0.1'),
  PORT: z.coerce.number().int().min(0).max(65535).default(3000),
  /** Where customers reach servers that have no custom domain: `<name>.<base domain>`. */
  WOOLLY_BASE_DOMAIN: hostname.default('woolly.test'),
  /** `id:base64key,...`, 32-byte AES keys; the first seals, all open (rotation). */
  WOOLLY_MASTER_KEYS: z.string().min(1).optional(),
  WOOLLY_MASTODON_VERSION: z
    .string()
    .regex(/^v\d+\.\d+\.\d+$/, { message: 'must look like v4.5.11' })
    .default('v4.5.11'),
  /** `none` keeps the ledger and lets staff mark orders paid; `stripe` charges through Stripe. */
  WOOLLY_BILLING_PROVIDER: z.enum(['none', 'stripe']).default('none'),
  /** Stripe's secret API key (`sk_...` or a restricted `rk_...`); required with the stripe provider. */
  WOOLLY_STRIPE_SECRET_KEY: z
    .string()
    .regex(/^(sk|rk)_(test|live)_[A-Za-z0-9]+$/, {
      message: 'must be a Stripe secret key (sk_... or rk_...)',
    })
    .optional(),
  /** The webhook endpoint's signing secret (`whsec_...`); required with the stripe provider. */
  WOOLLY_STRIPE_WEBHOOK_SECRET: z
    .string()
    .regex(/^whsec_[A-Za-z0-9+/=_-]+$/, { message: 'must be a Stripe webhook signing secret (whsec_...)' })
    .optional(),
  /** Another Stripe API base (stripe-mock in tests); unset: Stripe's own. */
  WOOLLY_STRIPE_API_URL: z.url({ protocol: /^https?$/, message: 'must be an http(s):// URL' }).optional(),
  WOOLLY_WORKER_CONCURRENCY: z.coerce.number().int().min(1).max(64).default(4),
  /** How long a deleted server waits, stopped and restorable, before it is purged. */
  WOOLLY_DELETION_GRACE_HOURS: z.coerce
    .number()
    .min(0)
    .max(24 * 90)
    .default(168),
  /** Days a server whose payment failed keeps running (past due) before it is suspended. */
  WOOLLY_BILLING_GRACE_DAYS: z.coerce.number().int().min(0).max(90).default(7),
  /** Days a server suspended for non-payment keeps its data before it is deleted. */
  WOOLLY_BILLING_RETENTION_DAYS: z.coerce.number().int().min(1).max(365).default(30),
  /** Signs the session cookie; required in production (elsewhere derived, see api/auth/session.ts). */
  WOOLLY_SESSION_SECRET: z.string().min(32, { message: 'must be at least 32 characters' }).optional(),
  /** A signed-in session ends after this many minutes without a request. */
  WOOLLY_SESSION_IDLE_MINUTES: z.coerce
    .number()
    .int()
    .min(5)
    .max(7 * 24 * 60)
    .default(12 * 60),
  /** Where people reach Woolly: links in mail point here. Default: http://HOST:PORT. */
  WOOLLY_PUBLIC_URL: z.url({ protocol: /^https?$/, message: 'must be an http(s):// URL' }).optional(),
  /** Requests a minute per API token or signed-in user, per API process. */
  WOOLLY_RATE_LIMIT_PER_MINUTE: z.coerce.number().int().min(1).max(1_000_000).default(600),
  /** Requests a minute per client address without credentials, per API process. */
  WOOLLY_RATE_LIMIT_ANONYMOUS_PER_MINUTE: z.coerce.number().int().min(1).max(1_000_000).default(120),
  /** Resolvers that check custom domains' TXT records, `ip:port,...`; unset: the system's. */
  WOOLLY_DNS_SERVERS: z
    .string()
    .refine((value) => value.split(',').every((entry) => dnsServer(entry) !== null), {
      message: 'must be a comma-separated list of ip:port, such as 192.0.2.53:53,[2001:db8::53]:53',
    })
    .transform((value) => value.split(',').flatMap((entry) => dnsServer(entry) ?? []))
    .optional(),
  /** A Pulumi install whose bin/ holds `pulumi` and its provider plugins; unset: `pulumi` on PATH. */
  WOOLLY_PULUMI_ROOT: z.string().min(1).optional(),
  /** Where Pulumi keeps stack state; unset: `file://<WOOLLY_DATA_DIR>/pulumi`. */
  WOOLLY_PULUMI_BACKEND_URL: z
    .string()
    .regex(/^(file|s3|azblob|gs|https):\/\/./, {
      message: 'must be a file://, s3://, azblob://, gs:// or https:// URL',
    })
    .optional(),
  /** `passphrase`, or a KMS key URL that encrypts the stacks' secrets. */
  WOOLLY_PULUMI_SECRETS_PROVIDER: z
    .string()
    .regex(/^(passphrase|(awskms|azurekeyvault|gcpkms|hashivault):\/\/.+)$/, {
      message: 'must be passphrase or an awskms://, azurekeyvault://, gcpkms:// or hashivault:// URL',
    })
    .default('passphrase'),
  /** Unset: derived from the master key (required in production with the passphrase provider). */
  WOOLLY_PULUMI_PASSPHRASE: z.string().min(16, { message: 'must be at least 16 characters' }).optional(),
  /** Pulumi stack operations one worker process runs at once. */
  WOOLLY_PULUMI_CONCURRENCY: z.coerce.number().int().min(1).max(16).default(2),
  LOG_LEVEL: z.enum(['error', 'warn', 'info', 'debug']).default('info'),
  LOG_FORMAT: z.enum(['json', 'pretty']).default('json'),
});

export interface MasterKey {
  id: string;
  key: Buffer;
}

/** Everything Woolly reads from its environment, parsed once at boot. */
export interface Config {
  env: 'development' | 'test' | 'production';
  databaseUrl: string | undefined;
  dataDir: string;
  embeddedPgPort: number;
  host: string;
  port: number;
  baseDomain: string;
  /** Empty when unset; only `woolly start` outside production may then make a local key. */
  masterKeys: MasterKey[];
  mastodonVersion: string;
  /** Hours between deleting a server and purging it; until then it can be restored. */
  deletionGraceHours: number;
  billingProvider: 'none' | 'stripe';
  /** Non-payment (billing/dunning.ts): days past due before suspension, then suspended before deletion. */
  dunning: { graceDays: number; retentionDays: number };
  /** Set exactly when `billingProvider` is `stripe`; the secrets are never logged or echoed. */
  stripe: {
    secretKey: string;
    /** Verifies the `Stripe-Signature` of webhook deliveries. */
    webhookSecret: string;
    /** Base URL of the Stripe API; null: Stripe's own (https://api.stripe.com). */
    apiUrl: string | null;
  } | null;
  workerConcurrency: number;
  /** Cookie sessions; `secret` is unset outside production when not given (then derived). */
  session: { secret: string | undefined; idleMinutes: number };
  /** Base URL of the API and dashboard as people reach them, without a trailing slash. */
  publicUrl: string;
  rateLimits: { perActorPerMinute: number; perIpPerMinute: number };
  /** DNS servers as `ip:port` (`[ip]:port` for IPv6); empty: the system's resolvers. */
  dnsServers: string[];
  /** Add-on and platform stacks (infra/workspace.ts). */
  pulumi: {
    root: string | null;
    backendUrl: string;
    secretsProvider: string;
    /** Unset: derived from the master key (`pulumiSettings`). */
    passphrase: string | undefined;
    concurrency: number;
  };
  log: { level: 'error' | 'warn' | 'info' | 'debug'; format: 'json' | 'pretty' };
}

/** A configuration problem; `message` is one line naming every offending variable. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** Parses `WOOLLY_MASTER_KEYS`; throws a message naming the variable, never echoing a key. */
export function parseMasterKeys(value: string): MasterKey[] {
  const keys = value.split(',').map((entry) => {
    const [id, encoded, ...rest] = entry.trim().split(':');
    const key = Buffer.from(encoded ?? '', 'base64');
    if (!id || !/^[A-Za-z0-9_-]{1,32}$/.test(id) || rest.length > 0 || key.length !== 32) {
      throw new ConfigError('WOOLLY_MASTER_KEYS must be a list of id:base64 with 32-byte keys');
    }
    return { id, key };
  });
  if (new Set(keys.map((k) => k.id)).size !== keys.length) {
    throw new ConfigError('WOOLLY_MASTER_KEYS must not repeat a key id');
  }
  return keys;
}

/** Reads and validates the environment once; every bad variable is named in one error line. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  // An empty variable means unset (`PORT=` must not mean port 0).
  const given = Object.fromEntries(Object.entries(env).filter(([, value]) => value !== ''));
  const problems: string[] = [];
  const parsed = envSchema.safeParse(given);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      const variable = String(issue.path[0]);
      const got = given[variable];
      const shown =
        got === undefined || /KEY|SECRET|PASSWORD|PASSPHRASE|URL/.test(variable) ? '' : ` (got "${got}")`;
      problems.push(`${variable} ${issue.message.replace(/^Invalid input: /, '')}${shown}`);
    }
  }
  let masterKeys: MasterKey[] = [];
  if (given.WOOLLY_MASTER_KEYS) {
    try {
      masterKeys = parseMasterKeys(given.WOOLLY_MASTER_KEYS);
    } catch (error) {
      problems.push((error as Error).message);
    }
  }
  if (given.WOOLLY_BILLING_PROVIDER === 'stripe') {
    if (!given.WOOLLY_STRIPE_SECRET_KEY)
      problems.push('WOOLLY_STRIPE_SECRET_KEY is required with WOOLLY_BILLING_PROVIDER=stripe');
    if (!given.WOOLLY_STRIPE_WEBHOOK_SECRET)
      problems.push('WOOLLY_STRIPE_WEBHOOK_SECRET is required with WOOLLY_BILLING_PROVIDER=stripe');
  }
  if (given.NODE_ENV === 'production') {
    if (!given.WOOLLY_MASTER_KEYS) problems.push('WOOLLY_MASTER_KEYS is required in production');
    if (!given.DATABASE_URL) problems.push('DATABASE_URL is required in production');
    if (!given.WOOLLY_SESSION_SECRET) problems.push('WOOLLY_SESSION_SECRET is required in production');
    if (
      !given.WOOLLY_PULUMI_PASSPHRASE &&
      (given.WOOLLY_PULUMI_SECRETS_PROVIDER ?? 'passphrase') === 'passphrase'
    ) {
      problems.push(
        'WOOLLY_PULUMI_PASSPHRASE is required in production unless WOOLLY_PULUMI_SECRETS_PROVIDER names a KMS key',
      );
    }
  }
  if (!parsed.success || problems.length > 0) {
    throw new ConfigError(`invalid configuration: ${problems.join('; ')}`);
  }
  const e = parsed.data;
  return {
    env: e.NODE_ENV,
    databaseUrl: e.DATABASE_URL,
    dataDir: e.WOOLLY_DATA_DIR,
    embeddedPgPort: e.WOOLLY_EMBEDDED_PG_PORT,
    host: e.HOST,
    port: e.PORT,
    baseDomain: e.WOOLLY_BASE_DOMAIN,
    masterKeys,
    mastodonVersion: e.WOOLLY_MASTODON_VERSION,
    deletionGraceHours: e.WOOLLY_DELETION_GRACE_HOURS,
    billingProvider: e.WOOLLY_BILLING_PROVIDER,
    dunning: { graceDays: e.WOOLLY_BILLING_GRACE_DAYS, retentionDays: e.WOOLLY_BILLING_RETENTION_DAYS },
    stripe:
      e.WOOLLY_BILLING_PROVIDER === 'stripe' && e.WOOLLY_STRIPE_SECRET_KEY && e.WOOLLY_STRIPE_WEBHOOK_SECRET
        ? {
            secretKey: e.WOOLLY_STRIPE_SECRET_KEY,
            webhookSecret: e.WOOLLY_STRIPE_WEBHOOK_SECRET,
            apiUrl: e.WOOLLY_STRIPE_API_URL?.replace(/\/+$/, '') ?? null,
          }
        : null,
    workerConcurrency: e.WOOLLY_WORKER_CONCURRENCY,
    session: { secret: e.WOOLLY_SESSION_SECRET, idleMinutes: e.WOOLLY_SESSION_IDLE_MINUTES },
    publicUrl: (
      e.WOOLLY_PUBLIC_URL ?? `http://${e.HOST.includes(':') ? `[${e.HOST}]` : e.HOST}:${e.PORT}`
    ).replace(/\/+$/, ''),
    rateLimits: {
      perActorPerMinute: e.WOOLLY_RATE_LIMIT_PER_MINUTE,
      perIpPerMinute: e.WOOLLY_RATE_LIMIT_ANONYMOUS_PER_MINUTE,
    },
    dnsServers: e.WOOLLY_DNS_SERVERS ?? [],
    pulumi: {
      root: e.WOOLLY_PULUMI_ROOT ? path.resolve(e.WOOLLY_PULUMI_ROOT) : null,
      backendUrl:
        e.WOOLLY_PULUMI_BACKEND_URL ?? pathToFileURL(path.resolve(e.WOOLLY_DATA_DIR, 'pulumi')).href,
      secretsProvider: e.WOOLLY_PULUMI_SECRETS_PROVIDER,
      passphrase: e.WOOLLY_PULUMI_PASSPHRASE,
      concurrency: e.WOOLLY_PULUMI_CONCURRENCY,
    },
    log: { level: e.LOG_LEVEL, format: e.LOG_FORMAT },
  };
}
