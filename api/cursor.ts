import { AppError } from '../core/errors.ts';

/** The keyset of a row in a list ordered newest first: creation time, then id. */
export interface Keyset {
  createdAt: Date;
  id: string;
}

/** An opaque page cursor: the keyset (creation time, id) of the last row served. */
export function encodeCursor(row: Keyset): string {
  return Buffer.from(`${row.createdAt.toISOString()}|${row.id}`).toString('base64url');
}

/** The keyset a cursor of `encodeCursor` holds; anything else is `validation_failed`. */
export function decodeCursor(cursor: string): Keyset {
  const [at, id] = Buffer.from(cursor, 'base64url').toString('utf8').split('|');
  const createdAt = new Date(at ?? '');
  if (Number.isNaN(createdAt.getTime()) || !/^[0-9a-f-]{36}$/.test(id ?? '')) {
    throw new AppError('validation_failed', 'The cursor is not one this API gave out.', {
      errors: [{ field: 'cursor', message: 'is invalid' }],
    });
  }
  return { createdAt, id: id as string };
}
