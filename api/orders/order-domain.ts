import { acceptServerDomain } from '../../core/domain/custom-domain.ts';
import { normaliseHostname } from '../../core/domain/domain-name.ts';
import { AppError } from '../../core/errors.ts';

/**
 * The one decision on the domain of a new server, shared by `POST /v1/orders` (createOrder)
 * and `GET /v1/domains/check` (checkServerDomain), so that the check can never say yes to a
 * name the order refuses, or the other way round.
 */

/** What the decision needs to know, read in the same query as the caller's access. */
export interface OrderDomainFacts {
  /** Hostnames the organization has verified (custom domains). */
  verifiedDomains: string[];
  /** Whether a server, of any organization and in any state (deleted too), holds `domainLookupKey`. */
  domainTaken: boolean;
}

/**
 * The name to look up as `domainTaken`: the input normalised as `acceptOrderDomain` would
 * return it, or null when it is no host name at all (it is refused before being looked up).
 */
export function domainLookupKey(input: string): string | null {
  try {
    return normaliseHostname(input, 'domain');
  } catch {
    return null;
  }
}

/**
 * Returns the domain normalised, or throws the AppError the order is refused with: malformed
 * or reserved (`validation_failed`), outside the base domain and the organization's verified
 * domains (`unprocessable`), or held by a server now or before (`domain_unavailable`: Mastodon
 * domains are never reused). The unique index on `Instance.domain` still decides a race between
 * two orders (`domainTaken`).
 */
export function acceptOrderDomain(input: string, baseDomain: string, facts: OrderDomainFacts): string {
  const domain = acceptServerDomain(input, baseDomain, facts.verifiedDomains);
  if (facts.domainTaken) throw domainTaken(domain);
  return domain;
}

export function domainTaken(domain: string): AppError {
  return new AppError(
    'domain_unavailable',
    `The domain ${domain} is taken or was used before; Mastodon domains are never reused.`,
    {
      errors: [{ field: 'domain', message: 'Already in use.' }],
    },
  );
}
