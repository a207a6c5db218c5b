import type { Request, Response } from 'express';
import { AppError } from '../../core/errors.ts';
import { audit } from '../audit.ts';
import type { Actor, ApiDeps } from '../context.ts';
import type { OperationHandlers } from '../openapi.ts';
import { type AccountRow, normaliseEmail, type SignInRefusal, signUp, verifyEmail } from './local.ts';
import type { Mailer } from './mailer.ts';
import { endSession, makeSessionActor, type Sessions, sessionCsrfToken, startSession } from './session.ts';

/** One answer for an unknown address and a wrong password, so neither tells which it was. */
const WRONG_CREDENTIALS = 'The e-mail address or password is wrong.';

const requestId = (res: Response) => (res.locals as { requestId: string }).requestId;

const presentUser = (user: AccountRow) => ({
  id: user.id,
  email: user.email,
  name: user.name,
  staffRole: user.staffRole,
  emailVerified: user.emailVerifiedAt !== null,
});

/** The user's organizations and role in each, by organization name: what the dashboard may offer. */
async function listSessionMemberships(deps: Pick<ApiDeps, 'db'>, userId: string) {
  const memberships = await deps.db.membership.findMany({
    where: { userId },
    select: { role: true, organization: { select: { id: true, name: true } } },
    orderBy: [{ organization: { name: 'asc' } }, { organizationId: 'asc' }],
  });
  return memberships.map(({ role, organization }) => ({
    organizationId: organization.id,
    organizationName: organization.name,
    role,
  }));
}

/** The request's session actor; throws `unauthenticated` when it was not signed in with a cookie. */
function getSessionActor(req: Request): Actor {
  const actor = req.user as Actor | undefined;
  if (actor?.authMethod !== 'session')
    throw new AppError('unauthenticated', 'There is no session; sign in with POST /v1/session.');
  return actor;
}

/** Runs passport-local on the request; a refusal comes back as its SignInOutcome. */
function authenticateLocal(
  sessions: Sessions,
  req: Request,
  res: Response,
): Promise<{ kind: 'signed_in'; user: AccountRow } | SignInRefusal['outcome']> {
  return new Promise((resolve, reject) => {
    sessions.authenticator.authenticate(
      'local',
      { session: false },
      (error: unknown, user: AccountRow | false, info: SignInRefusal) => {
        if (error) return reject(error);
        resolve(user ? { kind: 'signed_in', user } : info.outcome);
      },
    )(req, res, reject);
  });
}

export function authHandlers(
  deps: ApiDeps & { mailer: Mailer },
  sessions: Sessions,
): Pick<OperationHandlers, 'createSession' | 'getSession' | 'deleteSession' | 'signUp' | 'verifyEmail'> {
  return {
    async createSession(req, res, { body }) {
      const outcome = await authenticateLocal(sessions, req, res);
      const ctx = { requestId: requestId(res) };
      if (outcome.kind !== 'signed_in') {
        await audit(
          deps.db,
          { actor: null, ...ctx },
          {
            action: 'session.failed',
            targetType: 'user',
            targetId: outcome.userId ?? 'unknown',
            data: {
              reason: outcome.kind,
              ...(outcome.userId ? {} : { email: normaliseEmail(body.email) }),
            },
          },
        );
        if (outcome.kind === 'locked') {
          res.set('Retry-After', String(outcome.retryAfterSeconds));
          throw new AppError(
            'too_many_requests',
            `Too many failed sign-ins for this e-mail address; try again in ${outcome.retryAfterSeconds} seconds.`,
          );
        }
        throw new AppError('unauthenticated', WRONG_CREDENTIALS);
      }
      const actor = makeSessionActor(outcome.user);
      const csrfToken = await startSession(req, actor);
      await audit(
        deps.db,
        { actor, ...ctx },
        {
          action: 'session.create',
          targetType: 'user',
          targetId: actor.userId,
        },
      );
      res.json({
        user: presentUser(outcome.user),
        memberships: await listSessionMemberships(deps, actor.userId),
        csrfToken,
      });
    },

    async getSession(req, res) {
      const actor = getSessionActor(req);
      const user = await deps.db.user.findUniqueOrThrow({
        where: { id: actor.userId },
        select: { id: true, email: true, name: true, staffRole: true, emailVerifiedAt: true },
      });
      res.json({
        user: presentUser(user),
        memberships: await listSessionMemberships(deps, actor.userId),
        csrfToken: sessionCsrfToken(req),
      });
    },

    async deleteSession(req, res) {
      const actor = req.user as Actor | undefined;
      if (actor?.authMethod === 'session') {
        await endSession(req, res);
        await audit(
          deps.db,
          { actor, requestId: requestId(res) },
          {
            action: 'session.delete',
            targetType: 'user',
            targetId: actor.userId,
          },
        );
      }
      res.status(204).end();
    },

    async signUp(_req, res, { body }) {
      await signUp(deps, { requestId: requestId(res) }, body);
      res.status(202).json({
        email: normaliseEmail(body.email),
        detail:
          'If this address can receive mail, a link to confirm it is on its way; it works for 24 hours.',
      });
    },

    async verifyEmail(_req, res, { body }) {
      await verifyEmail(deps, { requestId: requestId(res) }, body.token);
      res.status(204).end();
    },
  };
}
