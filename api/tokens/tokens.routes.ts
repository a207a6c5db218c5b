import { makeApiToken } from '../../core/crypto.ts';
import { AppError } from '../../core/errors.ts';
import { audit } from '../audit.ts';
import type { ApiDeps, Scope } from '../context.ts';
import type { OperationHandlers } from '../openapi.ts';
import { isStaff } from '../policy.ts';
import { requestContext } from '../request-context.ts';

const DAY_MS = 24 * 60 * 60 * 1000;

const iso = (date: Date | null) => (date ? date.toISOString() : null);
const present = (token: {
  id: string;
  name: string;
  prefix: string;
  scopes: string[];
  createdAt: Date;
  lastUsedAt: Date | null;
  expiresAt: Date | null;
  revokedAt: Date | null;
}) => ({
  id: token.id,
  name: token.name,
  prefix: token.prefix,
  scopes: token.scopes as Scope[],
  createdAt: token.createdAt.toISOString(),
  lastUsedAt: iso(token.lastUsedAt),
  expiresAt: iso(token.expiresAt),
  revokedAt: iso(token.revokedAt),
});

export function tokensHandlers(
  deps: ApiDeps,
): Pick<OperationHandlers, 'listTokens' | 'createToken' | 'revokeToken'> {
  return {
    async listTokens(req, res) {
      const { actor } = requestContext(req);
      const tokens = await deps.db.apiToken.findMany({
        where: { userId: actor.userId },
        orderBy: [{ createdAt: 'desc' }, { id: 'desc' }],
        take: 200,
      });
      res.json({ data: tokens.map(present) });
    },

    async createToken(req, res, { body }) {
      const ctx = requestContext(req);
      const held = new Set(ctx.actor.scopes);
      const denied = body.scopes.filter((scope) =>
        scope === 'admin'
          ? !(isStaff(ctx.actor) && held.has('admin'))
          : !(held.has(scope) || held.has('admin')),
      );
      if (denied.length > 0) {
        throw new AppError(
          'forbidden',
          `A token can only carry scopes its creator holds; not ${denied.join(', ')}.`,
        );
      }
      const secret = makeApiToken();
      const created = await deps.db.$transaction(async (tx) => {
        const token = await tx.apiToken.create({
          data: {
            userId: ctx.actor.userId,
            name: body.name.trim(),
            prefix: secret.prefix,
            tokenHash: secret.hash,
            scopes: body.scopes,
            expiresAt: body.expiresInDays ? new Date(Date.now() + body.expiresInDays * DAY_MS) : null,
          },
        });
        await audit(tx, ctx, {
          action: 'token.create',
          targetType: 'api_token',
          targetId: token.id,
          data: { name: token.name, scopes: token.scopes },
        });
        return token;
      });
      res
        .status(201)
        .location(`/v1/tokens/${created.id}`)
        .json({ ...present(created), token: secret.token });
    },

    async revokeToken(req, res, { params }) {
      const ctx = requestContext(req);
      await deps.db.$transaction(async (tx) => {
        const token = await tx.apiToken.findFirst({ where: { id: params.id, userId: ctx.actor.userId } });
        if (!token) throw new AppError('not_found', `No token ${params.id}.`);
        if (!token.revokedAt) {
          await tx.apiToken.update({ where: { id: token.id }, data: { revokedAt: new Date() } });
          await audit(tx, ctx, { action: 'token.revoke', targetType: 'api_token', targetId: token.id });
        }
      });
      res.status(204).end();
    },
  };
}
