import type { z } from 'zod';
import { AppError } from '../core/errors.ts';

/** Parses `value` with `schema`, or throws `validation_failed` listing every bad field. */
export function parseInput<T extends z.ZodType>(
  schema: T,
  value: unknown,
  what = 'request body',
): z.output<T> {
  const result = schema.safeParse(value ?? {});
  if (result.success) return result.data;
  const errors = result.error.issues.map((issue) => ({
    field: issue.path.length > 0 ? issue.path.join('.') : '(body)',
    message: issue.message,
  }));
  throw new AppError('validation_failed', `The ${what} has ${errors.length} invalid field(s).`, { errors });
}
