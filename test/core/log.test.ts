import assert from 'node:assert/strict';
import { once } from 'node:events';
import { PassThrough } from 'node:stream';
import { describe, test } from 'node:test';
import type { Config } from '../../core/config.ts';
import { type Logger, makeLogger } from '../../core/log.ts';

/** Logs through a real logger into a PassThrough and returns what reached the stream. */
async function capture(
  write: (logger: Logger) => void,
  log: Config['log'] = { level: 'info', format: 'json' },
): Promise<string> {
  const stream = new PassThrough();
  const chunks: Buffer[] = [];
  stream.on('data', (chunk: Buffer) => chunks.push(chunk));
  const logger = makeLogger({ log }, stream);
  write(logger);
  const [transport] = logger.transports;
  assert.ok(transport);
  const flushed = once(transport, 'finish');
  logger.end();
  await flushed;
  return Buffer.concat(chunks).toString('utf8');
}

async function captureJson(write: (logger: Logger) => void): Promise<Record<string, unknown>[]> {
  const text = await capture(write);
  return text
    .split('\n')
    .filter((line) => line.length > 0)
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

describe('makeLogger', () => {
  test('writes one JSON object per line with level, message and timestamp', async () => {
    const lines = await captureJson((logger) => {
      logger.info('first', { instanceId: 'i-1' });
      logger.warn('second');
    });
    assert.equal(lines.length, 2);
    assert.equal(lines[0]?.level, 'info');
    assert.equal(lines[0]?.message, 'first');
    assert.equal(lines[0]?.instanceId, 'i-1');
    assert.equal(lines[1]?.level, 'warn');
    for (const line of lines) assert.ok(!Number.isNaN(Date.parse(String(line.timestamp))));
  });

  test('lines below the configured level are not written', async () => {
    const lines = await captureJson((logger) => {
      logger.debug('too chatty');
      logger.info('kept');
    });
    assert.deepEqual(
      lines.map((line) => line.message),
      ['kept'],
    );
  });

  test('secret fields at the top level are redacted and other fields survive', async () => {
    const [line] = await captureJson((logger) =>
      logger.info('login', {
        user: 'alice',
        password: 'hunter2-password',
        token: 'hunter2-token',
        secret: 'hunter2-secret',
        authorization: 'Bearer hunter2-bearer',
        cookie: 'sid=hunter2-cookie',
      }),
    );
    assert.deepEqual(
      { ...line, timestamp: undefined },
      {
        level: 'info',
        message: 'login',
        timestamp: undefined,
        user: 'alice',
        password: '[redacted]',
        token: '[redacted]',
        secret: '[redacted]',
        authorization: '[redacted]',
        cookie: '[redacted]',
      },
    );
  });

  test('secret fields nested in objects and arrays are redacted, whatever their case', async () => {
    const text = await capture((logger) =>
      logger.info('request', {
        request: {
          method: 'POST',
          headers: { Authorization: 'Bearer hunter2-a', Cookie: 'sid=hunter2-b', accept: 'application/json' },
          body: {
            users: [
              { name: 'bob', password: 'hunter2-c' },
              { name: 'eve', Token: 'hunter2-d' },
            ],
          },
        },
      }),
    );
    assert.ok(!text.includes('hunter2'), text);
    const line = JSON.parse(text) as { request: Record<string, unknown> };
    assert.deepEqual(line.request, {
      method: 'POST',
      headers: { Authorization: '[redacted]', Cookie: '[redacted]', accept: 'application/json' },
      body: {
        users: [
          { name: 'bob', password: '[redacted]' },
          { name: 'eve', Token: '[redacted]' },
        ],
      },
    });
  });

  test('secret fields in child logger metadata are redacted while the ids are kept', async () => {
    const [line] = await captureJson((logger) =>
      logger
        .child({ requestId: 'req-1', token: 'hunter2-child' })
        .child({ operationId: 'op-1', session: { cookie: 'hunter2-grandchild' } })
        .info('working'),
    );
    assert.equal(line?.requestId, 'req-1');
    assert.equal(line?.operationId, 'op-1');
    assert.equal(line?.token, '[redacted]');
    assert.deepEqual(line?.session, { cookie: '[redacted]' });
  });

  test('an Error in metadata is reduced to its name and message', async () => {
    const failure = Object.assign(new TypeError('disk full'), { config: { password: 'hunter2' } });
    const text = await capture((logger) => logger.error('backup failed', { error: failure }));
    const line = JSON.parse(text) as Record<string, unknown>;
    assert.deepEqual(line.error, { name: 'TypeError', message: 'disk full' });
    assert.ok(!text.includes('hunter2'), text);
    assert.ok(!text.includes('stack') && !text.includes('    at '), 'no stack trace is written');
  });

  test('the pretty format redacts secrets too', async () => {
    const text = await capture(
      (logger) => logger.info('login', { user: 'alice', nested: { password: 'hunter2' } }),
      { level: 'info', format: 'pretty' },
    );
    assert.match(text, /info login/);
    assert.match(text, /alice/);
    assert.match(text, /\[redacted\]/);
    assert.ok(!text.includes('hunter2'), text);
  });

  test('a secret nested deeper than eight levels is still redacted', async () => {
    let deep: Record<string, unknown> = { password: 'hunter2-deep' };
    for (let i = 0; i < 10; i++) deep = { inner: deep };
    const text = await capture((logger) => logger.info('deep', { deep }));
    assert.ok(!text.includes('hunter2-deep'), text);
  });
});
