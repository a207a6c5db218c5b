import { hashPassword, makeApiToken, makePassword } from '../../core/crypto.ts';
import type { Db } from '../../core/db.ts';

export interface FirstOpsCredentials {
  email: string;
  password: string;
  token: string;
}

/**
 * On the very first start there is no staff member to run the fleet: create one ops admin
 * with a password and an `admin` API token, and return them so they can be shown once.
 * Returns null when any staff member exists already.
 */
export async function ensureFirstOpsUser(db: Db, baseDomain: string): Promise<FirstOpsCredentials | null> {
  if ((await db.user.count({ where: { staffRole: { not: null } } })) > 0) return null;
  const email = `ops@${baseDomain}`;
  const password = makePassword();
  const token = makeApiToken();
  const passwordHash = await hashPassword(password);
  return db.$transaction(async (tx) => {
    // Serialises two processes starting at once on an empty database: one creates, one sees it.
    await tx.$executeRaw`select pg_advisory_xact_lock(hashtext('woolly:first-ops-user'))`;
    if ((await tx.user.count({ where: { staffRole: { not: null } } })) > 0) return null;
    await tx.user.create({
      data: {
        email,
        name: 'Operations',
        passwordHash,
        staffRole: 'admin',
        emailVerifiedAt: new Date(),
        apiTokens: {
          create: { name: 'first start', prefix: token.prefix, tokenHash: token.hash, scopes: ['admin'] },
        },
      },
    });
    return { email, password, token: token.token };
  });
}
