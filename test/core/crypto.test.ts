import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  API_TOKEN_PREFIX,
  hashPassword,
  hashToken,
  makeApiToken,
  makeMasterKey,
  makePassword,
  makeSecretBox,
  readOrCreateLocalMasterKey,
  type Sealed,
  verifyPassword,
} from '../../core/crypto.ts';

const CONTEXT = 'instance:abc:SECRET_KEY_BASE';

/** The same sealed value with one character of its ciphertext changed at `index`. */
function tamper(sealed: Sealed, index: number): Sealed {
  const chars = [...sealed.ciphertext];
  assert.notEqual(chars[index], '.', 'tamper with data, not the separator');
  chars[index] = chars[index] === 'A' ? 'B' : 'A';
  return { ...sealed, ciphertext: chars.join('') };
}

describe('makeSecretBox', () => {
  test('a sealed value opens back to the plaintext', () => {
    const box = makeSecretBox([makeMasterKey('k1')]);
    for (const plaintext of ['s3cr3t', '', 'émoji 🐑 and\nnewlines', 'x'.repeat(10_000)]) {
      assert.equal(box.open(box.seal(plaintext, CONTEXT), CONTEXT), plaintext);
    }
  });

  test('sealing the same plaintext twice gives different ciphertexts', () => {
    const box = makeSecretBox([makeMasterKey('k1')]);
    const first = box.seal('same', CONTEXT);
    const second = box.seal('same', CONTEXT);
    assert.notEqual(first.ciphertext, second.ciphertext);
    assert.notEqual(first.ciphertext.split('.')[0], second.ciphertext.split('.')[0], 'a fresh IV each time');
  });

  test('the ciphertext does not contain the plaintext', () => {
    const box = makeSecretBox([makeMasterKey('k1')]);
    const sealed = box.seal('plain-words-here', CONTEXT);
    assert.ok(!sealed.ciphertext.includes('plain'));
    assert.ok(!Buffer.from(sealed.ciphertext.split('.')[1] ?? '', 'base64url').includes('plain-words'));
  });

  test('a value sealed for one context does not open in another', () => {
    const box = makeSecretBox([makeMasterKey('k1')]);
    const sealed = box.seal('s3cr3t', 'instance:abc:SECRET_KEY_BASE');
    assert.throws(() => box.open(sealed, 'instance:xyz:SECRET_KEY_BASE'));
    assert.throws(() => box.open(sealed, ''));
  });

  test('changing one character of the ciphertext or of the IV makes it fail to open', () => {
    const box = makeSecretBox([makeMasterKey('k1')]);
    const sealed = box.seal('a secret long enough to have a middle', CONTEXT);
    const dot = sealed.ciphertext.indexOf('.');
    for (const index of [0, dot - 2, dot + 1, dot + 5, dot + 13]) {
      assert.throws(() => box.open(tamper(sealed, index), CONTEXT), Error, `tampered at ${index}`);
    }
    assert.equal(box.open(sealed, CONTEXT), 'a secret long enough to have a middle');
  });

  test('a truncated ciphertext fails to open', () => {
    const box = makeSecretBox([makeMasterKey('k1')]);
    const sealed = box.seal('s3cr3t', CONTEXT);
    assert.throws(() => box.open({ ...sealed, ciphertext: sealed.ciphertext.slice(0, -4) }, CONTEXT));
    assert.throws(() => box.open({ ...sealed, ciphertext: sealed.ciphertext.split('.')[0] ?? '' }, CONTEXT));
  });

  test('after rotation old values still open and new values are sealed with the new key', () => {
    const oldKey = makeMasterKey('old');
    const newKey = makeMasterKey('new');
    const sealedBefore = makeSecretBox([oldKey]).seal('from last year', CONTEXT);
    assert.equal(sealedBefore.keyId, 'old');

    const rotated = makeSecretBox([newKey, oldKey]);
    assert.equal(rotated.open(sealedBefore, CONTEXT), 'from last year');

    const sealedAfter = rotated.seal('from today', CONTEXT);
    assert.equal(sealedAfter.keyId, 'new');
    assert.equal(makeSecretBox([newKey]).open(sealedAfter, CONTEXT), 'from today');
    assert.throws(() => makeSecretBox([{ id: 'new', key: oldKey.key }]).open(sealedAfter, CONTEXT));
  });

  test('a value whose key id is unknown fails to open, naming the id', () => {
    const sealed = makeSecretBox([makeMasterKey('retired')]).seal('s3cr3t', CONTEXT);
    const box = makeSecretBox([makeMasterKey('k1')]);
    assert.throws(() => box.open(sealed, CONTEXT), /retired/);
  });

  test('a value relabelled with another key id fails to open', () => {
    const box = makeSecretBox([makeMasterKey('k2'), makeMasterKey('k1')]);
    const sealed = box.seal('s3cr3t', CONTEXT);
    assert.throws(() => box.open({ ...sealed, keyId: 'k1' }, CONTEXT));
  });

  test('a box cannot be made without a key', () => {
    assert.throws(() => makeSecretBox([]), /at least one master key/);
  });
});

