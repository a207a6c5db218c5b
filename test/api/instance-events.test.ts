import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { call, startTestApp, type TestApp } from '../support/app.ts';
import { makeTestDatabase, type TestDatabase } from '../support/db.ts';
import { createOrganization, createUserWithToken } from '../support/factories.ts';

let database: TestDatabase;
let app: TestApp;
let user: { userId: string; token: string };
let instanceId: string;

before(async () => {
  database = await makeTestDatabase();
  app = await startTestApp(database);
  user = await createUserWithToken(database.db);
  const org = await createOrganization(database.db, user.userId);
  const placed = await call(`${app.url}/v1/orders`, {
    token: user.token,
    body: { organizationId: org, plan: 'starter', domain: 'streamed.woolly.test' },
  });
  instanceId = placed.body.instanceId;
});
after(async () => {
  await app.release();
  await database.release();
});

interface Message {
  id: string;
  event: string;
  data: { id: string; type: string; message: string };
}

/** Opens the stream and collects messages until `count` arrived (or the timeout). */
async function readStream(headers: Record<string, string>, count: number, whileOpen?: () => Promise<void>) {
  const controller = new AbortController();
  const response = await fetch(`${app.url}/v1/instances/${instanceId}/events`, {
    headers: { authorization: `Bearer ${user.token}`, ...headers },
    signal: controller.signal,
  });
  assert.equal(response.status, 200);
  assert.match(response.headers.get('content-type') ?? '', /^text\/event-stream/);
  const messages: Message[] = [];
  const decoder = new TextDecoder();
  let buffer = '';
  const timeout = setTimeout(() => controller.abort(), 10_000);
  const reader = response.body?.getReader();
  assert.ok(reader);
  let triggered = false;
  try {
    while (messages.length < count) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let end = buffer.indexOf('\n\n');
      while (end >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const fields = Object.fromEntries(
          block
            .split('\n')
            .filter((line) => !line.startsWith(':'))
            .map((line) => [line.slice(0, line.indexOf(':')), line.slice(line.indexOf(':') + 2)]),
        );
        if (fields.id && fields.event && fields.data) {
          messages.push({ id: fields.id, event: fields.event, data: JSON.parse(fields.data) });
        }
        end = buffer.indexOf('\n\n');
      }
      if (!triggered && whileOpen) {
        triggered = true;
        await whileOpen();
      }
    }
  } finally {
    clearTimeout(timeout);
    controller.abort();
  }
  return messages;
}

test('the stream sends the backlog, then new events live, and resumes after Last-Event-ID', async () => {
  await database.db.event.create({ data: { instanceId, type: 'instance.note', message: 'first' } });
  const messages = await readStream({}, 2, async () => {
    await database.db.event.create({ data: { instanceId, type: 'instance.running', message: 'live' } });
  });
  assert.deepEqual(
    messages.map((m) => [m.event, m.data.message]),
    [
      ['instance.note', 'first'],
      ['instance.running', 'live'],
    ],
  );
  assert.equal(messages[0]?.id, messages[0]?.data.id);

  await database.db.event.create({ data: { instanceId, type: 'instance.note', message: 'after' } });
  const resumed = await readStream({ 'last-event-id': messages[1]?.id ?? '' }, 1);
  assert.deepEqual(
    resumed.map((m) => m.data.message),
    ['after'],
  );
});

test('a foreign or missing instance answers 404, and no token 401, before any stream opens', async () => {
  const stranger = await createUserWithToken(database.db);
  const foreign = await call(`${app.url}/v1/instances/${instanceId}/events`, { token: stranger.token });
  assert.equal(foreign.status, 404);
  const anonymous = await call(`${app.url}/v1/instances/${instanceId}/events`);
  assert.equal(anonymous.status, 401);
  const badAfter = await call(`${app.url}/v1/instances/${instanceId}/events?after=x`, { token: user.token });
  assert.equal(badAfter.status, 400);
});
