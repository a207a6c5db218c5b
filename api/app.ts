import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import express, { type ErrorRequestHandler, type RequestHandler } from 'express';
import passport from 'passport';
import { makeStripeGateway } from '../billing/stripe-gateway.ts';
import { AppError, toProblem } from '../core/errors.ts';
import { auditHandlers } from './audit/audit.routes.ts';
import { authHandlers } from './auth/auth.routes.ts';
import { useBearerTokens } from './auth/bearer.ts';
import { requireCsrfToken } from './auth/csrf.ts';
import { type Mailer, makeOutboxMailer } from './auth/mailer.ts';
import { makeSessions, SESSION_COOKIE } from './auth/session.ts';
import { billingReportsHandlers } from './billing/billing-reports.routes.ts';
import { invoicesHandlers } from './billing/invoices.routes.ts';
import { catalogHandlers } from './catalog/catalog.routes.ts';
import { clustersHandlers } from './clusters/clusters.routes.ts';
import type { ApiDeps } from './context.ts';
import { domainsHandlers } from './domains/domains.routes.ts';
import { fleetSummaryHandlers } from './fleet/fleet-summary.routes.ts';
import { fleetUpgradesHandlers } from './fleet/fleet-upgrades.routes.ts';
import { idempotency } from './idempotency.ts';
import { instancesHandlers } from './instances/instances.routes.ts';
import { mountOperations, openApiDocument } from './openapi.ts';
import { ordersHandlers } from './orders/orders.routes.ts';
import { invitationsHandlers } from './organizations/invitations.routes.ts';
import { membersHandlers } from './organizations/members.routes.ts';
import { organizationsHandlers } from './organizations/organizations.routes.ts';
import { rateLimit } from './rate-limit.ts';
import { sponsorsHandlers } from './sponsors/sponsors.routes.ts';
import { tokensHandlers } from './tokens/tokens.routes.ts';
import { usageHandlers } from './usage/usage.routes.ts';
import {
  STRIPE_WEBHOOK_PATH,
  stripeWebhookIntake,
  stripeWebhooksHandlers,
  unlessStripeWebhook,
} from './webhooks/stripe-webhooks.routes.ts';

const REQUEST_ID = /^[A-Za-z0-9._-]{1,128}$/;
// The dashboard as `npm run build` (Vite) leaves it; the sponsor page is one of its static files.
const dashboardDir = path.resolve(import.meta.dirname, '..', 'dashboard', 'dist');
const docsDir = path.resolve(import.meta.dirname, 'docs');
const swaggerUiDir = path.dirname(fileURLToPath(import.meta.resolve('swagger-ui-dist/package.json')));

/** Takes the caller's `X-Request-Id` when it is sane, makes one otherwise, and echoes it. */
const requestId =
  (deps: ApiDeps): RequestHandler =>
  (req, res, next) => {
    const given = req.get('x-request-id');
    const id = given && REQUEST_ID.test(given) ? given : randomUUID();
    res.locals.requestId = id;
    res.locals.log = deps.log.child({ requestId: id });
    res.set('X-Request-Id', id);
    const started = process.hrtime.bigint();
    res.on('finish', () => {
      res.locals.log.info('request', {
        method: req.method,
        path: req.path,
        status: res.statusCode,
        ms: Number(process.hrtime.bigint() - started) / 1e6,
      });
    });
    next();
  };

/** Bodies of writes must be JSON; anything else is refused before it is read. */
const requireJson: RequestHandler = (req, _res, next) => {
  const hasBody = Number(req.get('content-length') ?? 0) > 0 || req.get('transfer-encoding') !== undefined;
  if (hasBody && !req.is('application/json')) {
    return next(new AppError('unsupported_media_type', 'Send the body as application/json.'));
  }
  next();
};

/** Authenticates a bearer token when one is sent; routes decide whether one is required. */
const optionalBearer: RequestHandler = (req, res, next) => {
  if (!req.get('authorization')) return next();
  passport.authenticate('bearer', { session: false }, (error: unknown, user: Express.User | false) => {
    if (error) return next(error);
    if (!user) return next(new AppError('unauthenticated', 'The API token is invalid, expired or revoked.'));
    req.user = user;
    next();
  })(req, res, next);
};

/**
 * Skips a session middleware for a request that sends a token and no session cookie: the
 * token decides who calls, and making (then dropping) an empty session for every API call
 * was a fifth of a token request's CPU (README, Performance). Signing in and out always get
 * their session, whatever else the request carries.
 */
const unlessTokenOnly =
  (middleware: RequestHandler): RequestHandler =>
  (req, res, next) => {
    const tokenOnly =
      req.get('authorization') !== undefined &&
      !req.get('cookie')?.includes(`${SESSION_COOKIE}=`) &&
      req.path !== '/v1/session';
    if (tokenOnly) return next();
    return middleware(req, res, next);
  };

const notFound: RequestHandler = (req, _res, next) => {
  next(new AppError('not_found', `No route ${req.method} ${req.path}.`));
};

/** body-parser's refusals (http-errors with a 4xx status and a `type`), as domain errors. */
function bodyParserError(error: { type?: string; status?: number; charset?: string }): AppError | null {
  switch (error.type) {
    case 'entity.parse.failed':
      return new AppError('malformed_json', 'The request body is not valid JSON.');
    case 'entity.too.large':
      return new AppError('payload_too_large', 'The request body is larger than 100 kB.');
    case 'charset.unsupported':
    case 'encoding.unsupported':
      return new AppError('unsupported_media_type', 'Send the body as UTF-8 application/json.');
    default:
      return error.type && error.status && error.status < 500
        ? new AppError('bad_request', 'The request body could not be read.')
        : null;
  }
}

