/**
 * Generated input (fast-check), built from api/openapi.yaml itself: every operation of the
 * document gets its share of thousands of requests, with path, query and header parameters and
 * bodies drawn from its schemas and then broken — wrong types, bad enum values, unknown fields,
 * dropped fields, malformed and oversized JSON, wrong content types, SQL, HTML, confusable
 * Unicode, NUL — sent as nobody, with forged or stale tokens, too few scopes, a viewer, another
 * organization's owner, or staff. Path ids are real fixtures (the caller's own and another
 * organization's), random uuids or hostile strings. A route added to the document is fuzzed
 * without touching this file.
 *
 * Asserts for each request: never a 5xx; every error is problem+json and documented (`call`
 * checks each response against the document); and a refused request changes no row of any
 * table, apart from the writes the document describes for that refusal (see
 * `DOCUMENTED_REFUSAL_WRITES`).
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { PassThrough } from 'node:stream';
import { after, before, test } from 'node:test';
import fc from 'fast-check';
import { makeOutboxMailer, type OutboxMailer } from '../../api/auth/mailer.ts';
import { findOperation, openApiDocument, responseErrors } from '../../api/openapi.ts';
import { loadConfig } from '../../core/config.ts';
import { hashPassword, makeApiToken, makeMasterKey, makeSecretBox } from '../../core/crypto.ts';
import { makeLogger } from '../../core/log.ts';
import { reconcileInstance } from '../../provisioner/reconciler.ts';
import { call, startTestApp, type TestApp } from '../support/app.ts';
import { makeTestDatabase, type TestDatabase } from '../support/db.ts';
import { type DnsTestServer, startDnsServer } from '../support/dns-server.ts';
import { createOrganization, createUserWithToken } from '../support/factories.ts';
import {
  anyJson,
  hostileString,
  invalidParameter,
  invalidValue,
  listOperations,
  type OperationSpec,
  resolveSchema,
  type Schema,
  validValue,
} from '../support/openapi-arbitraries.ts';

const RUNS = 2000;
/** The JSON body limit api/app.ts gives express.json. */
const BODY_LIMIT_BYTES = 100 * 1024;
const PASSWORD = 'correct horse battery staple';

const operations = listOperations(openApiDocument);

/**
 * Writes a refused request is documented to make; each names the tables it may change (their
 * row counts and checksums are left out of the comparison for that request only).
 */
const DOCUMENTED_REFUSAL_WRITES: Record<string, { statuses: number[]; tables: string[] }> = {
  // A failed DNS check is recorded before the 422: `lastCheckedAt` and `lastCheckError` on the
  // claim (columns outside the CustomDomain checksum, which must not change) and a
  // `domain.verify` audit row (verifyCustomDomain's description in api/openapi.yaml).
  verifyCustomDomain: { statuses: [422], tables: ['AuditLog'] },
  // A refused password sign-in is counted per e-mail address in LoginThrottle (the lockout,
  // which answers 429) and audited as `session.failed` (api/auth/local.ts `checkPassword`,
  // api/auth/auth.routes.ts).
  createSession: { statuses: [401, 429], tables: ['AuditLog', 'LoginThrottle'] },
};
/**
 * A POST with a well-formed Idempotency-Key that passes validation stores its response, a
 * refusal included, so that a retry replays it (Stripe's rules: api/idempotency.ts and the
 * IdempotencyKey parameter in api/openapi.yaml).
 */
const IDEMPOTENCY_TABLE = 'IdempotencyRecord';
const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,255}$/;

/**
 * Per table, each row's key and the columns updated in place (counts alone would miss them),
 * checksummed. `User`'s is the verified address; `LoginThrottle`'s the sign-in lockout.
 * `ApiToken."lastUsedAt"` is left out on purpose: every authenticated request may refresh it
 * (api/auth/bearer.ts), refused or not.
 */
const CHECKSUMS: Record<string, string> = {
  Instance: `id || '=' || status::text || ':' || generation`,
  Membership: `id || '=' || role::text`,
  ApiToken: `id || '=' || coalesce("revokedAt"::text, '-')`,
  Order: `id || '=' || status::text`,
  Invitation: `id || '=' || coalesce("revokedAt"::text, '-') || coalesce("acceptedAt"::text, '-')`,
  CustomDomain: `id || '=' || coalesce("verifiedAt"::text, '-')`,
  User: `id || '=' || coalesce("emailVerifiedAt"::text, '-')`,
  LoginThrottle: `"emailHash" || '=' || "failedCount" || coalesce("lockedUntil"::text, '-')`,
};

/** What a path id can name, from the path segment before it (or a field's name without `Id`). */
type Kind =
  | 'organization'
  | 'order'
  | 'instance'
  | 'token'
  | 'operation'
  | 'member'
  | 'invitation'
  | 'domain';
const KIND_BY_WORD: Record<string, Kind> = {
  organizations: 'organization',
  organization: 'organization',
  orders: 'order',
  order: 'order',
  instances: 'instance',
  instance: 'instance',
  tokens: 'token',
  operations: 'operation',
  operation: 'operation',
  members: 'member',
  user: 'member',
  invitations: 'invitation',
  invitation: 'invitation',
  domains: 'domain',
  domain: 'domain',
};

