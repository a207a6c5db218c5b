import { randomBytes } from 'node:crypto';
import { Strategy as LocalStrategy } from 'passport-local';
import { hashPassword, hashToken, verifyPassword } from '../../core/crypto.ts';
import { type Db, isUniqueViolation, type Tx } from '../../core/db.ts';
import { AppError } from '../../core/errors.ts';
import { audit } from '../audit.ts';
import type { ApiDeps } from '../context.ts';
import type { Mail, Mailer } from './mailer.ts';

/**
 * Password sign-in lockout: after `threshold` failures in a row an e-mail address is refused
 * passwords for `firstWindowS` seconds, doubling with each further failure up to
 * `maxWindowS`; a success resets it. Counted per address in LoginThrottle (API replicas share
 * nothing else), for unknown addresses too, so a lockout does not tell that an account exists.
 */
export const LOCKOUT = { threshold: 5, firstWindowS: 60, maxWindowS: 60 * 60 } as const;

const VERIFICATION_TTL_MS = 24 * 60 * 60 * 1000;

/** The account fields a sign-in needs. */
export interface AccountRow {
  id: string;
  email: string;
  name: string | null;
  staffRole: 'ops' | 'admin' | null;
  emailVerifiedAt: Date | null;
}

/** What a password sign-in attempt came to. */
export type SignInOutcome =
  | { kind: 'signed_in'; user: AccountRow }
  | { kind: 'refused'; userId: string | null }
  | { kind: 'locked'; userId: string | null; retryAfterSeconds: number };

/** E-mail addresses are compared in lower case: people do not type them the same way twice. */
export function normaliseEmail(email: string): string {
  return email.trim().toLowerCase();
}

let dummyHash: Promise<string> | undefined;

/**
 * A hash with the same cost as real ones, verified when the e-mail address has no password,
 * so an unknown address takes as long to refuse as a wrong password.
 */
function getDummyHash(): Promise<string> {
  dummyHash ??= hashPassword(randomBytes(16).toString('hex'));
  return dummyHash;
}

/**
 * Checks a password sign-in. The attempt is counted before the password is checked, in one
 * statement that also refuses a locked address, so parallel guesses cannot slip past the
 * threshold; a correct password then clears the count. An unknown address is counted and
 * locked like a known one, and refused after the same scrypt work: no answer, status or
 * timing tells the two apart.
 */
export async function checkPassword(
  db: Db,
  email: string,
  password: string,
  now = new Date(),
): Promise<SignInOutcome> {
  const address = normaliseEmail(email);
  const user = await db.user.findUnique({
    where: { email: address },
    select: { id: true, email: true, name: true, staffRole: true, emailVerifiedAt: true, passwordHash: true },
  });
  const emailHash = hashToken(address);
  const { threshold, firstWindowS, maxWindowS } = LOCKOUT;
  const counted = await db.$queryRaw<{ failedCount: number }[]>`
    insert into "LoginThrottle" as t ("emailHash", "failedCount", "lockedUntil", "updatedAt")
    values (${emailHash}, 1, case when ${threshold}::int <= 1 then ${now}::timestamptz + make_interval(secs => ${firstWindowS}::float8) end, ${now}::timestamptz)
    on conflict ("emailHash") do update
       set "failedCount" = t."failedCount" + 1,
           "lockedUntil" = case when t."failedCount" + 1 >= ${threshold}::int
             then ${now}::timestamptz + make_interval(secs => least(
               ${firstWindowS}::float8 * power(2, least(t."failedCount" + 1 - ${threshold}::int, 20)),
               ${maxWindowS}::float8))
           end,
           "updatedAt" = ${now}::timestamptz
     where t."lockedUntil" is null or t."lockedUntil" <= ${now}::timestamptz
    returning "failedCount"`;
  if (counted.length === 0) {
    const throttle = await db.loginThrottle.findUnique({
      where: { emailHash },
      select: { lockedUntil: true },
    });
    const remainingMs = (throttle?.lockedUntil?.getTime() ?? now.getTime()) - now.getTime();
    return {
      kind: 'locked',
      userId: user?.id ?? null,
      retryAfterSeconds: Math.max(1, Math.ceil(remainingMs / 1000)),
    };
  }
  const valid = await verifyPassword(password, user?.passwordHash ?? (await getDummyHash()));
  if (!user || !valid || !user.passwordHash) return { kind: 'refused', userId: user?.id ?? null };
  await clearLoginThrottle(db, user.email);
  const { passwordHash: _, ...account } = user;
  return { kind: 'signed_in', user: account };
}

