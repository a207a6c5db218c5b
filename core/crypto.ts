import {
  createCipheriv,
  createDecipheriv,
  createHash,
  randomBytes,
  scrypt,
  timingSafeEqual,
} from 'node:crypto';
import { promisify } from 'node:util';
import type { MasterKey } from './config.ts';

const scryptAsync = promisify(scrypt) as (
  password: string,
  salt: Buffer,
  keylen: number,
  options: { N: number; r: number; p: number; maxmem: number },
) => Promise<Buffer>;

/** A sealed value: the id of the key that sealed it travels with it so keys can rotate. */
export interface Sealed {
  keyId: string;
  /** `base64url(iv).base64url(ciphertext || tag)` */
  ciphertext: string;
}

export interface SecretBox {
  seal(plaintext: string, context: string): Sealed;
  open(sealed: Sealed, context: string): string;
}

/**
 * AES-256-GCM envelope. `context` (e.g. `instance:<id>:SECRET_KEY_BASE`) is bound as
 * additional data, so a ciphertext copied onto another row does not open there.
 */
export function makeSecretBox(keys: MasterKey[]): SecretBox {
  const [active] = keys;
  if (!active) throw new Error('makeSecretBox needs at least one master key');
  const byId = new Map(keys.map((k) => [k.id, k.key]));
  return {
    seal(plaintext, context) {
      const iv = randomBytes(12);
      const cipher = createCipheriv('aes-256-gcm', active.key, iv);
      cipher.setAAD(Buffer.from(context));
      const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final(), cipher.getAuthTag()]);
      return { keyId: active.id, ciphertext: `${iv.toString('base64url')}.${body.toString('base64url')}` };
    },
    open(sealed, context) {
      const key = byId.get(sealed.keyId);
      if (!key) throw new Error(`no master key with id ${sealed.keyId}`);
      const [ivPart, bodyPart] = sealed.ciphertext.split('.');
      const iv = Buffer.from(ivPart ?? '', 'base64url');
      const body = Buffer.from(bodyPart ?? '', 'base64url');
      if (iv.length !== 12 || body.length < 16) throw new Error('malformed sealed value');
      const decipher = createDecipheriv('aes-256-gcm', key, iv, { authTagLength: 16 });
      decipher.setAAD(Buffer.from(context));
      decipher.setAuthTag(body.subarray(body.length - 16));
      return Buffer.concat([decipher.update(body.subarray(0, body.length - 16)), decipher.final()]).toString(
        'utf8',
      );
    },
  };
}

/** A new random master key, as `WOOLLY_MASTER_KEYS` wants it. */
export function makeMasterKey(id: string): MasterKey {
  return { id, key: randomBytes(32) };
}

export const API_TOKEN_PREFIX = 'wly_';

/** A new API token: the token is shown once; only its hash is stored. */
export function makeApiToken(): { token: string; prefix: string; hash: string } {
  const token = `${API_TOKEN_PREFIX}${randomBytes(32).toString('base64url')}`;
  return { token, prefix: token.slice(0, 12), hash: hashToken(token) };
}

/** Tokens carry 256 random bits, so a fast hash is enough; lookup is by this hash. */
export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

const SCRYPT = { N: 2 ** 15, r: 8, p: 1, maxmem: 64 * 1024 * 1024 };

/** scrypt password hash in `scrypt$N$r$p$salt$hash` form. */
export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const hash = await scryptAsync(password, salt, 32, SCRYPT);
  return [
    'scrypt',
    SCRYPT.N,
    SCRYPT.r,
    SCRYPT.p,
    salt.toString('base64url'),
    hash.toString('base64url'),
  ].join('$');
}

const isPowerOfTwo = (n: number) => Number.isInteger(n) && n > 1 && (n & (n - 1)) === 0;

/**
 * Constant-time check of a password against `hashPassword`'s output. A stored value that is
 * malformed, or whose parameters are out of the range this code writes, never verifies: its
 * cost parameters are not trusted (a huge N would stall the process).
 */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const [scheme, n, r, p, salt, hash, ...rest] = stored.split('$');
  const params = { N: Number(n), r: Number(r), p: Number(p) };
  const expected = Buffer.from(hash ?? '', 'base64url');
  const saltBytes = Buffer.from(salt ?? '', 'base64url');
  const sane =
    scheme === 'scrypt' &&
    rest.length === 0 &&
    isPowerOfTwo(params.N) &&
    params.N >= 2 ** 14 &&
    params.N <= 2 ** 17 &&
    Number.isInteger(params.r) &&
    params.r >= 1 &&
    params.r <= 16 &&
    Number.isInteger(params.p) &&
    params.p >= 1 &&
    params.p <= 4 &&
    saltBytes.length >= 16 &&
    expected.length === 32;
  if (!sane) return false;
  const actual = await scryptAsync(password, saltBytes, expected.length, {
    ...params,
    maxmem: SCRYPT.maxmem * 2,
  });
  return timingSafeEqual(actual, expected);
}

/** A random password a person can copy: 24 characters of base64url. */
export function makePassword(): string {
  return randomBytes(18).toString('base64url');
}

/**
 * For a local `woolly start` without WOOLLY_MASTER_KEYS: a key kept beside the embedded
 * database (mode 600), made on first start. Production must set WOOLLY_MASTER_KEYS.
 */
export async function readOrCreateLocalMasterKey(file: string): Promise<MasterKey> {
  const { readFile, writeFile } = await import('node:fs/promises');
  const existing = await readFile(file, 'utf8').catch(() => null);
  if (existing) {
    const [id, encoded] = existing.trim().split(':');
    const key = Buffer.from(encoded ?? '', 'base64');
    if (!id || key.length !== 32) throw new Error(`${file} is not a master key file (id:base64)`);
    return { id, key };
  }
  const created = makeMasterKey('local1');
  await writeFile(file, `${created.id}:${created.key.toString('base64')}\n`, { mode: 0o600, flag: 'wx' });
  return created;
}