/** Who sends a request: nobody, a forged, malformed, revoked or expired token, or a real caller. */
const AUTHS = [
  'none',
  'forged',
  'malformed',
  'revoked',
  'expired',
  'customer',
  'reader',
  'viewer',
  'foreign',
  'staff',
] as const;
type Auth = (typeof AUTHS)[number];

let database: TestDatabase;
let dns: DnsTestServer;
let outbox: OutboxMailer;
let app: TestApp;
const box = makeSecretBox([makeMasterKey('test')]);
const log = makeLogger(loadConfig({ NODE_ENV: 'test' }), new PassThrough().resume());
const reconcilerDeps = () => ({ db: database.db, box, log });

/** The fixtures requests name, by what they are; lists grow as fixtures are recreated. */
const fixtures = {
  tokens: {} as Record<Exclude<Auth, 'none' | 'forged' | 'malformed'>, string>,
  ids: { own: {} as Record<Kind, string[]>, foreign: {} as Record<Kind, string[]> },
  ownOrg: '',
  foreignOrg: '',
  customer: { userId: '', token: '' },
  viewerUserId: '',
  memberUserId: '',
  foreignUserId: '',
  staffUserId: '',
  emails: [] as string[],
  staffEmail: '',
  pendingOrder: '',
  invitation: { id: '', token: '' },
};
let snapshotSql = '';

/** A value looked up in the fixtures when the request is sent, so a recreated fixture is found. */
class FixtureValue {
  constructor(
    readonly name: string,
    readonly pick = 0,
  ) {}
  [fc.toStringMethod](): string {
    return `fixture(${this.name}#${this.pick})`;
  }
}

let serial = 0;
const fresh = (what: string) => `fuzz-${what}-${++serial}-${Date.now().toString(36)}`;

function resolveFixture(value: FixtureValue): string {
  const [side, kind] = value.name.split(':') as [string, string];
  const pickFrom = (list: string[]) => list[value.pick % list.length] ?? randomUUID();
  switch (side) {
    case 'own':
    case 'foreign': {
      const lists = fixtures.ids[side];
      return pickFrom(kind === 'any' ? Object.values(lists).flat() : (lists[kind as Kind] ?? []));
    }
    case 'email':
      return pickFrom(fixtures.emails);
    case 'invitationToken':
      return fixtures.invitation.token;
    case 'fresh':
      return kind === 'domain'
        ? `${fresh('srv')}.woolly.test`
        : kind === 'hostname'
          ? `${fresh('host')}.example.org`
          : kind === 'key'
            ? randomUUID()
            : fresh(kind);
    default:
      throw new Error(`unknown fixture ${value.name}`);
  }
}

/** `body` with every FixtureValue replaced by what it names now. */
function resolveDeep(value: unknown): unknown {
  if (value instanceof FixtureValue) return resolveFixture(value);
  if (Array.isArray(value)) return value.map(resolveDeep);
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([key, field]) => [key, resolveDeep(field)]));
  }
  return value;
}

// ---------------------------------------------------------------------------------------------
// Arbitraries, from the document

type GeneratedBody =
  | { kind: 'none' }
  | { kind: 'json'; value: unknown; contentType: string }
  | { kind: 'raw'; text: string; contentType: string }
  | { kind: 'oversized'; value: unknown };

interface GeneratedRequest {
  operationId: string;
  auth: Auth;
  path: Record<string, unknown>;
  query: [string, unknown][];
  /** Header values; `current` and `stale` If-Match are resolved against the path's instance. */
  headers: Record<string, unknown>;
  body: GeneratedBody;
}

function kindOfPathParameter(pathTemplate: string, name: string): Kind | 'any' {
  if (name !== 'id' && name.endsWith('Id')) return KIND_BY_WORD[name.slice(0, -2)] ?? 'any';
  const segments = pathTemplate.split('/');
  const before = segments[segments.indexOf(`{${name}}`) - 1] ?? '';
  return KIND_BY_WORD[before] ?? 'any';
}

/** A real id of `kind`: the caller's side, another organization's, or one of another kind. */
function fixtureId(kind: Kind | 'any'): fc.Arbitrary<unknown> {
  return fc.oneof(
    { weight: 6, arbitrary: fc.nat(30).map((n) => new FixtureValue(`own:${kind}`, n)) },
    { weight: 2, arbitrary: fc.nat(30).map((n) => new FixtureValue(`foreign:${kind}`, n)) },
    { weight: 1, arbitrary: fc.nat(200).map((n) => new FixtureValue('own:any', n)) },
  );
}

function pathValue(
  operation: OperationSpec,
  name: string,
  schema: Schema,
  wild: boolean,
): fc.Arbitrary<unknown> {
  const resolved = resolveSchema(openApiDocument, schema);
  if (resolved.format === 'uuid') {
    if (!wild) return fixtureId(kindOfPathParameter(operation.pathTemplate, name));
    return fc.oneof(
      { weight: 8, arbitrary: fixtureId(kindOfPathParameter(operation.pathTemplate, name)) },
      { weight: 1, arbitrary: fc.uuid() },
      { weight: 1, arbitrary: hostileString },
    );
  }
  if (!wild) return validValue(openApiDocument, resolved);
  return fc.oneof(
    { weight: 3, arbitrary: validValue(openApiDocument, resolved) },
    { weight: 1, arbitrary: invalidParameter(openApiDocument, resolved) },
  );
}

