import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  acceptServerDomain,
  challengeRecord,
  isSameOrSubdomain,
  normaliseCustomDomain,
} from '../../../core/domain/custom-domain.ts';
import { normaliseHostname } from '../../../core/domain/domain-name.ts';
import { AppError } from '../../../core/errors.ts';

const BASE = 'woolly.test';

/** Asserts the call is refused with `code`, as one field error on `field`. */
function assertRefused(run: () => unknown, field: string, code = 'validation_failed'): AppError {
  let caught: unknown;
  assert.throws(run, (error: unknown) => {
    caught = error;
    return true;
  });
  assert.ok(caught instanceof AppError, `expected an AppError, got ${String(caught)}`);
  assert.equal(caught.code, code);
  assert.equal(caught.errors?.length, 1);
  assert.equal(caught.errors?.[0]?.field, field);
  return caught;
}

describe('normaliseCustomDomain', () => {
  test('a host name of two or more labels is accepted, normalised', () => {
    assert.equal(normaliseCustomDomain('chess.example', BASE), 'chess.example');
    assert.equal(normaliseCustomDomain('  Social.Chess.EXAMPLE.  ', BASE), 'social.chess.example');
    assert.equal(normaliseCustomDomain('xn--mnchen-3ya.example', BASE), 'xn--mnchen-3ya.example');
  });

  test('names such as www or api are the customer’s own under their domain', () => {
    assert.equal(normaliseCustomDomain('www.chess.example', BASE), 'www.chess.example');
  });

  const refused: [string, string][] = [
    ['an IPv4 address', '192.0.2.10'],
    ['an IPv6 address', '2001:db8::1'],
    ['a bracketed IPv6 address', '[2001:db8::1]'],
    ['a name ending in a number', 'chess.123'],
    ['a single label', 'chess'],
    ['a name under the base domain', `chess.${BASE}`],
    ['the base domain itself', BASE],
    ['the base domain in upper case', 'WOOLLY.TEST'],
    ['a special-use name', 'chess.localhost'],
    ['an onion name', 'chess.onion'],
    ['a Cyrillic lookalike typed as Unicode', 'chess.exаmple'],
    ['the Kelvin sign, which lower-cases to k', 'chess.\u212aexample'],
    ['a punycode label mixing Latin and Cyrillic', 'xn--pypal-4ve.example'],
    ['a punycode label that does not decode', 'xn--abc.example'],
    ['an underscore', 'chess_club.example'],
    ['an empty label', 'chess..example'],
    ['empty', ''],
  ];
  for (const [why, input] of refused) {
    test(`refuses ${why}`, () => {
      assertRefused(() => normaliseCustomDomain(input, BASE), 'hostname');
    });
  }

  test('a refusal under the base domain says what to do instead', () => {
    const error = assertRefused(() => normaliseCustomDomain(`chess.${BASE}`, BASE), 'hostname');
    assert.match(error.detail, /order the server at <name>\.woolly\.test directly/);
  });
});

describe('normaliseHostname', () => {
  test('names the field it was given', () => {
    assertRefused(() => normaliseHostname('bad_name.example', 'origin'), 'origin');
  });
});

describe('acceptServerDomain', () => {
  const verified = ['chess.example'];

  test('a name directly under the base domain needs no claim', () => {
    assert.equal(acceptServerDomain('Club.woolly.test', BASE, []), 'club.woolly.test');
  });

  test('names under the base domain keep their own rules (reserved, one level)', () => {
    assertRefused(() => acceptServerDomain(`www.${BASE}`, BASE, verified), 'domain');
    assertRefused(() => acceptServerDomain(`a.b.${BASE}`, BASE, verified), 'domain');
  });

  test('a verified hostname and names under it are accepted', () => {
    assert.equal(acceptServerDomain('chess.example', BASE, verified), 'chess.example');
    assert.equal(acceptServerDomain('Social.Chess.Example.', BASE, verified), 'social.chess.example');
    assert.equal(acceptServerDomain('a.b.chess.example', BASE, verified), 'a.b.chess.example');
  });

  test('a name that only ends like a verified hostname is refused', () => {
    const error = assertRefused(
      () => acceptServerDomain('evilchess.example', BASE, verified),
      'domain',
      'unprocessable',
    );
    assert.match(error.detail, /Claim evilchess\.example .* then verify it/);
  });

  test('the parent of a verified hostname is refused', () => {
    assertRefused(
      () => acceptServerDomain('example.org', BASE, ['social.example.org']),
      'domain',
      'unprocessable',
    );
  });

  test('a malformed name is refused as invalid before any claim is considered', () => {
    assertRefused(() => acceptServerDomain('192.0.2.10', BASE, verified), 'domain');
    assertRefused(() => acceptServerDomain('chess', BASE, verified), 'domain');
  });
});

describe('challenge records', () => {
  test('the record lives under _woolly-challenge and carries the token', () => {
    assert.deepEqual(challengeRecord('chess.example', 'tok_123'), {
      type: 'TXT',
      name: '_woolly-challenge.chess.example',
      value: 'woolly-verification=tok_123',
    });
  });

  test('isSameOrSubdomain matches whole labels only', () => {
    assert.equal(isSameOrSubdomain('chess.example', 'chess.example'), true);
    assert.equal(isSameOrSubdomain('a.chess.example', 'chess.example'), true);
    assert.equal(isSameOrSubdomain('achess.example', 'chess.example'), false);
    assert.equal(isSameOrSubdomain('example', 'chess.example'), false);
  });
});
