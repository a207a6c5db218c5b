import { hkdfSync, randomBytes } from 'node:crypto';
import connectPgSimple from 'connect-pg-simple';
import type { Request, RequestHandler, Response } from 'express';
import session from 'express-session';
import passport from 'passport';
import type { Config } from '../../core/config.ts';
import type { Actor, ApiDeps, Scope } from '../context.ts';
import { makeCsrfToken } from './csrf.ts';
import { makeLocalStrategy } from './local.ts';

declare module 'express-session' {
  interface SessionData {
    /** The synchronizer token that cookie-authenticated changes must echo (api/auth/csrf.ts). */
    csrfToken: string;
  }
}

/** The session cookie's name. */
export const SESSION_COOKIE = 'woolly.sid';

type StaffRole = Actor['staffRole'];

/** A session holds every scope of its user's role: staff `admin`, customers all the others. */
export function sessionScopes(staffRole: StaffRole): readonly Scope[] {
  return staffRole ? ['admin'] : ['instances:read', 'instances:write', 'billing:read'];
}

/** The caller a signed-in user is. */
export function makeSessionActor(user: { id: string; email: string; staffRole: StaffRole }): Actor {
  return {
    userId: user.id,
    email: user.email,
    staffRole: user.staffRole,
    scopes: sessionScopes(user.staffRole),
    authMethod: 'session',
    tokenId: null,
  };
}

/**
 * The secrets the session cookie is signed with: the first signs, all are accepted.
 *
 * Production must set WOOLLY_SESSION_SECRET (config refuses to start without it). Elsewhere
 * `npm start` must work with nothing configured, yet sessions should survive a restart, so
 * the secret is derived (HKDF-SHA256 under its own label, which reveals nothing of the key)
 * from the master keys, which are stable and secret already: WOOLLY_MASTER_KEYS, or the local
 * key that `woolly start` makes before it serves (it passes the keys in force in `config`).
 * One secret per master key keeps sessions valid across a key rotation. With no key at all (tests) a random secret is used
 * and sessions end with the process.
 */
export function sessionSecrets(config: Config): string[] {
  if (config.session.secret) return [config.session.secret];
  if (config.masterKeys.length === 0) return [randomBytes(32).toString('base64url')];
  return config.masterKeys.map(({ key }) =>
    Buffer.from(hkdfSync('sha256', key, Buffer.alloc(0), 'woolly:session-cookie', 32)).toString('base64url'),
  );
}

/** Cookie sessions: the middleware to mount, and the authenticator that signs people in. */
export interface Sessions {
  middleware: RequestHandler[];
  authenticator: passport.Authenticator;
}

/**
 * Cookie sessions kept in PostgreSQL (table `session`, connect-pg-simple's layout, made by the
 * migrations). The cookie is HttpOnly, SameSite=Lax, Secure when the request came over TLS
 * (`trust proxy` decides what a proxy may say), and expires after `idleMinutes` without a
 * request (rolling). Nothing is stored for a caller who has not signed in. A session holds
 * the user's id and its CSRF token; the user is read again on every request, so a changed
 * role or a deleted user takes effect at once.
 *
 * Its own passport instance keeps the session serializers apart from the process-wide
 * bearer strategy, so two apps in one process (tests) never share them.
 */
export function makeSessions(deps: ApiDeps): Sessions {
  const PgStore = connectPgSimple(session);
  const store = new PgStore({
    pool: deps.pool,
    tableName: 'session',
    createTableIfMissing: false,
    errorLog: (...args: unknown[]) => deps.log.error('session store failed', { error: args.at(-1) }),
  });
  const authenticator = new passport.Passport();
  authenticator.use('local', makeLocalStrategy(deps));
  authenticator.serializeUser((user, done) => done(null, (user as Actor).userId));
  authenticator.deserializeUser((id: string, done) => {
    findSessionActor(deps, id).then((actor) => done(null, actor ?? false), done);
  });
  return {
    authenticator,
    middleware: [
      session({
        name: SESSION_COOKIE,
        secret: sessionSecrets(deps.config),
        store,
        resave: false,
        saveUninitialized: false,
        rolling: true,
        unset: 'destroy',
        cookie: {
          httpOnly: true,
          sameSite: 'lax',
          secure: 'auto',
          path: '/',
          maxAge: deps.config.session.idleMinutes * 60_000,
        },
      }),
      authenticator.initialize(),
      authenticator.session(),
    ],
  };
}

/** The actor of a session's user; null when the user no longer exists. */
async function findSessionActor(deps: ApiDeps, userId: string): Promise<Actor | null> {
  // Plain SQL: every cookie-authenticated request pays for this lookup (see README, Performance).
  const { rows } = await deps.pool.query<{ id: string; email: string; staffRole: StaffRole }>(
    'select id, email, "staffRole"::text as "staffRole" from "User" where id = $1',
    [userId],
  );
  return rows[0] ? makeSessionActor(rows[0]) : null;
}

/**
 * Signs `actor` in: a new session id (the old one, which someone may have planted, is
 * dropped), then a new CSRF token, which is returned.
 */
export async function startSession(req: Request, actor: Actor): Promise<string> {
  await new Promise<void>((resolve, reject) =>
    req.logIn(actor, (error) => (error ? reject(error) : resolve())),
  );
  const csrfToken = makeCsrfToken();
  req.session.csrfToken = csrfToken;
  await new Promise<void>((resolve, reject) =>
    req.session.save((error) => (error ? reject(error) : resolve())),
  );
  return csrfToken;
}

/** The CSRF token of the request's session (one is made for a session that lacks it). */
export function sessionCsrfToken(req: Request): string {
  req.session.csrfToken ??= makeCsrfToken();
  return req.session.csrfToken;
}

/** Ends the request's session: its row is deleted and the browser told to drop the cookie. */
export async function endSession(req: Request, res: Response): Promise<void> {
  await new Promise<void>((resolve, reject) =>
    req.session.destroy((error) => (error ? reject(error) : resolve())),
  );
  req.user = undefined;
  res.clearCookie(SESSION_COOKIE, { path: '/', httpOnly: true, sameSite: 'lax', secure: req.secure });
}
