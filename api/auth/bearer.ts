import type { Request } from 'express';
import passport from 'passport';
import { Strategy as BearerStrategy } from 'passport-http-bearer';
import { API_TOKEN_PREFIX, hashToken } from '../../core/crypto.ts';
import { AppError } from '../../core/errors.ts';
import type { Actor, ApiDeps, Scope } from '../context.ts';

const LAST_USED_GRANULARITY_MS = 60_000;

interface TokenRow {
  id: string;
  userId: string;
  scopes: string[];
  lastUsedAt: Date | null;
  email: string;
  staffRole: 'ops' | 'admin' | null;
}

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
        // Every authenticated request pays for this lookup: one prepared statement on plain pg
        // (see README, Performance).
        const { rows } = await deps.pool.query<TokenRow>({
          name: 'bearer-token',
          text: `select t.id, t."userId", t.scopes, t."lastUsedAt", u.email, u."staffRole"::text as "staffRole"
                   from "ApiToken" t join "User" u on u.id = t."userId"
                  where t."tokenHash" = $1 and t."revokedAt" is null
                    and (t."expiresAt" is null or t."expiresAt" > $2)`,
          values: [hashToken(token), now],
        });
        const [record] = rows;
        if (!record) return done(null, false);
        if (!record.lastUsedAt || now.getTime() - record.lastUsedAt.getTime() > LAST_USED_GRANULARITY_MS) {
          await deps.pool.query({
            name: 'bearer-token-used',
            text: 'update "ApiToken" set "lastUsedAt" = $1 where id = $2',
            values: [now, record.id],
          });
        }
        const actor: Actor = {
          userId: record.userId,
          email: record.email,
          staffRole: record.staffRole,
          scopes: record.scopes as Scope[],
          authMethod: 'token',
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
    throw new AppError(
      'unauthenticated',
      'Sign in (POST /v1/session) or send a valid API token as "Authorization: Bearer <token>".',
    );
  return req.user as Actor;
}

/** Throws `forbidden` unless the caller's token carries `scope` (or `admin`). */
export function requireScope(actor: Actor, scope: Scope): void {
  if (!actor.scopes.includes(scope) && !actor.scopes.includes('admin')) {
    throw new AppError('forbidden', `This token lacks the "${scope}" scope.`);
  }
}
