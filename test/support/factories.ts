import { randomUUID } from 'node:crypto';
import { makeApiToken } from '../../core/crypto.ts';
import type { Db } from '../../core/db.ts';

/** A user with an API token of the given scopes; staff when `staffRole` is set. */
export async function createUserWithToken(
  db: Db,
  options: { staffRole?: 'ops' | 'admin'; scopes?: string[]; email?: string } = {},
): Promise<{ userId: string; token: string }> {
  const token = makeApiToken();
  const user = await db.user.create({
    data: {
      email: options.email ?? `user-${randomUUID()}@example.test`,
      staffRole: options.staffRole ?? null,
      apiTokens: {
        create: {
          name: 'test',
          prefix: token.prefix,
          tokenHash: token.hash,
          scopes: options.scopes ?? (options.staffRole ? ['admin'] : ['instances:read', 'instances:write']),
        },
      },
    },
  });
  return { userId: user.id, token: token.token };
}

/** An organization with `userId` as member in `role`. */
export async function createOrganization(
  db: Db,
  userId: string,
  role: 'owner' | 'admin' | 'billing' | 'viewer' = 'owner',
): Promise<string> {
  const slug = `org-${randomUUID().slice(0, 8)}`;
  const org = await db.organization.create({
    data: { name: slug, slug, memberships: { create: { userId, role } } },
  });
  return org.id;
}

/** The steps a provisioning records, in order (on the dry-run target the waits are skipped). */
export const PROVISION_STEPS = [
  'placement',
  'secrets',
  'database',
  'addons',
  'apply-config',
  'pre-migrate',
  'apply-workloads',
  'rollout',
  'apply-route',
  'post-migrate',
  'search-deploy',
  'owner-account',
  'prune',
];
