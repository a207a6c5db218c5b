import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { AppError, coerceError, type ErrorCode, PROBLEM_TYPE_BASE, toProblem } from '../../core/errors.ts';

describe('toProblem', () => {
  test('an AppError becomes an RFC 9457 problem with its context and field errors', () => {
    const error = new AppError('validation_failed', 'The domain is not valid.', {
      errors: [{ field: 'domain', message: 'must be under woolly.test' }],
    });
    assert.deepEqual(toProblem(error, { instance: '/v1/orders', requestId: 'req-42' }), {
      type: 'https://woolly.dev/problems/validation-failed',
      title: 'The request is not valid',
      status: 400,
      detail: 'The domain is not valid.',
      code: 'validation_failed',
      instance: '/v1/orders',
      requestId: 'req-42',
      errors: [{ field: 'domain', message: 'must be under woolly.test' }],
    });
  });

  test('instance, requestId and errors are left out when there are none', () => {
    const problem = toProblem(new AppError('not_found', 'No such server.'));
    assert.deepEqual(Object.keys(problem).sort(), ['code', 'detail', 'status', 'title', 'type']);
  });

  const statuses: [ErrorCode, number][] = [
    ['validation_failed', 400],
    ['malformed_json', 400],
    ['unauthenticated', 401],
    ['forbidden', 403],
    ['not_found', 404],
    ['domain_unavailable', 409],
    ['conflict', 409],
    ['payload_too_large', 413],
    ['unsupported_media_type', 415],
    ['unprocessable', 422],
    ['internal', 500],
  ];
  for (const [code, status] of statuses) {
    test(`${code} answers ${status} with a type URI naming the code`, () => {
      const problem = toProblem(new AppError(code, 'detail'));
      assert.equal(problem.status, status);
      assert.equal(problem.type, `${PROBLEM_TYPE_BASE}${code.replaceAll('_', '-')}`);
      assert.doesNotThrow(() => new URL(problem.type));
      assert.ok(problem.title.length > 0);
    });
  }

  test('an unknown Error becomes a 500 whose body says nothing of the original message', () => {
    const problem = toProblem(new Error('connection to 10.0.0.5 refused for user postgres'), {
      requestId: 'req-1',
    });
    assert.equal(problem.status, 500);
    assert.equal(problem.code, 'internal');
    assert.equal(problem.requestId, 'req-1');
    assert.ok(problem.detail.length > 0);
    const body = JSON.stringify(problem);
    assert.ok(!body.includes('10.0.0.5'), body);
    assert.ok(!body.includes('postgres'), body);
  });

  test('thrown values that are not Errors also become a 500', () => {
    for (const thrown of ['a string', undefined, null, 42, { message: 'secret internals' }]) {
      const problem = toProblem(thrown);
      assert.equal(problem.status, 500);
      assert.ok(!JSON.stringify(problem).includes('secret internals'));
    }
  });
});

describe('coerceError', () => {
  test('an unknown error becomes an internal AppError that keeps the original as cause', () => {
    const original = new RangeError('index out of range');
    const coerced = coerceError(original);
    assert.ok(coerced instanceof AppError);
    assert.equal(coerced.code, 'internal');
    assert.equal(coerced.cause, original);
    assert.ok(!coerced.detail.includes('index out of range'));
  });

  test('an AppError is returned as it is', () => {
    const error = new AppError('conflict', 'Already running.', { cause: new Error('inner') });
    assert.equal(coerceError(error), error);
  });

  test("an AppError's message carries its code and detail for the logs", () => {
    const error = new AppError('forbidden', 'Viewers cannot suspend servers.');
    assert.equal(error.message, 'forbidden: Viewers cannot suspend servers.');
    assert.equal(error.name, 'AppError');
  });
});
