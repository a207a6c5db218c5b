import express, { type ErrorRequestHandler, type RequestHandler } from 'express';
import Stripe from 'stripe';
import { recordStripeEvent } from '../../billing/webhooks.ts';
import { AppError } from '../../core/errors.ts';
import type { ApiDeps } from '../context.ts';
import type { OperationHandlers } from '../openapi.ts';
import { rateLimit } from '../rate-limit.ts';

/** Where Stripe delivers events (api/openapi.yaml, `receiveStripeWebhook`). */
export const STRIPE_WEBHOOK_PATH = '/v1/webhooks/stripe';

/** How old a delivery's signed timestamp may be, in seconds (Stripe's default). */
export const STRIPE_SIGNATURE_TOLERANCE_S = 300;

/** Stripe's events are small; a large invoice's stays well under this. */
const BODY_LIMIT_BYTES = 512 * 1024;

/** Marks a request this file rate-limited already, so the app-wide anonymous limit skips it. */
const OWN_RATE_LIMIT = 'stripeWebhookRateLimited';

/** Runs `middleware` except for Stripe's deliveries, which `stripeWebhookIntake` limited on its own. */
export function unlessStripeWebhook(middleware: RequestHandler): RequestHandler {
  return (req, res, next) => (res.locals[OWN_RATE_LIMIT] ? next() : middleware(req, res, next));
}

/**
 * What a Stripe delivery goes through before anything else in the app (mounted ahead of the
 * session, CSRF and the anonymous rate limit): 404 without Stripe; its own per-address rate
 * limit at the signed-in callers' allowance, since Stripe delivers and retries from a few
 * shared addresses and a 429 only delays it; the raw body, read once; and the signature over
 * those exact bytes. The verified event then replaces the body, so the operation's validator
 * and handler see what was signed. Authentication before validation: an unsigned body gets
 * `invalid_signature` whatever it holds.
 */
export function stripeWebhookIntake(deps: ApiDeps): (RequestHandler | ErrorRequestHandler)[] {
  const limit = rateLimit({
    perActorPerMinute: deps.config.rateLimits.perActorPerMinute,
    perIpPerMinute: deps.config.rateLimits.perActorPerMinute,
  });
  const requireStripe: RequestHandler = (_req, _res, next) => {
    if (!deps.config.stripe) {
      return next(new AppError('not_found', 'Stripe webhooks are off: the billing provider is not stripe.'));
    }
    next();
  };
  const ownRateLimit: RequestHandler = (req, res, next) => {
    res.locals[OWN_RATE_LIMIT] = true;
    limit(req, res, next);
  };
  const requireJson: RequestHandler = (req, _res, next) => {
    if (!req.is('application/json')) {
      return next(new AppError('unsupported_media_type', 'Send the body as application/json.'));
    }
    next();
  };
  const tooLarge: ErrorRequestHandler = (error, _req, _res, next) => {
    if ((error as { type?: string }).type === 'entity.too.large') {
      return next(new AppError('payload_too_large', 'The webhook body is larger than 512 kB.'));
    }
    next(error);
  };
  const verifySignature: RequestHandler = (req, res, next) => {
    const secret = deps.config.stripe?.webhookSecret ?? '';
    const raw: unknown = req.body;
    if (!Buffer.isBuffer(raw) || raw.length === 0) {
      return next(new AppError('invalid_signature', 'The webhook body is empty.'));
    }
    const signature = req.get('stripe-signature');
    if (!signature) {
      return next(new AppError('invalid_signature', 'The Stripe-Signature header is missing.'));
    }
    let event: Stripe.Event;
    try {
      event = Stripe.webhooks.constructEvent(raw, signature, secret, STRIPE_SIGNATURE_TOLERANCE_S);
    } catch (error) {
      if (error instanceof Stripe.errors.StripeSignatureVerificationError) {
        return next(
          new AppError(
            'invalid_signature',
            `The Stripe-Signature does not verify, or is older than ${STRIPE_SIGNATURE_TOLERANCE_S} s.`,
            { cause: error },
          ),
        );
      }
      // Signed, but not an event Woolly takes (not JSON, or a v2 "thin" event).
      return next(new AppError('bad_request', 'The webhook body is not a Stripe event.', { cause: error }));
    }
    res.locals.stripeRawBody = raw.toString('utf8');
    req.body = event;
    next();
  };
  return [
    requireStripe,
    ownRateLimit,
    requireJson,
    express.raw({ type: 'application/json', limit: BODY_LIMIT_BYTES }),
    tooLarge,
    verifySignature,
  ];
}

/** The operation's handler: store the verified event, queue it once, answer at once. */
export function stripeWebhooksHandlers(deps: ApiDeps): Pick<OperationHandlers, 'receiveStripeWebhook'> {
  return {
    receiveStripeWebhook: async (_req, res, input) => {
      const event = input.body;
      const isNew = await recordStripeEvent(deps.pool, event, res.locals.stripeRawBody as string);
      res.locals.log.info('Stripe event received', { stripeEventId: event.id, type: event.type, isNew });
      res.json({ received: true });
    },
  };
}