/** Every error leaves as problem+json; unforeseen ones are logged with their cause, not shown. */
const problemHandler: ErrorRequestHandler = (error, req, res, _next) => {
  // A response already under way (a file cut short by the client, a session saved as the
  // server stops) can only be cut off; the error is logged like any other.
  if (res.headersSent) {
    res.locals.log?.warn('response failed after it started', { error });
    res.destroy();
    return;
  }
  const appError = bodyParserError(error) ?? error;
  const problem = toProblem(appError, { instance: req.originalUrl, requestId: res.locals.requestId });
  if (problem.status >= 500)
    res.locals.log?.error('request failed', { error, stack: (error as Error)?.stack });
  res.status(problem.status).type('application/problem+json').json(problem);
};

/** The one mailer every route sends with (sign-up, invitations): `deps.mailer`, or the dev outbox. */
function makeMailer(deps: ApiDeps): Mailer {
  if (deps.mailer) return deps.mailer;
  if (deps.config.env === 'production') {
    deps.log.warn('no mail transport: account mail goes to the dev outbox under the data directory');
  }
  return makeOutboxMailer({
    from: `Woolly <no-reply@${deps.config.baseDomain}>`,
    // Tests keep mail in memory; elsewhere a developer reads it under the data directory.
    dir: deps.config.env === 'test' ? undefined : path.resolve(deps.config.dataDir, 'outbox'),
    log: deps.log,
  });
}

/** The control API and the dashboard, as one express application. */
export function makeApp(given: ApiDeps): express.Express {
  // Stripe's client is made once for the app, not on every request that pays.
  const stripeGateway =
    given.stripeGateway ?? (given.config.stripe ? makeStripeGateway(given.config.stripe) : null);
  const deps: ApiDeps = { ...given, ...(stripeGateway ? { stripeGateway } : {}) };
  useBearerTokens(deps);
  const mailer = makeMailer(deps);
  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', 'loopback');
  app.use(requestId(deps));
  app.get('/', (_req, res) => res.redirect('/dashboard/'));
  // Vite names its bundles by content, so they may be cached for good (and a missing one is a
  // 404, not the app's page); index.html may not.
  app.use(
    '/dashboard/assets',
    express.static(path.join(dashboardDir, 'assets'), { immutable: true, maxAge: '1y', fallthrough: false }),
  );
  app.use('/dashboard', express.static(dashboardDir, { index: false, redirect: false, maxAge: '5m' }));
  // Every other dashboard address is a page of the single-page app.
  app.get(/^\/dashboard(\/.*)?$/, (_req, res) => {
    res.sendFile(path.join(dashboardDir, 'index.html'), { maxAge: 0 });
  });
  // A server's public sponsor page (dashboard/sponsor/); it reads the domain from its path.
  app.get('/sponsor/:domain', (_req, res) => {
    res.sendFile(path.join(dashboardDir, 'sponsor', 'index.html'), { maxAge: '5m' });
  });
  app.get('/v1/openapi.json', (_req, res) => {
    res.json(openApiDocument);
  });
  app.use('/docs/assets', express.static(swaggerUiDir, { maxAge: '1h', index: false }));
  app.use('/docs', express.static(docsDir, { index: 'index.html' }));
  // Stripe signs the raw bytes: they are read and verified before any other body parser.
  app.post(STRIPE_WEBHOOK_PATH, ...stripeWebhookIntake(deps));
  // The sessions' own passport instance initialises after the process-wide one, so that
  // req.logIn uses its serializer; a bearer token, when sent, takes precedence over the cookie.
  const sessions = makeSessions(deps);
  // Answers are per caller and change without their ETag changing (a server's ETag is its
  // spec generation, not its status): no cache may keep them or answer 304 for them.
  app.use('/v1', (_req, res, next) => {
    res.set('Cache-Control', 'no-store');
    next();
  });
  app.use(
    passport.initialize(),
    ...sessions.middleware.map(unlessTokenOnly),
    optionalBearer,
    unlessStripeWebhook(rateLimit(deps.config.rateLimits)),
    requireCsrfToken({ publicUrl: deps.config.publicUrl }),
  );
  app.use(
    mountOperations(
      {
        getHealth: (_req, res) => res.json({ status: 'ok' }),
        getReadiness: async (_req, res) => {
          await deps.db.$queryRaw`select 1`;
          res.json({ status: 'ready' });
        },
        ...catalogHandlers(deps),
        ...organizationsHandlers(deps),
        ...domainsHandlers(deps),
        ...membersHandlers(deps),
        ...invitationsHandlers({ ...deps, mailer }),
        ...ordersHandlers(deps),
        ...instancesHandlers(deps),
        ...fleetSummaryHandlers(deps),
        ...fleetUpgradesHandlers(deps),
        ...clustersHandlers(deps),
        ...invoicesHandlers(deps),
        ...billingReportsHandlers(deps),
        ...usageHandlers(deps),
        ...tokensHandlers(deps),
        ...sponsorsHandlers(deps),
        ...auditHandlers(deps),
        ...stripeWebhooksHandlers(deps),
        ...authHandlers({ ...deps, mailer }, sessions),
      },
      {
        idempotency: idempotency(deps.pool),
        readBody: [requireJson, express.json({ limit: '100kb', strict: true })],
      },
    ),
  );
  app.use(notFound);
  app.use(problemHandler);
  return app;
}
