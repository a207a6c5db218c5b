import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Request, RequestHandler } from 'express';
import { AppError } from '../../core/errors.ts';
import type { Actor } from '../context.ts';

/** The header a signed-in browser sends its CSRF token in. */
export const CSRF_HEADER = 'X-CSRF-Token';

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * Changes a browser may send without a CSRF token: they make the session (sign-in, sign-up)
 * or prove themselves otherwise (the verification token). Matched on a normalised path; a
 * variant that slips past this list is asked for a token, which is the safe way to fail.
 */
const TOKEN_EXEMPT = new Set(['POST /v1/session', 'POST /v1/signup', 'POST /v1/signup/verify']);

/** A new synchronizer token, kept in the session and handed to the signed-in page. */
export function makeCsrfToken(): string {
  return randomBytes(32).toString('base64url');
}

function sameSecret(given: string, expected: string): boolean {
  const digest = (value: string) => createHash('sha256').update(value).digest();
  return timingSafeEqual(digest(given), digest(expected));
}

/**
 * Refuses a request a browser sent from another site. `Sec-Fetch-Site` must be `same-origin`
 * or `none` (typed, bookmarked): `same-site` is refused too, because customers' Mastodon
 * servers live on subdomains of the same site. Without it, `Origin` must be this API's own
 * (as reached, or as configured). Clients that send neither (curl, scripts) are not browsers
 * and pass.
 */
export function assertSameOrigin(req: Request, publicOrigin: string): void {
  const site = req.get('sec-fetch-site');
  if (site !== undefined) {
    if (site === 'same-origin' || site === 'none') return;
    throw new AppError('forbidden', 'Cross-site requests are refused here.');
  }
  const origin = req.get('origin');
  if (origin === undefined) return;
  if (origin === publicOrigin || origin === `${req.protocol}://${req.host}`) return;
  throw new AppError('forbidden', 'Cross-site requests are refused here.');
}

/**
 * CSRF protection for browsers. A change (POST, PUT, PATCH, DELETE) that does not carry an API
 * token must come from this site (see `assertSameOrigin`); one authenticated by the session
 * cookie must also echo the session's synchronizer token in `X-CSRF-Token`. Runs before any
 * route, so a refused request writes nothing. API tokens are never sent by a browser on its
 * own, so bearer requests need neither.
 */
export function requireCsrfToken(options: { publicUrl: string }): RequestHandler {
  const publicOrigin = new URL(options.publicUrl).origin;
  return (req, _res, next) => {
    if (SAFE_METHODS.has(req.method)) return next();
    const actor = req.user as Actor | undefined;
    if (actor?.authMethod === 'token') return next();
    assertSameOrigin(req, publicOrigin);
    const route = `${req.method} ${req.path.toLowerCase().replace(/\/+$/, '')}`;
    if (actor?.authMethod !== 'session' || TOKEN_EXEMPT.has(route)) return next();
    const expected = req.session?.csrfToken;
    const given = req.get(CSRF_HEADER);
    if (!expected || !given || !sameSecret(given, expected)) {
      throw new AppError(
        'forbidden',
        `Changes made with a session cookie need the ${CSRF_HEADER} header: the csrfToken from POST or GET /v1/session.`,
      );
    }
    next();
  };
}
