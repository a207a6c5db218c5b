import { generateKeyPairSync, randomBytes } from 'node:crypto';
import type { SecretBox } from '../core/crypto.ts';
import type { Db } from '../core/db.ts';

/** The secrets a Mastodon server keeps for life (MASTODON.md): generated once, never rotated. */
export const INSTANCE_SECRET_NAMES = [
  'SECRET_KEY_BASE',
  'OTP_SECRET',
  'VAPID_PRIVATE_KEY',
  'VAPID_PUBLIC_KEY',
  'ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY',
  'ACTIVE_RECORD_ENCRYPTION_DETERMINISTIC_KEY',
  'ACTIVE_RECORD_ENCRYPTION_KEY_DERIVATION_SALT',
  'DB_PASS',
  // The owner's `admin:read` API token, which Woolly's samplers read the server's measures with.
  'ADMIN_API_TOKEN',
] as const;
export type InstanceSecretName = (typeof INSTANCE_SECRET_NAMES)[number];

/** A VAPID key pair as Mastodon reads it: base64url of the raw P-256 private scalar and public point. */
export function makeVapidKeyPair(): { privateKey: string; publicKey: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const priv = privateKey.export({ format: 'jwk' });
  const pub = publicKey.export({ format: 'jwk' });
  const point = Buffer.concat([
    Buffer.from([0x04]),
    Buffer.from(pub.x ?? '', 'base64url'),
    Buffer.from(pub.y ?? '', 'base64url'),
  ]);
  return { privateKey: priv.d ?? '', publicKey: point.toString('base64url') };
}

const alphanumeric = (length: number) => {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  // 256 % 62 leaves a small bias; rejection sampling removes it.
  let out = '';
  while (out.length < length) {
    for (const byte of randomBytes(length)) {
      if (byte < 248 && out.length < length) out += alphabet[byte % 62];
    }
  }
  return out;
};

/** Fresh values for every instance secret. */
export function makeInstanceSecrets(): Record<InstanceSecretName, string> {
  const vapid = makeVapidKeyPair();
  return {
    SECRET_KEY_BASE: randomBytes(64).toString('hex'),
    OTP_SECRET: randomBytes(64).toString('hex'),
    VAPID_PRIVATE_KEY: vapid.privateKey,
    VAPID_PUBLIC_KEY: vapid.publicKey,
    ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY: alphanumeric(32),
    ACTIVE_RECORD_ENCRYPTION_DETERMINISTIC_KEY: alphanumeric(32),
    ACTIVE_RECORD_ENCRYPTION_KEY_DERIVATION_SALT: alphanumeric(32),
    DB_PASS: alphanumeric(40),
    ADMIN_API_TOKEN: randomBytes(32).toString('base64url'),
  };
}

const context = (instanceId: string, name: string) => `instance:${instanceId}:${name}`;

/**
 * Returns the instance's secrets, creating the missing ones. Values are sealed before they
 * reach the database; concurrent callers converge on whichever row was written first.
 */
export async function ensureInstanceSecrets(
  db: Db,
  box: SecretBox,
  instanceId: string,
): Promise<{ values: Record<InstanceSecretName, string>; created: number }> {
  const existing = await db.secretRecord.findMany({ where: { instanceId } });
  const missing = INSTANCE_SECRET_NAMES.filter((name) => !existing.some((record) => record.name === name));
  let created = 0;
  if (missing.length > 0) {
    const fresh = makeInstanceSecrets();
    const result = await db.secretRecord.createMany({
      data: missing.map((name) => ({
        instanceId,
        name,
        ...box.seal(fresh[name], context(instanceId, name)),
      })),
      skipDuplicates: true,
    });
    created = result.count;
  }
  const records = missing.length > 0 ? await db.secretRecord.findMany({ where: { instanceId } }) : existing;
  const values = Object.fromEntries(
    records
      .filter((record) => (INSTANCE_SECRET_NAMES as readonly string[]).includes(record.name))
      .map((record) => [record.name, box.open(record, context(instanceId, record.name))]),
  ) as Record<InstanceSecretName, string>;
  return { values, created };
}
