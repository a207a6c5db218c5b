import type { Request } from 'express';
import passport from 'passport';
import { Strategy as BearerStrategy } from 'passport-http-bearer';
import { API_TOKEN_PREFIX, hashToken } from '../../core/crypto.ts';
import { AppError } from '../../core/errors.ts';
import type { Actor, ApiDeps, Scope } from '../context.ts';

const LAST_USED_GRANULARITY_MS = 60_000;

/**
 * Registers the bearer-token strategy: a token is looked up by its SHA-256, must be neither
 * revoked nor expired, and yields an Actor carrying the token's scopes.
 */
export function useBearerTokens(deps: ApiDeps): void {
  passport.use(
    new BearerStrategy(async (token, done) => {
      try {
        if (!token.startsWith(API_TOKEN_PREFIX)) return done(null, false);
        const now = new Date();
        const record = await deps.db.apiToken.findUnique({
          where: { tokenHash: hashToken(token) },
          include: { user: true },
        });
        if (!record || record.revokedAt || (record.expiresAt && record.expiresAt <= now))
          return done(null, false);
        if (!record.lastUsedAt || now.getTime() - record.lastUsedAt.getTime() > LAST_USED_GRANULARITY_MS) {
          await deps.db.apiToken.update({ where: { id: record.id }, data: { lastUsedAt: now } });
        }
        const actor: Actor = {
          userId: record.userId,
          email: record.user.email,
          staffRole: record.user.staffRole,
          scopes: record.scopes as Scope[],
          tokenId: record.id,
        };
        return done(null, actor);
      } catch (error) {
        return done(error);
      }
    }),
  );
}

/** The authenticated caller; throws `unauthenticated` when the request has none. */
export function getActor(req: Request): Actor {
  if (!req.user)
    throw new AppError('unauthenticated', 'Send a valid API token as "Authorization: Bearer <token>".');
  return req.user as Actor;
}

/** Throws `forbidden` unless the caller's token carries `scope` (or `admin`). */
export function requireScope(actor: Actor, scope: Scope): void {
  if (!actor.scopes.includes(scope) && !actor.scopes.includes('admin')) {
    throw new AppError('forbidden', `This token lacks the "${scope}" scope.`);
  }
}
