import { createHash } from 'node:crypto';
import type { RequestHandler } from 'express';
import type pg from 'pg';
import type { Db } from '../core/db.ts';
import { AppError } from '../core/errors.ts';
import type { Actor } from './context.ts';

/** How long a key is remembered (Stripe keeps them 24 hours). */
export const IDEMPOTENCY_TTL_MS = 24 * 60 * 60 * 1000;
/**
 * A first request still unfinished after this long is taken as lost (its process died): the
 * key may run again. What it would duplicate is refused by the database's own keys (a server
 * domain is unique), so a lost first run cannot become two orders.
 */
const ABANDONED_AFTER_MS = 60_000;
const KEY = /^[\x21-\x7e]{1,255}$/;

/** Canonical JSON: object keys sorted, so `{a,b}` and `{b,a}` are the same request. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) =>
      a < b ? -1 : a > b ? 1 : 0,
    );
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(',')}}`;
  }
  return JSON.stringify(value ?? null);
}

/**
 * `Idempotency-Key` on POST, with Stripe's rules: the first request with a key runs and its
 * response (status below 500) is stored; the same key with the same body gets that response
 * again (`Idempotent-Replayed: true`); with a different body or path, 422; while the first is
 * still running, 409. Keys are scoped to the caller and kept 24 hours. A 5xx is not stored,
 * so a retry runs again.
 */
export function idempotency(pool: pg.Pool): RequestHandler {
  return async (req, res, next) => {
    const key = req.get('idempotency-key');
    if (key === undefined) return next();
    if (!KEY.test(key)) {
      throw new AppError(
        'validation_failed',
        'Idempotency-Key must be 1 to 255 printable ASCII characters.',
        {
          errors: [{ field: 'Idempotency-Key', message: 'is invalid' }],
        },
      );
    }
    const actor = req.user as Actor | undefined;
    const principal = actor ? `user:${actor.userId}` : `ip:${req.ip}`;
    const requestHash = createHash('sha256')
      .update(`${req.method} ${req.path}\n${canonical(req.body)}`)
      .digest('hex');

    const claimed = await claim(pool, { principal, key, method: req.method, path: req.path, requestHash });
    if (claimed.kind === 'replay') {
      const { record } = claimed;
      if (record.requestHash !== requestHash) {
        throw new AppError(
          'unprocessable',
          'This Idempotency-Key was used with a different request; use a new key.',
          {
            errors: [{ field: 'Idempotency-Key', message: 'was used with another request' }],
          },
        );
      }
      if (record.statusCode === null) {
        throw new AppError(
          'conflict',
          'A request with this Idempotency-Key is still being processed; retry shortly.',
        );
      }
      const headers = (record.responseHeaders ?? {}) as Record<string, string>;
      for (const [name, value] of Object.entries(headers)) res.set(name, value);
      res.set('Idempotent-Replayed', 'true');
      const isProblem = record.statusCode >= 400;
      res.status(record.statusCode).type(isProblem ? 'application/problem+json' : 'application/json');
      res.send(JSON.stringify(record.responseBody));
      return;
    }

    // The response is stored before it is sent, so a retry that follows it is a replay.
    const send = res.json.bind(res);
    res.json = (body: unknown) => {
      const store =
        res.statusCode >= 500
          ? pool.query({
              name: 'idempotency-forget',
              text: 'delete from "IdempotencyRecord" where id = $1',
              values: [claimed.id],
            })
          : pool.query({
              name: 'idempotency-store',
              text: `update "IdempotencyRecord" set "statusCode" = $2, "responseBody" = $3::jsonb,
                       "responseHeaders" = $4::jsonb where id = $1`,
              values: [
                claimed.id,
                res.statusCode,
                JSON.stringify(body ?? null),
                JSON.stringify(res.get('location') ? { Location: String(res.get('location')) } : {}),
              ],
            });
      store
        .catch((error: unknown) => res.locals.log?.error('storing an idempotent response failed', { error }))
        .finally(() => send(body));
      return res;
    };
    next();
  };
}

type Claim =
  | { kind: 'new'; id: string }
  | {
      kind: 'replay';
      record: {
        requestHash: string;
        statusCode: number | null;
        responseBody: unknown;
        responseHeaders: unknown;
      };
    };

/**
 * Inserts the key, or returns the live record that holds it (expired and abandoned ones are
 * cleared). Every POST with a key passes here, so it is plain pg, prepared.
 */
async function claim(
  pool: pg.Pool,
  request: { principal: string; key: string; method: string; path: string; requestHash: string },
): Promise<Claim> {
  for (let attempt = 0; attempt < 3; attempt++) {
    const inserted = await pool.query<{ id: string }>({
      name: 'idempotency-claim',
      text: `insert into "IdempotencyRecord" (id, principal, key, method, path, "requestHash")
             values (gen_random_uuid(), $1, $2, $3, $4, $5)
             on conflict (principal, key) do nothing returning id`,
      values: [request.principal, request.key, request.method, request.path, request.requestHash],
    });
    if (inserted.rows[0]) return { kind: 'new', id: inserted.rows[0].id };
    const { rows } = await pool.query<
      Extract<Claim, { kind: 'replay' }>['record'] & { id: string; createdAt: Date }
    >({
      name: 'idempotency-find',
      text: `select id, "requestHash", "statusCode", "responseBody", "responseHeaders", "createdAt"
               from "IdempotencyRecord" where principal = $1 and key = $2`,
      values: [request.principal, request.key],
    });
    const existing = rows[0];
    if (!existing) continue;
    const age = Date.now() - existing.createdAt.getTime();
    const abandoned = existing.statusCode === null && age > ABANDONED_AFTER_MS;
    if (age > IDEMPOTENCY_TTL_MS || abandoned) {
      await pool.query({
        name: 'idempotency-clear',
        text: 'delete from "IdempotencyRecord" where id = $1 and "createdAt" = $2',
        values: [existing.id, existing.createdAt],
      });
      continue;
    }
    return { kind: 'replay', record: existing };
  }
  throw new AppError('conflict', 'This Idempotency-Key is contended; retry shortly.');
}

/** Forgets keys older than the 24-hour window; run by the worker every hour. */
export async function deleteExpiredIdempotencyKeys(db: Db, now = new Date()): Promise<number> {
  const { count } = await db.idempotencyRecord.deleteMany({
    where: { createdAt: { lt: new Date(now.getTime() - IDEMPOTENCY_TTL_MS) } },
  });
  return count;
}