const sendableHeader = (value: string) => /^[\t\x20-\x7e\x80-\xff]*$/.test(value);

function queryValue(name: string, schema: Schema, wild: boolean): fc.Arbitrary<unknown> {
  const resolved = resolveSchema(openApiDocument, schema);
  const kind = name.endsWith('Id') ? KIND_BY_WORD[name.slice(0, -2)] : undefined;
  return fc.oneof(
    { weight: 3, arbitrary: validValue(openApiDocument, resolved).map(String) },
    ...(kind ? [{ weight: 3, arbitrary: fixtureId(kind) }] : []),
    ...(wild ? [{ weight: 4, arbitrary: invalidParameter(openApiDocument, resolved) }] : []),
  );
}

function queryArbitrary(operation: OperationSpec, wild: boolean): fc.Arbitrary<[string, unknown][]> {
  const parameters = operation.parameters.filter((p) => p.in === 'query');
  const entries = parameters.map((p) =>
    fc.oneof(
      { weight: 2, arbitrary: fc.constant([] as [string, unknown][]) },
      {
        weight: 2,
        arbitrary: queryValue(p.name, p.schema, wild).map((v): [string, unknown][] => [[p.name, v]]),
      },
      {
        weight: wild ? 1 : 0,
        arbitrary: fc
          .tuple(queryValue(p.name, p.schema, wild), queryValue(p.name, p.schema, wild))
          .map(([a, b]): [string, unknown][] => [
            [p.name, a],
            [p.name, b],
          ]),
      },
    ),
  );
  const unknown = fc.option(
    fc
      .tuple(
        hostileString.filter((key) => key.length > 0),
        hostileString,
      )
      .map(([k, v]): [string, unknown] => [k, v]),
    { freq: 3, nil: undefined },
  );
  if (!wild) return fc.tuple(...entries).map((chosen) => chosen.flat());
  return fc
    .tuple(fc.tuple(...entries), unknown)
    .map(([chosen, extra]) => [...chosen.flat(), ...(extra ? [extra] : [])]);
}

/** A header parameter: valid (current, stale or absent), or, when `wild`, malformed as well. */
function headerValue(name: string, schema: Schema, wild: boolean): fc.Arbitrary<unknown> {
  const lower = name.toLowerCase();
  const malformed = wild
    ? [
        { weight: 2, arbitrary: invalidParameter(openApiDocument, schema).filter(sendableHeader) },
        ...(lower === 'if-match'
          ? [{ weight: 2, arbitrary: fc.constantFrom('*', 'W/"1"', '"abc"', '1', '""', '"1234567890"') }]
          : []),
      ]
    : [];
  if (lower === 'if-match') {
    return fc.oneof(
      { weight: 3, arbitrary: fc.constant(new FixtureValue('ifMatch:current')) },
      { weight: 1, arbitrary: fc.constant(new FixtureValue('ifMatch:stale')) },
      ...malformed,
    );
  }
  if (lower === 'idempotency-key') {
    return fc.oneof(
      { weight: 3, arbitrary: fc.constant(new FixtureValue('fresh:key')) },
      { weight: 1, arbitrary: fc.constant('fuzz-reused-key') },
      ...malformed,
    );
  }
  return fc.oneof(
    { weight: 2, arbitrary: validValue(openApiDocument, schema).map(String).filter(sendableHeader) },
    ...malformed,
  );
}

function headersArbitrary(operation: OperationSpec, wild: boolean): fc.Arbitrary<Record<string, unknown>> {
  const parameters = operation.parameters.filter((p) => p.in === 'header');
  return fc.record(Object.fromEntries(parameters.map((p) => [p.name, headerValue(p.name, p.schema, wild)])), {
    requiredKeys: [],
  });
}

/** Real values for body fields by their name, so valid bodies reach the handlers' own checks. */
function fixtureField(name: string, schema: Schema): fc.Arbitrary<unknown>[] {
  const kind = name.endsWith('Id') ? KIND_BY_WORD[name.slice(0, -2)] : undefined;
  if (kind && schema.format === 'uuid') return [fixtureId(kind)];
  if (name === 'email') return [fc.nat(10).map((n) => new FixtureValue('email', n))];
  if (name === 'token') return [fc.constant(new FixtureValue('invitationToken'))];
  if (['domain', 'hostname', 'slug'].includes(name)) return [fc.constant(new FixtureValue(`fresh:${name}`))];
  return [];
}

