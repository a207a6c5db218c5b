import { isIP } from 'node:net';
import { AppError } from '../errors.ts';
import { invalidHostname, normaliseHostname, normaliseServerDomain } from './domain-name.ts';

/**
 * Top-level names that never resolve on the public internet (RFC 6761 `localhost` and
 * `invalid`, RFC 6762 `local`, RFC 7686 `onion`, RFC 9476 `alt`, `arpa`, ICANN's `internal`):
 * a Mastodon server there could not federate. `test` and `example` stay allowed, because
 * development and test setups use them.
 */
const SPECIAL_USE_TLDS = new Set(['alt', 'arpa', 'internal', 'invalid', 'local', 'localhost', 'onion']);

/** The label under a claimed hostname where its TXT record lives. */
export const CHALLENGE_LABEL = '_woolly-challenge';

/** The DNS record an organization publishes to prove it controls `hostname`. */
export interface ChallengeRecord {
  type: 'TXT';
  name: string;
  value: string;
}

export function challengeRecord(hostname: string, verificationToken: string): ChallengeRecord {
  return {
    type: 'TXT',
    name: `${CHALLENGE_LABEL}.${hostname}`,
    value: `woolly-verification=${verificationToken}`,
  };
}

/** True when `domain` is `parent` or a name under it (both normalised). */
export function isSameOrSubdomain(domain: string, parent: string): boolean {
  return domain === parent || domain.endsWith(`.${parent}`);
}

function checkCustomHostname(input: string, baseDomain: string, field: string): string {
  if (isIP(input.trim().replace(/^\[(.*)\]$/, '$1')) !== 0)
    throw invalidHostname(
      field,
      `An IP address cannot be a ${field}; use a host name such as social.example.org.`,
    );
  const hostname = normaliseHostname(input, field);
  const labels = hostname.split('.');
  const tld = labels.at(-1) ?? '';
  if (labels.length < 2)
    throw invalidHostname(field, `The ${field} needs at least two labels, such as social.example.org.`);
  // An all-numeric top-level label is what an IPv4 address (or a shorthand of one) looks like.
  if (/^[0-9]+$/.test(tld))
    throw invalidHostname(
      field,
      `The ${field} cannot end in a number; use a host name such as social.example.org.`,
    );
  if (SPECIAL_USE_TLDS.has(tld))
    throw invalidHostname(field, `Names under .${tld} are reserved and do not resolve on the internet.`);
  if (isSameOrSubdomain(hostname, baseDomain)) {
    throw invalidHostname(
      field,
      `Names under ${baseDomain} need no claim: order the server at <name>.${baseDomain} directly.`,
    );
  }
  return hostname;
}

/**
 * Checks a hostname an organization wants to claim and returns it normalised: an RFC 1123
 * host name (see `normaliseHostname`) of at least two labels, not an IP address, not under a
 * special-use top-level name, and not under the base domain (those need no claim).
 */
export function normaliseCustomDomain(input: string, baseDomain: string): string {
  return checkCustomHostname(input, baseDomain, 'hostname');
}

/**
 * Checks a requested server domain against what its organization may use, and returns it
 * normalised: a name directly under the base domain (`normaliseServerDomain`), or a hostname
 * in `verifiedHostnames` (the organization's verified claims) or a name under one. A
 * well-formed name outside both is `unprocessable`, naming the `domain` field.
 */
export function acceptServerDomain(
  input: string,
  baseDomain: string,
  verifiedHostnames: readonly string[],
): string {
  const domain = normaliseHostname(input, 'domain');
  if (isSameOrSubdomain(domain, baseDomain)) return normaliseServerDomain(input, baseDomain);
  checkCustomHostname(input, baseDomain, 'domain');
  if (verifiedHostnames.some((hostname) => isSameOrSubdomain(domain, hostname))) return domain;
  throw new AppError(
    'unprocessable',
    `${domain} is neither under ${baseDomain} nor at or under a domain this organization has verified. Claim ${domain} (or a domain above it) with POST /v1/organizations/{id}/domains, publish the TXT record that returns, then verify it with POST /v1/organizations/{id}/domains/{domainId}/verify.`,
    {
      errors: [
        {
          field: 'domain',
          message: 'Not a verified domain of this organization: claim it and verify it first.',
        },
      ],
    },
  );
}
