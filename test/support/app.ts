import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { PassThrough } from 'node:stream';
import { makeApp } from '../../api/app.ts';
import type { ApiDeps } from '../../api/context.ts';
import { findOperation, responseErrors } from '../../api/openapi.ts';
import { listen } from '../../api/server.ts';
import { loadConfig } from '../../core/config.ts';
import { type Db, makePool } from '../../core/db.ts';
import { makeLogger } from '../../core/log.ts';

export interface TestApp {
  url: string;
  /** Everything the app logged, one JSON object a line. */
  logs(): string;
  release(): Promise<void>;
}

/** The real express app over a real database, listening on a free loopback port. */
export async function startTestApp(
  database: { db: Db; url: string },
  env: Record<string, string> = {},
  /** A mailer to read sent mail from (unset: the app's own outbox), Stripe, where backup links point. */
  deps: Pick<ApiDeps, 'mailer' | 'stripeGateway' | 'backupEndpointOf'> = {},
): Promise<TestApp> {
  const { db } = database;
  const pool = makePool(database.url);
  // Tests send bursts from one token; only the rate-limit test sets real limits.
  const config = loadConfig({
    NODE_ENV: 'test',
    WOOLLY_RATE_LIMIT_PER_MINUTE: '1000000',
    WOOLLY_RATE_LIMIT_ANONYMOUS_PER_MINUTE: '1000000',
    ...env,
  });
  const stream = new PassThrough();
  const chunks: Buffer[] = [];
  stream.on('data', (chunk: Buffer) => chunks.push(chunk));
  const app = makeApp({ db, pool, config, log: makeLogger(config, stream), ...deps });
  const server = listen(app, 0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    logs: () => Buffer.concat(chunks).toString('utf8'),
    release: async () => {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await pool.end();
    },
  };
}

/**
 * Every response of a documented operation must match api/openapi.yaml: its status must be
 * documented, and its body must match that status's schema (problem+json for errors).
 */
function assertDocumented(method: string, pathname: string, response: Response, body: unknown): void {
  const operation = findOperation(method, pathname);
  if (!operation) return;
  if (response.status === 431) {
    // Answered by the HTTP server before any route (api/server.ts), the same for every operation.
    assert.equal((body as { code?: string }).code, 'headers_too_large');
    assert.match(response.headers.get('content-type') ?? '', /^application\/problem\+json/);
    return;
  }
  const errors = responseErrors(operation.operationId, response.status, body);
  if (errors.length > 0) {
    throw new Error(
      `${method} ${pathname} → ${response.status} does not match the OpenAPI document: ${errors.join('; ')}`,
    );
  }
  // A redirect (a backup download) has no body, only its Location.
  if (response.status === 204 || (response.status >= 300 && response.status < 400)) return;
  const expected = response.status >= 400 ? 'application/problem+json' : 'application/json';
  const type = response.headers.get('content-type') ?? '';
  if (!type.startsWith(expected))
    throw new Error(`${method} ${pathname} → ${response.status} is ${type}, not ${expected}`);
}

/** fetch with a bearer token and a JSON body, returning status, headers and parsed body. */
export async function call(
  url: string,
  options: {
    method?: string;
    token?: string;
    body?: unknown;
    rawBody?: string;
    headers?: Record<string, string>;
    /** `manual` to see a redirect instead of following it. */
    redirect?: RequestRedirect;
  } = {},
  // biome-ignore lint/suspicious/noExplicitAny: tests read response bodies of many shapes and assert on them.
): Promise<{ status: number; headers: Headers; body: any }> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  let body: string | undefined;
  if (options.body !== undefined || options.rawBody !== undefined) {
    headers['content-type'] ??= 'application/json';
    body = options.rawBody ?? JSON.stringify(options.body);
  }
  const response = await fetch(url, {
    method: options.method ?? (body ? 'POST' : 'GET'),
    headers,
    body,
    redirect: options.redirect,
  });
  const text = await response.text();
  let parsed: unknown = text;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    // Not JSON (e.g. the dashboard's HTML); the text is the body.
  }
  assertDocumented(options.method ?? (body ? 'POST' : 'GET'), new URL(url).pathname, response, parsed);
  return { status: response.status, headers: response.headers, body: parsed };
}