/** A body the schema accepts: the documented example with fields swapped for fixtures or schema values. */
function validBody(operation: OperationSpec, schema: Schema): fc.Arbitrary<Record<string, unknown>> {
  const example = operation.body?.example;
  const properties = (schema.properties ?? {}) as Record<string, Schema>;
  if (!example || typeof example !== 'object' || Array.isArray(example)) {
    return validValue(openApiDocument, schema) as fc.Arbitrary<Record<string, unknown>>;
  }
  const fields = Object.entries(example as Record<string, unknown>).map(([name, value]) => {
    const field = resolveSchema(openApiDocument, properties[name] ?? {});
    return [
      name,
      fc.oneof(
        { weight: 3, arbitrary: fc.constant(value) },
        ...fixtureField(name, field).map((arbitrary) => ({ weight: 4, arbitrary })),
        { weight: 1, arbitrary: validValue(openApiDocument, field) },
      ),
    ] as const;
  });
  return fc.record(Object.fromEntries(fields));
}

const wrongContentType = fc.constantFrom(
  'text/plain',
  'application/x-www-form-urlencoded',
  'application/json; charset=latin1',
  'application/xml',
  'multipart/form-data; boundary=x',
);
const malformedJson = fc.oneof(
  fc.string(),
  fc.constantFrom('{', '[1,2', '{"a":1}}', '{"a":', "{'a':1}", '{"a":1,}', 'NaN', '\u0000', '\ufeff{}'),
  fc.constantFrom('null', '"text"', '1', 'true', '[]'),
);

function bodyArbitrary(operation: OperationSpec, wild: boolean): fc.Arbitrary<GeneratedBody> {
  const none = fc.constant<GeneratedBody>({ kind: 'none' });
  // fetch sends no body with GET.
  if (operation.method === 'GET') return none;
  if (!wild) {
    if (!operation.body) return none;
    return validBody(operation, resolveSchema(openApiDocument, operation.body.schema)).map(
      (value): GeneratedBody => ({ kind: 'json', value, contentType: 'application/json' }),
    );
  }
  if (!operation.body) {
    // The document takes no body here, so the app never reads one; sent anyway, it is ignored.
    return fc.oneof(
      { weight: 6, arbitrary: none },
      {
        weight: 1,
        arbitrary: fc
          .tuple(malformedJson, fc.oneof(fc.constant('application/json'), wrongContentType))
          .map(([text, contentType]): GeneratedBody => ({ kind: 'raw', text, contentType })),
      },
    );
  }
  const schema = resolveSchema(openApiDocument, operation.body.schema);
  const names = Object.keys((schema.properties ?? {}) as Record<string, Schema>);
  const valid = validBody(operation, schema);
  const json = (value: unknown): GeneratedBody => ({ kind: 'json', value, contentType: 'application/json' });
  const mutations: fc.WeightedArbitrary<GeneratedBody>[] = [
    { weight: 2, arbitrary: valid.map(json) },
    {
      weight: 1,
      arbitrary: fc
        .tuple(valid, fc.string(), anyJson)
        .map(([body, key, v]) => json({ ...body, [`x${key}`]: v })),
    },
    { weight: 1, arbitrary: anyJson.map(json) },
    {
      weight: 1,
      arbitrary: fc
        .tuple(malformedJson, fc.constantFrom('application/json', 'application/json; charset=utf-8'))
        .map(([text, contentType]): GeneratedBody => ({ kind: 'raw', text, contentType })),
    },
    { weight: 1, arbitrary: valid.map((value): GeneratedBody => ({ kind: 'oversized', value })) },
    { weight: 1, arbitrary: none },
    {
      weight: 1,
      arbitrary: fc
        .tuple(valid, wrongContentType)
        .map(([value, contentType]): GeneratedBody => ({ kind: 'json', value, contentType })),
    },
  ];
  if (names.length > 0) {
    const field = fc.constantFrom(...names);
    mutations.push(
      {
        weight: 3,
        arbitrary: fc
          .tuple(valid, field)
          .chain(([body, name]) =>
            fc
              .oneof(
                invalidValue(
                  openApiDocument,
                  ((schema.properties as Record<string, Schema>)[name] ?? {}) as Schema,
                ),
                anyJson,
              )
              .map((value) => json({ ...body, [name]: value })),
          ),
      },
      {
        weight: 1,
        arbitrary: fc.tuple(valid, field).map(([body, name]) => {
          const { [name]: _dropped, ...rest } = body;
          return json(rest);
        }),
      },
    );
  }
  return fc.oneof(...mutations);
}

/**
 * Which part of a request is broken: mostly one at a time (so every check of every
 * operation is reached, past the ones before it), sometimes none, sometimes all.
 */
const FOCUS = { none: 4, auth: 2, path: 1, query: 1, headers: 1, body: 3, all: 1 } as const;
/** Callers with a token that works; the others (`wild` auth) have none, a bad or a stale one. */
const GOOD_AUTHS: Auth[] = [
  'customer',
  'customer',
  'customer',
  'staff',
  'staff',
  'viewer',
  'reader',
  'foreign',
];

