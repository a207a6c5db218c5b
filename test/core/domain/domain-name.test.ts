import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { normaliseServerDomain } from '../../../core/domain/domain-name.ts';
import { AppError } from '../../../core/errors.ts';

const BASE = 'woolly.test';

/** Asserts the domain is refused as a validation failure on the `domain` field. */
function assertRefused(input: string, baseDomain = BASE): void {
  assert.throws(
    () => normaliseServerDomain(input, baseDomain),
    (error: unknown) => {
      assert.ok(error instanceof AppError, `expected an AppError for ${JSON.stringify(input)}`);
      assert.equal(error.code, 'validation_failed');
      assert.equal(error.errors?.length, 1);
      assert.equal(error.errors?.[0]?.field, 'domain');
      assert.ok((error.errors?.[0]?.message ?? '').length > 0);
      return true;
    },
    `${JSON.stringify(input)} should be refused`,
  );
}

describe('normaliseServerDomain', () => {
  test('a name directly under the base domain is accepted as it is', () => {
    assert.equal(normaliseServerDomain('chess.woolly.test', BASE), 'chess.woolly.test');
  });

  test('upper case, a trailing dot and surrounding spaces are normalised away', () => {
    assert.equal(normaliseServerDomain('Chess.WOOLLY.test', BASE), 'chess.woolly.test');
    assert.equal(normaliseServerDomain('chess.woolly.test.', BASE), 'chess.woolly.test');
    assert.equal(normaliseServerDomain('  CHESS.woolly.test.  ', BASE), 'chess.woolly.test');
  });

  test('digits, inner hyphens and a 63-character label are accepted', () => {
    for (const name of ['c3', 'chess-club', '0day', 'a', 'a'.repeat(63)]) {
      assert.equal(normaliseServerDomain(`${name}.${BASE}`, BASE), `${name}.${BASE}`);
    }
  });

  test('the base domain given is the one enforced', () => {
    assert.equal(
      normaliseServerDomain('chess.hosted.example.com', 'hosted.example.com'),
      'chess.hosted.example.com',
    );
    assertRefused('chess.woolly.test', 'hosted.example.com');
  });

  const refused: [string, string][] = [
    ['empty', ''],
    ['only spaces', '   '],
    ['only a dot', '.'],
    ['longer than 253 characters', `${'a'.repeat(250)}.${BASE}`],
    ['a label of 64 characters', `${'a'.repeat(64)}.${BASE}`],
    ['a leading hyphen', `-chess.${BASE}`],
    ['a trailing hyphen', `chess-.${BASE}`],
    ['an underscore', `chess_club.${BASE}`],
    ['a space inside', `chess club.${BASE}`],
    ['unicode letters', `schäch.${BASE}`],
    ['a punctuation character', `chess!.${BASE}`],
    ['an empty label', `chess..${BASE}`],
    ['two trailing dots', `chess.${BASE}..`],
    ['a name under another domain', 'chess.example.com'],
    ['a lookalike suffix glued to the name', 'chesswoolly.test'],
    ['another lookalike suffix', 'evilwoolly.test'],
    ['the base domain as a prefix of another domain', `chess.${BASE}.evil.com`],
    ['two levels under the base domain', `a.b.${BASE}`],
    ['the bare base domain', BASE],
    ['the reserved name www', `www.${BASE}`],
    ['the reserved name api', `api.${BASE}`],
    ['the reserved name admin', `admin.${BASE}`],
    ['a reserved name in upper case', `WWW.${BASE}`],
  ];
  for (const [why, input] of refused) {
    test(`refuses ${why}`, () => assertRefused(input));
  }
});
