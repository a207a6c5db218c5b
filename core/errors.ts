/**
 * Domain errors. A caller branches on `code`; the API turns a code into an HTTP status and a
 * problem+json body (RFC 9457) through `toProblem`, the one place that mapping lives.
 */
const CODES = {
  /** The request body or parameters do not match the schema; `errors` lists each field. */
  validation_failed: { status: 400, title: 'The request is not valid' },
  /** The body is not parseable JSON. */
  malformed_json: { status: 400, title: 'The request body is not valid JSON' },
  /** No credentials, or credentials that do not identify anyone. */
  unauthenticated: { status: 401, title: 'Authentication required' },
  /** The caller is known but its token lacks the scope or role. */
  forbidden: { status: 403, title: 'Not allowed' },
  /** Missing, or not visible to the caller (foreign resources answer this too, never 403). */
  not_found: { status: 404, title: 'Not found' },
  /** The domain is taken now or was ever used (Mastodon domains are never reused). */
  domain_unavailable: { status: 409, title: 'The domain is not available' },
  /** The change does not fit the resource's current state. */
  conflict: { status: 409, title: 'The request conflicts with the current state' },
  /** `If-Match` names a generation that is no longer current: re-read, then retry. */
  precondition_failed: { status: 412, title: 'The resource changed since you read it' },
  /** The change needs `If-Match` with the generation the caller last read. */
  precondition_required: { status: 428, title: 'Send If-Match' },
  /** The body is well formed but names something that does not exist or is not allowed. */
  unprocessable: { status: 422, title: 'The request cannot be processed' },
  unsupported_media_type: { status: 415, title: 'Send application/json' },
  /** A webhook whose signature does not verify (missing, wrong, or outside the time tolerance). */
  invalid_signature: { status: 400, title: 'The webhook signature is invalid' },
  /** The request could not be read at all (an aborted or inconsistent body). */
  bad_request: { status: 400, title: 'The request cannot be read' },
  payload_too_large: { status: 413, title: 'The request body is too large' },
  /** The request line and headers are over Node's limit; answered before routing. */
  headers_too_large: { status: 431, title: 'The request headers are too large' },
  /** Refused for a while (sign-in lockout); the response's `Retry-After` says how long. */
  too_many_requests: { status: 429, title: 'Too many requests' },
  /** Stripe did not answer, refused, or lacks the catalog (`woolly billing sync`); retry later. */
  payment_provider_unavailable: { status: 503, title: 'Payments are unavailable right now' },
  /** Anything not foreseen; its detail is never shown to the caller. */
  internal: { status: 500, title: 'Something went wrong on our side' },
} as const satisfies Record<string, { status: number; title: string }>;

export type ErrorCode = keyof typeof CODES;

export interface FieldError {
  /** JSON pointer-ish path of the offending field, e.g. `domain` or `addons.0`. */
  field: string;
  message: string;
}

/** The one error type of Woolly. `detail` is safe to show a caller; `cause` is not. */
export class AppError extends Error {
  override name = 'AppError';
  readonly code: ErrorCode;
  readonly detail: string;
  readonly errors: FieldError[] | undefined;

  constructor(code: ErrorCode, detail: string, options: { cause?: unknown; errors?: FieldError[] } = {}) {
    super(`${code}: ${detail}`, { cause: options.cause });
    this.code = code;
    this.detail = detail;
    this.errors = options.errors;
  }
}

/** Normalises anything thrown into an AppError, keeping the original as `cause`. */
export function coerceError(error: unknown): AppError {
  if (error instanceof AppError) return error;
  return new AppError('internal', 'An unexpected error occurred; it has been logged.', { cause: error });
}

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  instance?: string;
  code: ErrorCode;
  requestId?: string;
  errors?: FieldError[];
}

export const PROBLEM_TYPE_BASE = 'https://woolly.dev/problems/';

/** RFC 9457 problem details for an error; unknown errors say nothing about their internals. */
export function toProblem(error: unknown, context: { instance?: string; requestId?: string } = {}): Problem {
  const appError = coerceError(error);
  const { status, title } = CODES[appError.code];
  return {
    type: `${PROBLEM_TYPE_BASE}${appError.code.replaceAll('_', '-')}`,
    title,
    status,
    detail: appError.detail,
    code: appError.code,
    ...(context.instance ? { instance: context.instance } : {}),
    ...(context.requestId ? { requestId: context.requestId } : {}),
    ...(appError.errors ? { errors: appError.errors } : {}),
  };
}