function requestArbitrary(operation: OperationSpec): fc.Arbitrary<GeneratedRequest> {
  const pathParameters = operation.parameters.filter((p) => p.in === 'path');
  return fc.oneof(
    ...Object.entries(FOCUS).map(([focus, weight]) => {
      const wild = (part: string) => focus === part || focus === 'all';
      return {
        weight,
        arbitrary: fc.record({
          operationId: fc.constant(operation.operationId),
          auth: wild('auth') ? fc.constantFrom(...AUTHS) : fc.constantFrom(...GOOD_AUTHS),
          path: fc.record(
            Object.fromEntries(
              pathParameters.map((p) => [p.name, pathValue(operation, p.name, p.schema, wild('path'))]),
            ),
          ),
          query: queryArbitrary(operation, wild('query')),
          headers: headersArbitrary(operation, wild('headers')),
          body: bodyArbitrary(operation, wild('body')),
        }),
      };
    }),
  );
}

// ---------------------------------------------------------------------------------------------
// Sending

/** Operations whose success is an endless stream: the request is aborted once headers arrive. */
const streaming = new Set(
  Object.values(openApiDocument.paths).flatMap((item) =>
    Object.values(item)
      .filter((operation) => typeof operation === 'object' && operation && 'operationId' in operation)
      .filter((operation) =>
        Object.values(
          (operation as { responses: Record<string, { content?: Record<string, unknown> }> }).responses,
        ).some((response) => response.content?.['text/event-stream']),
      )
      .map((operation) => (operation as { operationId: string }).operationId),
  ),
);

interface Sent {
  method: string;
  url: string;
  headers: Record<string, string>;
  body?: string;
  idempotencyKey?: string;
}

async function ifMatch(instanceId: string, stale: boolean): Promise<string> {
  const rows = /^[0-9a-f-]{36}$/i.test(instanceId)
    ? await database.db.$queryRaw<{ generation: number }[]>`
        select generation from "Instance" where id = ${instanceId}::uuid`
    : [];
  const generation = rows[0]?.generation ?? 1;
  return `"${stale ? generation - 1 : generation}"`;
}

async function build(operation: OperationSpec, generated: GeneratedRequest): Promise<Sent> {
  const path: Record<string, string> = {};
  for (const [name, value] of Object.entries(generated.path)) path[name] = String(resolveDeep(value));
  const pathname = operation.pathTemplate.replace(/\{([^}]+)\}/g, (_m, name: string) =>
    encodeURIComponent(path[name] ?? ''),
  );
  const search = new URLSearchParams();
  for (const [name, value] of generated.query) search.append(name, String(resolveDeep(value)));
  const query = search.size > 0 ? `?${search}` : '';

  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(generated.headers)) {
    if (value instanceof FixtureValue && value.name.startsWith('ifMatch:')) {
      headers[name] = await ifMatch(path.id ?? '', value.name === 'ifMatch:stale');
    } else {
      headers[name] = String(resolveDeep(value));
    }
  }
  const token = generated.auth in fixtures.tokens ? fixtures.tokens[generated.auth as 'customer'] : undefined;
  if (token) headers.authorization = `Bearer ${token}`;
  if (generated.auth === 'forged') headers.authorization = 'Bearer wly_forgedforgedforgedforgedforged';
  if (generated.auth === 'malformed') headers.authorization = 'Basic Zm9vOmJhcg==';

  let body: string | undefined;
  const given = generated.body;
  if (given.kind === 'json') {
    body = JSON.stringify(resolveDeep(given.value)) ?? 'null';
    headers['content-type'] = given.contentType;
  } else if (given.kind === 'raw') {
    body = given.text;
    headers['content-type'] = given.contentType;
  } else if (given.kind === 'oversized') {
    const value = resolveDeep(given.value) as Record<string, unknown>;
    body = JSON.stringify({ ...value, padding: 'x'.repeat(BODY_LIMIT_BYTES + 10_000) });
    headers['content-type'] = 'application/json';
  }
  const idempotencyKey = Object.entries(headers).find(
    ([name]) => name.toLowerCase() === 'idempotency-key',
  )?.[1];
  return { method: operation.method, url: `${app.url}${pathname}${query}`, headers, body, idempotencyKey };
}

/**
 * An event stream's success never ends: the request is aborted once the headers are in, and
 * a refusal is read and checked against the document as `call` checks every other response.
 */
async function openStream(sent: Sent): Promise<{ status: number; headers: Headers }> {
  const controller = new AbortController();
  const response = await fetch(sent.url, { headers: sent.headers, signal: controller.signal });
  if (response.status === 200) {
    controller.abort();
    assert.match(response.headers.get('content-type') ?? '', /^text\/event-stream/);
    return { status: response.status, headers: response.headers };
  }
  const text = await response.text();
  const operation = findOperation('GET', new URL(sent.url).pathname);
  if (operation) {
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      // Not JSON: responseErrors says so.
    }
    const errors = responseErrors(operation.operationId, response.status, parsed);
    assert.deepEqual(errors, [], `GET ${sent.url} → ${response.status} does not match the document`);
  }
  return { status: response.status, headers: response.headers };
}

async function send(
  operationId: string,
  sent: Sent,
): Promise<{ status: number; headers: Headers; body: unknown }> {
  if (streaming.has(operationId)) return { ...(await openStream(sent)), body: null };
  return call(sent.url, {
    method: sent.method,
    headers: sent.headers,
    ...(sent.body !== undefined ? { rawBody: sent.body } : {}),
  });
}

