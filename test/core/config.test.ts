import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { describe, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { ConfigError, loadConfig, parseMasterKeys } from '../../core/config.ts';

const b64key = (bytes = 32) => randomBytes(bytes).toString('base64');
const PROD_DB = 'postgresql://woolly@db.internal:5432/woolly';

/** Runs loadConfig and returns the ConfigError it must throw. */
function configError(env: NodeJS.ProcessEnv): ConfigError {
  try {
    loadConfig(env);
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`);
    return error;
  }
  assert.fail('loadConfig accepted an invalid environment');
}

describe('loadConfig', () => {
  test('an empty environment gives the documented defaults', () => {
    assert.deepEqual(loadConfig({}), {
      env: 'development',
      databaseUrl: undefined,
      dataDir: './data',
      embeddedPgPort: 54329,
      host: '127.0.0.1',
      port: 3000,
      baseDomain: 'woolly.test',
      masterKeys: [],
      mastodonVersion: 'v4.5.11',
      deletionGraceHours: 168,
      billingProvider: 'none',
      dunning: { graceDays: 7, retentionDays: 30 },
      stripe: null,
      workerConcurrency: 4,
      session: { secret: undefined, idleMinutes: 720 },
      publicUrl: 'http://127.0.0.1:3000',
      rateLimits: { perActorPerMinute: 600, perIpPerMinute: 120 },
      dnsServers: [],
      pulumi: {
        root: null,
        backendUrl: pathToFileURL(path.resolve('./data/pulumi')).href,
        secretsProvider: 'passphrase',
        passphrase: undefined,
        concurrency: 2,
      },
      log: { level: 'info', format: 'json' },
    });
  });

  test('WOOLLY_DNS_SERVERS takes IPv4 and bracketed IPv6 resolvers, port 53 when left out', () => {
    const config = loadConfig({ WOOLLY_DNS_SERVERS: '127.0.0.1:5353, 192.0.2.53,[2001:db8::53]:53' });
    assert.deepEqual(config.dnsServers, ['127.0.0.1:5353', '192.0.2.53:53', '[2001:db8::53]:53']);
  });

  test('WOOLLY_DNS_SERVERS refuses names, bad ports and empty entries', () => {
    for (const value of ['dns.example:53', '127.0.0.1:0', '127.0.0.1:70000', '127.0.0.1,', '2001:db8::53']) {
      assert.match(configError({ WOOLLY_DNS_SERVERS: value }).message, /\bWOOLLY_DNS_SERVERS\b/, value);
    }
  });

  test('numbers are parsed from strings and the base domain is lower-cased', () => {
    const config = loadConfig({
      PORT: '8080',
      WOOLLY_WORKER_CONCURRENCY: '16',
      WOOLLY_BASE_DOMAIN: 'Hosted.Example.COM',
      LOG_FORMAT: 'pretty',
      DATABASE_URL: PROD_DB,
    });
    assert.equal(config.port, 8080);
    assert.equal(config.workerConcurrency, 16);
    assert.equal(config.baseDomain, 'hosted.example.com');
    assert.equal(config.log.format, 'pretty');
    assert.equal(config.databaseUrl, PROD_DB);
  });

  test('the deletion grace period may be fractional, and never negative', () => {
    assert.equal(loadConfig({ WOOLLY_DELETION_GRACE_HOURS: '0.5' }).deletionGraceHours, 0.5);
    assert.match(
      configError({ WOOLLY_DELETION_GRACE_HOURS: '-1' }).message,
      /\bWOOLLY_DELETION_GRACE_HOURS\b/,
    );
  });

  test('a port outside 0..65535 is refused', () => {
    assert.match(configError({ PORT: '70000' }).message, /\bPORT\b/);
  });

  test('several bad variables give one single-line error naming each of them', () => {
    const error = configError({
      PORT: 'not-a-port',
      WOOLLY_BILLING_PROVIDER: 'paypal',
      DATABASE_URL: 'mysql://woolly@db.internal/woolly',
    });
    assert.doesNotMatch(error.message, /[\r\n]/);
    assert.match(error.message, /\bPORT\b/);
    assert.match(error.message, /\bWOOLLY_BILLING_PROVIDER\b/);
    assert.match(error.message, /\bDATABASE_URL\b/);
  });

  test('the error never echoes a DATABASE_URL, though it shows other bad values', () => {
    const url = 'mysql://woolly:hunter2-db-password@db.internal/woolly';
    const error = configError({ DATABASE_URL: url, WOOLLY_BILLING_PROVIDER: 'paypal' });
    assert.match(error.message, /\bDATABASE_URL\b/);
    assert.ok(!error.message.includes('hunter2-db-password'), error.message);
    assert.ok(!error.message.includes(url), error.message);
    assert.match(error.message, /paypal/, 'non-secret values are shown to help the operator');
  });

  test('the error never echoes a WOOLLY_MASTER_KEYS value', () => {
    const secret = Buffer.from('hunter2-master-key-material').toString('base64');
    for (const value of [`k1:${secret}`, 'k1:hunter2-not-base64', `k1:${b64key()}:hunter2-extra`]) {
      const error = configError({ WOOLLY_MASTER_KEYS: value });
      assert.match(error.message, /\bWOOLLY_MASTER_KEYS\b/);
      assert.ok(!error.message.includes('hunter2'), error.message);
      assert.ok(!error.message.includes(secret), error.message);
    }
  });

  test('several master keys are kept in order, so the first one is the active key', () => {
    const [newKey, oldKey] = [b64key(), b64key()];
    const config = loadConfig({ WOOLLY_MASTER_KEYS: `k2:${newKey}, k1:${oldKey}` });
    assert.deepEqual(
      config.masterKeys.map((k) => k.id),
      ['k2', 'k1'],
    );
    assert.deepEqual(config.masterKeys[0]?.key, Buffer.from(newKey, 'base64'));
    assert.deepEqual(config.masterKeys[1]?.key, Buffer.from(oldKey, 'base64'));
  });

  test('a master key that is not exactly 32 bytes is refused', () => {
    for (const bytes of [16, 31, 33, 64]) {
      assert.match(configError({ WOOLLY_MASTER_KEYS: `k1:${b64key(bytes)}` }).message, /WOOLLY_MASTER_KEYS/);
    }
  });

  test('a list with one bad entry among good ones is refused', () => {
    assert.throws(() => parseMasterKeys(`k1:${b64key()},k2:${b64key(16)}`), ConfigError);
    assert.throws(() => parseMasterKeys(`k1:${b64key()},`), ConfigError);
  });

  test('a master key id must be a short plain identifier', () => {
    for (const id of ['', 'has space', 'a'.repeat(33), 'dot.ted']) {
      assert.throws(() => parseMasterKeys(`${id}:${b64key()}`), ConfigError, `id ${JSON.stringify(id)}`);
    }
  });

  test('two master keys with the same id are refused', () => {
    assert.throws(() => parseMasterKeys(`k1:${b64key()},k1:${b64key()}`), ConfigError);
  });

  test('production refuses to start without WOOLLY_MASTER_KEYS', () => {
    const error = configError({ NODE_ENV: 'production', DATABASE_URL: PROD_DB });
    assert.match(error.message, /WOOLLY_MASTER_KEYS/);
  });

  test('production refuses to start without DATABASE_URL', () => {
    const error = configError({ NODE_ENV: 'production', WOOLLY_MASTER_KEYS: `k1:${b64key()}` });
    assert.match(error.message, /DATABASE_URL/);
  });

  test('production refuses to start without WOOLLY_SESSION_SECRET', () => {
    const error = configError({
      NODE_ENV: 'production',
      DATABASE_URL: PROD_DB,
      WOOLLY_MASTER_KEYS: `k1:${b64key()}`,
    });
    assert.match(error.message, /WOOLLY_SESSION_SECRET is required in production/);
  });

  test('production refuses the Pulumi passphrase provider without WOOLLY_PULUMI_PASSPHRASE, not a KMS key', () => {
    const base = {
      NODE_ENV: 'production',
      DATABASE_URL: PROD_DB,
      WOOLLY_MASTER_KEYS: `k1:${b64key()}`,
      WOOLLY_SESSION_SECRET: b64key(),
    };
    assert.match(configError(base).message, /WOOLLY_PULUMI_PASSPHRASE is required in production/);
    const kms = loadConfig({
      ...base,
      WOOLLY_PULUMI_SECRETS_PROVIDER: 'awskms://alias/woolly?region=eu-west-1',
    });
    assert.equal(kms.pulumi.secretsProvider, 'awskms://alias/woolly?region=eu-west-1');
    assert.equal(kms.pulumi.passphrase, undefined);
  });

  test('Pulumi settings: state under the data folder by default; a bad backend or short passphrase is named, never echoed', () => {
    const config = loadConfig({ WOOLLY_DATA_DIR: '/var/lib/woolly' });
    assert.equal(config.pulumi.backendUrl, 'file:///var/lib/woolly/pulumi');
    assert.equal(config.pulumi.root, null);
    assert.equal(config.pulumi.concurrency, 2);
    const error = configError({
      WOOLLY_PULUMI_BACKEND_URL: 'ftp://x',
      WOOLLY_PULUMI_PASSPHRASE: 'tooshort-secret',
    });
    assert.match(error.message, /WOOLLY_PULUMI_BACKEND_URL must be a file:\/\//);
    assert.match(error.message, /WOOLLY_PULUMI_PASSPHRASE must be at least 16 characters/);
    assert.ok(!error.message.includes('tooshort-secret'), error.message);
  });

  test('production starts with WOOLLY_MASTER_KEYS, DATABASE_URL, WOOLLY_SESSION_SECRET and WOOLLY_PULUMI_PASSPHRASE', () => {
    const config = loadConfig({
      NODE_ENV: 'production',
      DATABASE_URL: PROD_DB,
      WOOLLY_MASTER_KEYS: `k1:${b64key()}`,
      WOOLLY_SESSION_SECRET: b64key(),
      WOOLLY_PULUMI_PASSPHRASE: b64key(),
    });
    assert.equal(config.env, 'production');
    assert.equal(config.masterKeys.length, 1);
  });

  test('a WOOLLY_SESSION_SECRET under 32 characters is refused, and never echoed', () => {
    const error = configError({ WOOLLY_SESSION_SECRET: 'hunter2-short' });
    assert.match(error.message, /WOOLLY_SESSION_SECRET/);
    assert.ok(!error.message.includes('hunter2'), error.message);
  });

  test('production without either variable names both in the one error', () => {
    const error = configError({ NODE_ENV: 'production' });
    assert.match(error.message, /WOOLLY_MASTER_KEYS/);
    assert.match(error.message, /DATABASE_URL/);
  });

  test('a bad master key is named together with the other bad variables', () => {
    const error = configError({ PORT: 'abc', WOOLLY_MASTER_KEYS: `k1:${b64key(16)}` });
    assert.match(error.message, /\bPORT\b/);
    assert.match(error.message, /WOOLLY_MASTER_KEYS/);
  });
  test('the stripe provider takes its secret key, webhook secret and an optional API URL', () => {
    const config = loadConfig({
      WOOLLY_BILLING_PROVIDER: 'stripe',
      WOOLLY_STRIPE_SECRET_KEY: 'sk_test_123abc',
      WOOLLY_STRIPE_WEBHOOK_SECRET: 'whsec_abc123',
      WOOLLY_STRIPE_API_URL: 'http://127.0.0.1:12111/',
    });
    assert.equal(config.billingProvider, 'stripe');
    assert.deepEqual(config.stripe, {
      secretKey: 'sk_test_123abc',
      webhookSecret: 'whsec_abc123',
      apiUrl: 'http://127.0.0.1:12111',
    });
    const live = loadConfig({
      WOOLLY_BILLING_PROVIDER: 'stripe',
      WOOLLY_STRIPE_SECRET_KEY: 'rk_live_123abc',
      WOOLLY_STRIPE_WEBHOOK_SECRET: 'whsec_abc123',
    });
    assert.equal(live.stripe?.apiUrl, null, "unset: Stripe's own API");
  });

  test('the stripe provider without its secret key or webhook secret names both in the one error', () => {
    const error = configError({ WOOLLY_BILLING_PROVIDER: 'stripe' });
    assert.match(error.message, /WOOLLY_STRIPE_SECRET_KEY is required/);
    assert.match(error.message, /WOOLLY_STRIPE_WEBHOOK_SECRET is required/);
  });

  test('the none provider ignores Stripe settings: there is no Stripe', () => {
    const config = loadConfig({
      WOOLLY_STRIPE_SECRET_KEY: 'sk_test_123abc',
      WOOLLY_STRIPE_WEBHOOK_SECRET: 'whsec_abc123',
    });
    assert.equal(config.billingProvider, 'none');
    assert.equal(config.stripe, null);
  });

  test('malformed Stripe settings are named and never echoed', () => {
    const error = configError({
      WOOLLY_BILLING_PROVIDER: 'stripe',
      WOOLLY_STRIPE_SECRET_KEY: 'pk_test_hunter2publishable',
      WOOLLY_STRIPE_WEBHOOK_SECRET: 'hunter2-not-a-whsec',
      WOOLLY_STRIPE_API_URL: 'ftp://hunter2.example/',
    });
    assert.match(error.message, /\bWOOLLY_STRIPE_SECRET_KEY must be a Stripe secret key/);
    assert.match(error.message, /\bWOOLLY_STRIPE_WEBHOOK_SECRET must be a Stripe webhook signing secret/);
    assert.match(error.message, /\bWOOLLY_STRIPE_API_URL must be an http\(s\):\/\/ URL/);
    assert.ok(!error.message.includes('hunter2'), error.message);
  });
});