/** Forgets an address's failed sign-ins (a success, or a verified new password). */
export async function clearLoginThrottle(db: Db | Tx, email: string): Promise<void> {
  await db.loginThrottle.deleteMany({ where: { emailHash: hashToken(normaliseEmail(email)) } });
}

/** Forgets counts a day after their last attempt, unless a lock still runs; hourly. */
export async function deleteStaleLoginThrottles(db: Db, now = new Date()): Promise<number> {
  const { count } = await db.loginThrottle.deleteMany({
    where: {
      updatedAt: { lt: new Date(now.getTime() - 24 * 60 * 60 * 1000) },
      OR: [{ lockedUntil: null }, { lockedUntil: { lt: now } }],
    },
  });
  return count;
}

/** A refused sign-in, as passport-local hands it to the route. */
export interface SignInRefusal {
  message: string;
  outcome: Exclude<SignInOutcome, { kind: 'signed_in' }>;
}

const refusal = (outcome: SignInRefusal['outcome']): SignInRefusal => ({ message: outcome.kind, outcome });

/**
 * passport-local over `checkPassword`: the JSON body's `email` and `password`. Success yields
 * the AccountRow; a refusal yields `false` with a SignInRefusal as its info.
 */
export function makeLocalStrategy(deps: Pick<ApiDeps, 'db'>): LocalStrategy {
  return new LocalStrategy(
    { usernameField: 'email', passwordField: 'password', session: false },
    (email, password, done) => {
      checkPassword(deps.db, email, password).then(
        (outcome) =>
          outcome.kind === 'signed_in' ? done(null, outcome.user) : done(null, false, refusal(outcome)),
        (error: unknown) => done(error),
      );
    },
  );
}

/** A new verification secret for a sign-up link, and the hash that is stored. */
function makeVerificationToken(): { token: string; hash: string } {
  const token = randomBytes(32).toString('base64url');
  return { token, hash: hashToken(token) };
}

function verificationMail(to: string, publicUrl: string, token: string): Mail {
  return {
    to,
    subject: 'Confirm your e-mail address for Woolly',
    text: [
      'Someone, we hope you, signed up for Woolly with this address.',
      'To confirm it, and to use the password chosen at that sign-up, open this link within 24 hours:',
      '',
      `  ${publicUrl}/dashboard/#verify-email=${token}`,
      '',
      'or send the token to the API:',
      '',
      `  curl -X POST ${publicUrl}/v1/signup/verify -H 'content-type: application/json' -d '{"token":"${token}"}'`,
      '',
      'If it was not you, ignore this mail: nothing happens without the link.',
    ].join('\n'),
  };
}

function accountExistsMail(to: string, publicUrl: string): Mail {
  return {
    to,
    subject: 'Someone tried to sign up for Woolly with your address',
    text: [
      'Someone tried to sign up for Woolly with this address, which already has an account.',
      `If it was you, sign in instead: ${publicUrl}/dashboard/`,
      'If it was not you, ignore this mail: nothing about your account has changed.',
    ].join('\n'),
  };
}

/**
 * Signs someone up. The answer never tells whether the address had an account: the password
 * is hashed and a mail sent whichever way it goes, and only the mailbox learns which.
 * - a new address: an unverified User, and a verification link;
 * - an address whose account is not verified yet: another link, carrying this sign-up's
 *   password (following it makes that the password, see `verifyEmail`);
 * - a verified account: nothing changes; its owner is told someone tried.
 */
