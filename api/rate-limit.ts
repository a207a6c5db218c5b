import type { RequestHandler } from 'express';
import { AppError } from '../core/errors.ts';
import type { Actor } from './context.ts';

export interface RateLimits {
  /** Requests a minute for one API token or session user. */
  perActorPerMinute: number;
  /** Requests a minute for one client address without credentials. */
  perIpPerMinute: number;
}

interface Bucket {
  tokens: number;
  updatedAt: number;
}

/** Buckets not touched for this long are full again and can be forgotten. */
const IDLE_MS = 60_000;

/**
 * Token-bucket rate limits per caller (token id or session user) and, for anonymous requests,
 * per client address: a bucket holds a minute's allowance and refills continuously. Over the
 * limit the request is refused with 429 and `Retry-After` before any work is done; every
 * response carries `RateLimit-Limit` and `RateLimit-Remaining`. Buckets live in this process:
 * behind N API replicas a caller gets up to N times the limit, which bounds abuse without a
 * shared store on the hot path.
 */
export function rateLimit(limits: RateLimits, now: () => number = Date.now): RequestHandler {
  const buckets = new Map<string, Bucket>();
  let lastSweep = now();
  return (req, res, next) => {
    const actor = req.user as Actor | undefined;
    const [key, perMinute] = actor
      ? [`actor:${actor.tokenId ?? actor.userId}`, limits.perActorPerMinute]
      : [`ip:${req.ip}`, limits.perIpPerMinute];
    const at = now();
    if (at - lastSweep > IDLE_MS) {
      for (const [bucketKey, bucket] of buckets)
        if (at - bucket.updatedAt > IDLE_MS) buckets.delete(bucketKey);
      lastSweep = at;
    }
    const bucket = buckets.get(key) ?? { tokens: perMinute, updatedAt: at };
    bucket.tokens = Math.min(perMinute, bucket.tokens + ((at - bucket.updatedAt) * perMinute) / 60_000);
    bucket.updatedAt = at;
    buckets.set(key, bucket);
    res.set('RateLimit-Limit', String(perMinute));
    if (bucket.tokens < 1) {
      const retryAfter = Math.ceil(((1 - bucket.tokens) * 60_000) / perMinute / 1000);
      res.set('RateLimit-Remaining', '0');
      res.set('Retry-After', String(retryAfter));
      return next(new AppError('too_many_requests', `Too many requests; retry in ${retryAfter} s.`));
    }
    bucket.tokens -= 1;
    res.set('RateLimit-Remaining', String(Math.floor(bucket.tokens)));
    next();
  };
}
