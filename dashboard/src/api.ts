/**
 * The API client, typed from api/openapi.yaml (openapi-typescript generates the types; see
 * `npm run generate`). Requests ride the session cookie; every change carries the session's
 * CSRF token, and an answer that is not 2xx becomes a `Problem` with the API's title and detail.
 */
import createClient from 'openapi-fetch';
import type { components, paths } from '../../api/generated/openapi.ts';

export type Schemas = components['schemas'];

let csrfToken: string | null = null;

/** The token the API handed out with the session; sent as `X-CSRF-Token` on every change. */
export function setCsrfToken(token: string | null): void {
  csrfToken = token;
}

export const api = createClient<paths>({ baseUrl: '', credentials: 'same-origin' });

api.use({
  onRequest({ request }) {
    if (csrfToken && !['GET', 'HEAD'].includes(request.method)) {
      request.headers.set('X-CSRF-Token', csrfToken);
    }
    return request;
  },
});

/** An API error as problem+json describes it (RFC 9457). */
export class Problem extends Error {
  constructor(
    readonly title: string,
    readonly detail: string | undefined,
    readonly status: number,
    readonly code: string | undefined,
    readonly errors: { field: string; message: string }[] = [],
  ) {
    super(detail ? `${title}: ${detail}` : title);
  }
}

function problemOf(body: unknown, response: Response): Problem {
  const problem = (body ?? {}) as Partial<Schemas['Problem']> & {
    errors?: { field: string; message: string }[];
  };
  return new Problem(
    problem.title ?? response.statusText ?? 'Request failed',
    problem.detail,
    response.status,
    problem.code,
    problem.errors ?? [],
  );
}

/** Any thrown value as a Problem (a network failure becomes one too). */
export function asProblem(error: unknown): Problem {
  if (error instanceof Problem) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new Problem('The API could not be reached', message, 0, undefined);
}

/** The data of a successful answer, or a thrown Problem. */
export async function ok<T>(request: Promise<{ data?: T; error?: unknown; response: Response }>): Promise<T> {
  const { data, error, response } = await request;
  if (!response.ok) throw problemOf(error, response);
  return data as T;
}

/** A fresh Idempotency-Key: a retried click of the same form sends the same one. */
export const idempotencyKey = (): string => crypto.randomUUID();