export async function signUp(
  deps: Pick<ApiDeps, 'db' | 'config'> & { mailer: Mailer },
  ctx: { requestId: string },
  input: { email: string; password: string; name: string },
): Promise<void> {
  const email = normaliseEmail(input.email);
  const passwordHash = await hashPassword(input.password);
  const verification = makeVerificationToken();
  const attempt = () =>
    deps.db.$transaction(async (tx) => {
      const existing = await tx.user.findUnique({ where: { email } });
      if (existing?.emailVerifiedAt) {
        await audit(
          tx,
          { actor: null, ...ctx },
          {
            action: 'user.signup',
            targetType: 'user',
            targetId: existing.id,
            data: { outcome: 'account_exists' },
          },
        );
        return 'account_exists' as const;
      }
      const user =
        existing ?? (await tx.user.create({ data: { email, name: input.name.trim(), passwordHash } }));
      await tx.emailVerification.create({
        data: {
          userId: user.id,
          tokenHash: verification.hash,
          passwordHash,
          expiresAt: new Date(Date.now() + VERIFICATION_TTL_MS),
        },
      });
      await audit(
        tx,
        { actor: null, ...ctx },
        {
          action: 'user.signup',
          targetType: 'user',
          targetId: user.id,
          data: { outcome: existing ? 'verification_resent' : 'created' },
        },
      );
      return 'verification_sent' as const;
    });
  // Two sign-ups of one new address at once: the loser of the unique e-mail finds the
  // winner's account on its second try.
  const outcome = await attempt().catch((error: unknown) => {
    if (isUniqueViolation(error)) return attempt();
    throw error;
  });
  await deps.mailer.send(
    outcome === 'account_exists'
      ? accountExistsMail(email, deps.config.publicUrl)
      : verificationMail(email, deps.config.publicUrl, verification.token),
  );
}

const invalidLink = () =>
  new AppError('validation_failed', 'This verification link is not valid, or has been used already.', {
    errors: [{ field: 'token', message: 'is unknown or used' }],
  });

/**
 * Follows a verification link: once only, within 24 hours. The address becomes verified and
 * the account's password becomes the one chosen at the sign-up that sent this link; every
 * other link of the account is spent. When that replaces a password, the account's earlier
 * password came from another sign-up with this address (perhaps someone else's): that
 * password's sessions and API tokens end here, so only the mailbox's owner keeps access.
 */
export async function verifyEmail(
  deps: Pick<ApiDeps, 'db'>,
  ctx: { requestId: string },
  token: string,
): Promise<void> {
  const now = new Date();
  await deps.db.$transaction(async (tx) => {
    const link = await tx.emailVerification.findUnique({
      where: { tokenHash: hashToken(token) },
      include: { user: { select: { email: true, passwordHash: true, emailVerifiedAt: true } } },
    });
    if (!link || link.usedAt) throw invalidLink();
    if (link.expiresAt <= now) {
      throw new AppError(
        'validation_failed',
        'This verification link has expired; sign up again for a new one.',
        {
          errors: [{ field: 'token', message: 'has expired' }],
        },
      );
    }
    // A concurrent follower of the same link waits on the row here, then finds it used.
    const claimed = await tx.emailVerification.updateMany({
      where: { id: link.id, usedAt: null },
      data: { usedAt: now },
    });
    if (claimed.count !== 1) throw invalidLink();
    await tx.emailVerification.updateMany({
      where: { userId: link.userId, usedAt: null },
      data: { usedAt: now },
    });
    // An account without a password was made by an operator; its tokens are theirs to keep.
    const passwordReplaced = link.user.passwordHash !== null && link.user.passwordHash !== link.passwordHash;
    await tx.user.update({
      where: { id: link.userId },
      data: {
        emailVerifiedAt: link.user.emailVerifiedAt ?? now,
        passwordHash: link.passwordHash,
      },
    });
    await clearLoginThrottle(tx, link.user.email);
    if (passwordReplaced) {
      await tx.$executeRaw`delete from "session" where sess -> 'passport' ->> 'user' = ${link.userId}`;
      await tx.apiToken.updateMany({
        where: { userId: link.userId, revokedAt: null },
        data: { revokedAt: now },
      });
    }
    await audit(
      tx,
      { actor: null, ...ctx },
      {
        action: 'user.verify_email',
        targetType: 'user',
        targetId: link.userId,
        data: { passwordReplaced },
      },
    );
  });
}
