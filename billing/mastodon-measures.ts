/**
 * A hosted server's own count of its monthly active users, from Mastodon's admin measures API
 * (`POST /api/v1/admin/measures`, MASTODON.md), asked with the server's `admin:read` token
 * (the `ADMIN_API_TOKEN` secret the owner-account Job registers). The adapter the
 * `active_users` sampler reads through.
 */

/** Reads a server's active users over a range of whole UTC days. */
export interface ActiveUsersSource {
  /**
   * Distinct local users active from `from` through `to` (dates, `YYYY-MM-DD`), as the server
   * counts them. Throws `MeasureFailed` when the server does not answer with a count.
   */
  activeUsers(
    server: { domain: string; token: string },
    range: { from: string; to: string },
  ): Promise<number>;
}

/** The server did not answer with a count; the message names the server and status, never the token. */
export class MeasureFailed extends Error {
  override name = 'MeasureFailed';
}

interface Measure {
  key?: unknown;
  total?: unknown;
}

/**
 * The real source: servers are reached at `https://<domain>` (tests point `baseUrlOf` at a
 * stand-in). The body is a form, as Mastodon's Rails controllers take `keys[]`.
 */
export function makeMastodonMeasures(
  options: { fetch?: typeof fetch; baseUrlOf?: (domain: string) => string; timeoutMs?: number } = {},
): ActiveUsersSource {
  const post = options.fetch ?? fetch;
  const baseUrlOf = options.baseUrlOf ?? ((domain: string) => `https://${domain}`);
  return {
    async activeUsers(server, range) {
      const where = `active users of ${server.domain}`;
      const body = new URLSearchParams([
        ['keys[]', 'active_users'],
        ['start_at', range.from],
        ['end_at', range.to],
      ]);
      let response: Response;
      try {
        response = await post(`${baseUrlOf(server.domain)}/api/v1/admin/measures`, {
          method: 'POST',
          headers: { authorization: `Bearer ${server.token}`, accept: 'application/json' },
          body,
          signal: AbortSignal.timeout(options.timeoutMs ?? 30_000),
        });
      } catch (error) {
        throw new MeasureFailed(`${where}: the server did not answer (${(error as Error).message})`);
      }
      if (!response.ok) {
        await response.body?.cancel();
        throw new MeasureFailed(`${where}: HTTP ${response.status}`);
      }
      const measures = (await response.json().catch(() => null)) as Measure[] | null;
      const total = Array.isArray(measures)
        ? measures.find((measure) => measure.key === 'active_users')?.total
        : undefined;
      // Mastodon sends the total as a string of digits.
      if (typeof total !== 'string' || !/^\d+$/.test(total)) {
        throw new MeasureFailed(`${where}: the answer holds no active_users total`);
      }
      return Number(total);
    },
  };
}
