import { Resolver } from 'node:dns/promises';

/** How long a verification may wait for DNS: it runs while the caller's request waits. */
export const DNS_TIMEOUT_MS = 2000;

/** What a TXT lookup found; a lookup never throws. */
export type TxtLookup =
  /** The name has TXT records; each value is its character-strings joined. */
  | { outcome: 'found'; values: string[] }
  /** The name does not exist (NXDOMAIN). */
  | { outcome: 'nxdomain' }
  /** The name exists but has no TXT record. */
  | { outcome: 'nodata' }
  /** No answer within the timeout. */
  | { outcome: 'timeout' }
  /** Any other failure (SERVFAIL, REFUSED, unreachable), by its node:dns code. */
  | { outcome: 'failed'; code: string };

/** The outside system custom-domain checks talk to: DNS, through node:dns (c-ares). */
export interface DnsResolver {
  lookupTxt(name: string): Promise<TxtLookup>;
}

/**
 * A resolver asking `servers` (`ip:port`; empty: the system's resolvers). c-ares waits
 * `timeoutMs` for each server it tries, so a deadline also cancels the whole lookup: with
 * several servers listed, it still ends within `timeoutMs`.
 */
export function makeDnsResolver(options: { servers: readonly string[]; timeoutMs?: number }): DnsResolver {
  const timeoutMs = options.timeoutMs ?? DNS_TIMEOUT_MS;
  return {
    async lookupTxt(name) {
      // One Resolver per lookup, so that cancelling it cancels nothing else.
      const resolver = new Resolver({ timeout: timeoutMs, tries: 1 });
      if (options.servers.length > 0) resolver.setServers(options.servers);
      const deadline = setTimeout(() => resolver.cancel(), timeoutMs);
      try {
        const records = await resolver.resolveTxt(name);
        return { outcome: 'found', values: records.map((chunks) => chunks.join('')) };
      } catch (error) {
        const code = String((error as { code?: unknown }).code ?? 'unknown');
        switch (code) {
          case 'ENOTFOUND':
            return { outcome: 'nxdomain' };
          case 'ENODATA':
            return { outcome: 'nodata' };
          case 'ETIMEOUT':
          case 'ECANCELLED':
            return { outcome: 'timeout' };
          default:
            return { outcome: 'failed', code };
        }
      } finally {
        clearTimeout(deadline);
      }
    },
  };
}