// ---------------------------------------------------------------------------------------------
// The database, before and after

/**
 * One query for the row count of every table (all of schema public but Prisma's migrations
 * table, and the job queue) and a checksum of the columns in CHECKSUMS, read from the catalog
 * so a new table is counted without touching this file.
 */
async function makeSnapshotSql(): Promise<string> {
  const tables = await database.db.$queryRaw<{ name: string }[]>`
    select table_name as name from information_schema.tables
     where table_schema = 'public' and table_type = 'BASE TABLE' and table_name <> '_prisma_migrations'
     order by table_name`;
  const quote = (name: string) => `"${name.replaceAll('"', '""')}"`;
  const literal = (text: string) => `'${text.replaceAll("'", "''")}'`;
  const parts = [
    ...tables.map(
      ({ name }) => `select ${literal(name)}, (select count(*) from public.${quote(name)})::text`,
    ),
    `select 'graphile_worker._private_jobs', (select count(*) from graphile_worker._private_jobs)::text`,
    ...Object.entries(CHECKSUMS)
      .filter(([table]) => tables.some(({ name }) => name === table))
      .map(
        ([table, columns]) =>
          `select ${literal(`${table}#state`)}, (select md5(coalesce(string_agg(row, ',' order by row), '')) from (select ${columns} as row from public.${quote(table)}) as rows)`,
      ),
  ];
  return `select json_object_agg(k, v)::text as snapshot from (${parts.join(' union all ')}) as t(k, v)`;
}

async function snapshot(): Promise<Record<string, string>> {
  const [row] = await database.db.$queryRawUnsafe<{ snapshot: string }[]>(snapshotSql);
  return JSON.parse(row?.snapshot ?? '{}');
}

/** The tables a refused request may have written, by the documented exceptions. */
function allowedWrites(operationId: string | undefined, status: number, sent: Sent): Set<string> {
  const allowed = new Set<string>();
  const documented = operationId ? DOCUMENTED_REFUSAL_WRITES[operationId] : undefined;
  if (documented?.statuses.includes(status)) for (const table of documented.tables) allowed.add(table);
  // HTTP drops the spaces and tabs around a header value, so the server sees the key trimmed.
  const key = sent.idempotencyKey?.replace(/^[ \t]+|[ \t]+$/g, '');
  if (sent.method === 'POST' && key !== undefined && IDEMPOTENCY_KEY.test(key)) {
    allowed.add(IDEMPOTENCY_TABLE);
  }
  return allowed;
}