describe('API tokens', () => {
  test('a token starts with wly_ and is stored only as its sha256 hex hash', () => {
    const { token, prefix, hash } = makeApiToken();
    assert.equal(API_TOKEN_PREFIX, 'wly_');
    assert.match(token, /^wly_[A-Za-z0-9_-]{43}$/);
    assert.ok(token.startsWith(prefix));
    assert.ok(prefix.startsWith('wly_') && prefix.length < token.length);
    assert.match(hash, /^[0-9a-f]{64}$/);
    assert.notEqual(hash, token);
    assert.equal(hash, createHash('sha256').update(token).digest('hex'));
    assert.equal(hashToken(token), hash);
  });

  test('two tokens and their hashes differ', () => {
    const first = makeApiToken();
    const second = makeApiToken();
    assert.notEqual(first.token, second.token);
    assert.notEqual(first.hash, second.hash);
  });
});

describe('passwords', () => {
  let stored: string;
  before(async () => {
    stored = await hashPassword('correct horse battery staple');
  });

  test('the stored form is scrypt with its parameters and does not contain the password', () => {
    assert.match(stored, /^scrypt\$32768\$8\$1\$[A-Za-z0-9_-]+\$[A-Za-z0-9_-]+$/);
    assert.ok(!stored.includes('correct horse'));
  });

  test('the right password verifies', async () => {
    assert.equal(await verifyPassword('correct horse battery staple', stored), true);
  });

  test('a wrong password does not verify', async () => {
    assert.equal(await verifyPassword('correct horse battery stapler', stored), false);
    assert.equal(await verifyPassword('', stored), false);
  });

  test('hashing the same password twice gives different stored forms that both verify', async () => {
    const again = await hashPassword('correct horse battery staple');
    assert.notEqual(again, stored);
    assert.equal(await verifyPassword('correct horse battery staple', again), true);
  });

  test('a malformed stored string does not verify', async () => {
    for (const malformed of [
      '',
      'not-a-hash',
      'scrypt$32768$8$1$',
      'scrypt$32768$8$1$c2FsdA$',
      'bcrypt$2b$10$abc',
    ]) {
      assert.equal(await verifyPassword('anything', malformed), false, JSON.stringify(malformed));
    }
  });

  test('a stored string whose hash part decodes to nothing does not verify', async () => {
    for (const malformed of ['scrypt$32768$8$1$c2FsdA$!!!', 'scrypt$32768$8$1$c2FsdA$=']) {
      assert.equal(await verifyPassword('anything', malformed), false, malformed);
    }
  });

  test('a stored string with non-numeric scrypt parameters does not verify', async () => {
    assert.equal(await verifyPassword('anything', 'scrypt$x$y$z$c2FsdA$aGFzaA'), false);
  });

  test('generated passwords are 24 URL-safe characters and differ', () => {
    const first = makePassword();
    assert.match(first, /^[A-Za-z0-9_-]{24}$/);
    assert.notEqual(first, makePassword());
  });
});

describe('readOrCreateLocalMasterKey', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'woolly-master-key-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('creates a 0600 key file on first call and reads the same key back afterwards', async () => {
    const file = path.join(dir, 'master.key');
    const created = await readOrCreateLocalMasterKey(file);
    assert.equal(created.key.length, 32);
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    assert.equal(await readFile(file, 'utf8'), `${created.id}:${created.key.toString('base64')}\n`);

    const read = await readOrCreateLocalMasterKey(file);
    assert.equal(read.id, created.id);
    assert.deepEqual(read.key, created.key);

    const sealed = makeSecretBox([created]).seal('survives a restart', CONTEXT);
    assert.equal(makeSecretBox([read]).open(sealed, CONTEXT), 'survives a restart');
  });

  test('a file that is not a master key is refused rather than overwritten', async () => {
    const file = path.join(dir, 'garbage.key');
    await writeFile(file, 'local1:dG9vIHNob3J0\n');
    await assert.rejects(readOrCreateLocalMasterKey(file), /not a master key file/);
    assert.equal(await readFile(file, 'utf8'), 'local1:dG9vIHNob3J0\n');
  });
});