function changedTables(before: Record<string, string>, after: Record<string, string>, allowed: Set<string>) {
  return [...new Set([...Object.keys(before), ...Object.keys(after)])]
    .filter((key) => before[key] !== after[key])
    .filter((key) => !allowed.has(key.replace(/#state$/, '')))
    .map((key) => `${key}: ${before[key]} → ${after[key]}`);
}

// ---------------------------------------------------------------------------------------------
// Fixtures

async function createToken(
  userId: string,
  scopes: string[],
  extra: { revokedAt?: Date; expiresAt?: Date } = {},
) {
  const token = makeApiToken();
  const row = await database.db.apiToken.create({
    data: { userId, name: 'fuzz', prefix: token.prefix, tokenHash: token.hash, scopes, ...extra },
  });
  return { id: row.id, token: token.token };
}

/** A server placed by staff (paid at once) and reconciled to running, as the worker would. */
async function runningInstance(organizationId: string): Promise<{ orderId: string; instanceId: string }> {
  const placed = await call(`${app.url}/v1/orders`, {
    token: fixtures.tokens.staff,
    body: { organizationId, plan: 'community', domain: `${fresh('run')}.woolly.test` },
  });
  assert.equal(placed.status, 201, JSON.stringify(placed.body));
  await reconcileInstance(reconcilerDeps(), placed.body.instanceId);
  return { orderId: placed.body.id, instanceId: placed.body.instanceId };
}

async function placePendingOrder(): Promise<void> {
  const placed = await call(`${app.url}/v1/orders`, {
    token: fixtures.customer.token,
    body: { organizationId: fixtures.ownOrg, plan: 'starter', domain: `${fresh('pending')}.woolly.test` },
  });
  assert.equal(placed.status, 201, JSON.stringify(placed.body));
  fixtures.pendingOrder = placed.body.id;
  fixtures.ids.own.order.push(placed.body.id);
  fixtures.ids.own.instance.push(placed.body.instanceId);
}

async function inviteStaff(): Promise<void> {
  await database.db.membership.deleteMany({
    where: { organizationId: fixtures.ownOrg, userId: fixtures.staffUserId },
  });
  const invited = await call(`${app.url}/v1/organizations/${fixtures.ownOrg}/invitations`, {
    token: fixtures.customer.token,
    body: { email: fixtures.staffEmail, role: 'viewer' },
  });
  assert.equal(invited.status, 201, JSON.stringify(invited.body));
  const mail = outbox.sent.findLast((sent) => sent.to === fixtures.staffEmail);
  const token = /#accept-invitation=([A-Za-z0-9_-]+)/.exec(mail?.text ?? '')?.[1];
  assert.ok(token, 'the invitation mail carries its token');
  fixtures.invitation = { id: invited.body.id, token };
  fixtures.ids.own.invitation.push(invited.body.id);
}

async function claimDomain(organizationId: string, token: string, publish: boolean): Promise<string> {
  const claimed = await call(`${app.url}/v1/organizations/${organizationId}/domains`, {
    token,
    body: { hostname: `${fresh('claim')}.example.org` },
  });
  assert.equal(claimed.status, 201, JSON.stringify(claimed.body));
  if (publish) dns.txt.set(claimed.body.dnsRecord.name, [claimed.body.dnsRecord.value]);
  return claimed.body.id;
}

/**
 * After an accepted change, brings the fixtures back to a useful state: changed servers
 * reconciled (as the worker would), and what the change consumed recreated — the members'
 * roles, a pending order, a running server, a pending invitation, an unverified claim.
 */
async function settle(): Promise<void> {
  const { db } = database;
  const changing = await db.instance.findMany({
    where: { status: { in: ['provisioning', 'updating'] } },
    select: { id: true },
  });
  for (const { id } of changing) await reconcileInstance(reconcilerDeps(), id);
  const [order, running, invitation, unverified] = await Promise.all([
    db.order.findUnique({ where: { id: fixtures.pendingOrder }, select: { status: true } }),
    db.instance.count({ where: { organizationId: fixtures.ownOrg, status: 'running' } }),
    db.invitation.findUnique({
      where: { id: fixtures.invitation.id },
      select: { acceptedAt: true, revokedAt: true },
    }),
    db.customDomain.count({ where: { organizationId: fixtures.ownOrg, verifiedAt: null } }),
  ]);
  const roles: [string, string, 'owner' | 'admin' | 'viewer'][] = [
    [fixtures.ownOrg, fixtures.customer.userId, 'owner'],
    [fixtures.ownOrg, fixtures.viewerUserId, 'viewer'],
    [fixtures.ownOrg, fixtures.memberUserId, 'admin'],
    [fixtures.foreignOrg, fixtures.foreignUserId, 'owner'],
  ];
  for (const [organizationId, userId, role] of roles) {
    await db.membership.upsert({
      where: { organizationId_userId: { organizationId, userId } },
      create: { organizationId, userId, role },
      update: { role },
    });
  }
  if (order?.status !== 'pending_payment') await placePendingOrder();
  if (running === 0) {
    const created = await runningInstance(fixtures.ownOrg);
    fixtures.ids.own.order.push(created.orderId);
    fixtures.ids.own.instance.push(created.instanceId);
  }
  if (!invitation || invitation.acceptedAt || invitation.revokedAt) await inviteStaff();
  if (unverified === 0) {
    fixtures.ids.own.domain.push(await claimDomain(fixtures.ownOrg, fixtures.customer.token, false));
  }
}

before(async () => {
  database = await makeTestDatabase();
  dns = await startDnsServer();
  outbox = makeOutboxMailer({ from: 'Woolly <no-reply@woolly.test>', log });
  // The app's resolver asks the test DNS server, so verification stays fast and offline.
  app = await startTestApp(database, { WOOLLY_DNS_SERVERS: dns.address }, { mailer: outbox });
  const { db } = database;
  for (const side of ['own', 'foreign'] as const) {
    for (const kind of Object.values(KIND_BY_WORD)) fixtures.ids[side][kind] = [];
  }
  const { own, foreign } = fixtures.ids;

  const customer = await createUserWithToken(db);
  const viewer = await createUserWithToken(db);
  const member = await createUserWithToken(db);
  const stranger = await createUserWithToken(db);
  const staff = await createUserWithToken(db, { staffRole: 'admin' });
  fixtures.customer = customer;
  fixtures.viewerUserId = viewer.userId;
  fixtures.memberUserId = member.userId;
  fixtures.foreignUserId = stranger.userId;
  fixtures.staffUserId = staff.userId;
  fixtures.ownOrg = await createOrganization(db, customer.userId, 'owner');
  fixtures.foreignOrg = await createOrganization(db, stranger.userId, 'owner');
  await db.membership.createMany({
    data: [
      { organizationId: fixtures.ownOrg, userId: viewer.userId, role: 'viewer' },
      { organizationId: fixtures.ownOrg, userId: member.userId, role: 'admin' },
    ],
  });
  // Someone who signs in with a password: the example body of createSession is theirs.
  const signIn = await db.user.create({
    data: {
      email: 'ada@example.com',
      passwordHash: await hashPassword(PASSWORD),
      emailVerifiedAt: new Date(),
    },
  });
  const { token: reader } = await createToken(customer.userId, ['instances:read']);
  const { token: revoked } = await createToken(customer.userId, ['instances:read', 'instances:write'], {
    revokedAt: new Date(),
  });
  const { token: expired } = await createToken(customer.userId, ['instances:read', 'instances:write'], {
    expiresAt: new Date(Date.now() - 60_000),
  });
  fixtures.tokens = {
    customer: customer.token,
    reader,
    revoked,
    expired,
    viewer: viewer.token,
    foreign: stranger.token,
    staff: staff.token,
  };
  const users = await db.user.findMany({
    where: { id: { in: [customer.userId, viewer.userId, stranger.userId, staff.userId, signIn.id] } },
  });
  fixtures.emails = users.map((user) => user.email);
  fixtures.staffEmail = users.find((user) => user.id === staff.userId)?.email ?? '';

  own.organization.push(fixtures.ownOrg);
  foreign.organization.push(fixtures.foreignOrg);
  own.member.push(viewer.userId, member.userId, customer.userId);
  foreign.member.push(stranger.userId);
  // A token of the customer's to revoke (not one a request authenticates with), and a stranger's.
  own.token.push((await createToken(customer.userId, ['instances:read'])).id);
  foreign.token.push((await createToken(stranger.userId, ['instances:read'])).id);

  await placePendingOrder();
  for (const [side, organizationId] of [
    ['own', fixtures.ownOrg],
    ['foreign', fixtures.foreignOrg],
  ] as const) {
    const { orderId, instanceId } = await runningInstance(organizationId);
    fixtures.ids[side].order.push(orderId);
    fixtures.ids[side].instance.push(instanceId);
    const steps = await db.operation.findMany({ where: { instanceId }, select: { id: true } });
    fixtures.ids[side].operation.push(...steps.map((step) => step.id));
  }
  const foreignOrder = await call(`${app.url}/v1/orders`, {
    token: stranger.token,
    body: { organizationId: fixtures.foreignOrg, plan: 'starter', domain: `${fresh('foreign')}.woolly.test` },
  });
  foreign.order.push(foreignOrder.body.id);
  foreign.instance.push(foreignOrder.body.instanceId);

  await inviteStaff();
  const foreignInvitation = await call(`${app.url}/v1/organizations/${fixtures.foreignOrg}/invitations`, {
    token: stranger.token,
    body: { email: 'grace@example.com', role: 'viewer' },
  });
  foreign.invitation.push(foreignInvitation.body.id);

  // One claim whose record is published (verify succeeds), one whose record is not (422).
  own.domain.push(await claimDomain(fixtures.ownOrg, customer.token, true));
  own.domain.push(await claimDomain(fixtures.ownOrg, customer.token, false));
  foreign.domain.push(await claimDomain(fixtures.foreignOrg, stranger.token, false));

  snapshotSql = await makeSnapshotSql();
});

after(async () => {
  await app.release();
  await dns.release();
  await database.release();
});

test(`${RUNS} requests generated from every operation of the OpenAPI document: no 5xx, documented problem+json errors, refused requests write nothing`, async (t) => {
  assert.ok(operations.length > 0);
  const statuses = new Map<number, number>();
  const perOperation = new Map<string, number>();
  const byId = new Map(operations.map((operation) => [operation.operationId, operation]));
  await fc.assert(
    fc.asyncProperty(fc.oneof(...operations.map(requestArbitrary)), async (generated) => {
      const operation = byId.get(generated.operationId);
      assert.ok(operation);
      const sent = await build(operation, generated);
      const before = await snapshot();
      const response = await send(operation.operationId, sent);
      const where = `${sent.method} ${sent.url.slice(app.url.length, 300)} → ${response.status}`;
      statuses.set(response.status, (statuses.get(response.status) ?? 0) + 1);
      perOperation.set(operation.operationId, (perOperation.get(operation.operationId) ?? 0) + 1);
      assert.ok(response.status < 500, `${where} ${JSON.stringify(response.body)}`);
      if (response.status >= 400) {
        assert.match(response.headers.get('content-type') ?? '', /^application\/problem\+json/, where);
        // The operation the server routed it to: a hostile path may route elsewhere.
        const routed = findOperation(sent.method, new URL(sent.url).pathname)?.operationId;
        const changed = changedTables(before, await snapshot(), allowedWrites(routed, response.status, sent));
        assert.deepEqual(changed, [], `${where} wrote rows: ${JSON.stringify(response.body)}`);
      } else if (sent.method !== 'GET') {
        await settle();
      }
    }),
    { numRuns: RUNS },
  );

  // Every operation got its share, and both sides were reached: accepted and refused requests.
  const missing = operations.filter(
    (op) => (perOperation.get(op.operationId) ?? 0) < RUNS / operations.length / 4,
  );
  assert.deepEqual(
    missing.map((op) => op.operationId),
    [],
    'operations with too few requests',
  );
  const count = (test: (status: number) => boolean) =>
    [...statuses].filter(([status]) => test(status)).reduce((sum, [, n]) => sum + n, 0);
  const summary = JSON.stringify(Object.fromEntries([...statuses].sort(([a], [b]) => a - b)));
  assert.ok(count((s) => s < 300) > RUNS * 0.05, `too few accepted: ${summary}`);
  assert.ok(count((s) => s >= 400) > RUNS / 2, `too few refused: ${summary}`);
  for (const status of [400, 401, 403, 404, 413, 415, 422])
    assert.ok(statuses.has(status), `no ${status}: ${summary}`);
  t.diagnostic(`generated-input: ${operations.length} operations, statuses ${summary}`);
});
