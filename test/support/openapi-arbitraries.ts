/**
 * fast-check arbitraries built from api/openapi.yaml: every operation with its parameters and
 * request body, values that match a schema, and values that break it. The generated-input
 * test (test/api/generated-input.test.ts) fuzzes every operation from these, so a route
 * added to the document is fuzzed without touching the test.
 */
import fc from 'fast-check';
import type { OpenApiDocument } from '../../api/openapi.ts';

/** A JSON Schema (OpenAPI 3.1 dialect), as the document holds it. */
export type Schema = Record<string, unknown>;

/** One parameter of an operation, its `$ref` resolved. */
export interface ParameterSpec {
  name: string;
  in: 'path' | 'query' | 'header' | 'cookie';
  required: boolean;
  schema: Schema;
}

/** One operation of the document, with what a request to it carries. */
export interface OperationSpec {
  operationId: string;
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  pathTemplate: string;
  parameters: ParameterSpec[];
  /** The JSON request body; null when the operation takes none. */
  body: { schema: Schema; example: unknown; required: boolean } | null;
}

const METHODS = ['get', 'post', 'put', 'patch', 'delete'] as const;

/** The component a `#/components/<section>/<name>` reference names. */
function component(document: OpenApiDocument, ref: string): unknown {
  const [, , section, name] = ref.split('/');
  const found = (document.components as unknown as Record<string, Record<string, unknown>>)[section ?? '']?.[
    name ?? ''
  ];
  if (found === undefined) throw new Error(`openapi: unknown reference ${ref}`);
  return found;
}

/**
 * A schema with its `$ref` followed and `allOf` merged (properties and `required` only: the
 * request schemas use nothing more), so its top-level fields can be listed.
 */
export function resolveSchema(document: OpenApiDocument, schema: Schema): Schema {
  if (typeof schema.$ref === 'string')
    return resolveSchema(document, component(document, schema.$ref) as Schema);
  if (!Array.isArray(schema.allOf)) return schema;
  const parts = (schema.allOf as Schema[]).map((part) => resolveSchema(document, part));
  return {
    ...schema,
    type: 'object',
    properties: Object.assign({}, ...parts.map((part) => part.properties ?? {}), schema.properties ?? {}),
    required: [
      ...parts.flatMap((part) => (part.required as string[]) ?? []),
      ...((schema.required as string[]) ?? []),
    ],
  };
}

/** Every operation of the document, in document order. */
export function listOperations(document: OpenApiDocument): OperationSpec[] {
  const operations: OperationSpec[] = [];
  for (const [pathTemplate, item] of Object.entries(document.paths)) {
    for (const method of METHODS) {
      const operation = item[method];
      if (!operation) continue;
      const parameters = [...(item.parameters ?? []), ...(operation.parameters ?? [])].map((parameter) => {
        const resolved = (
          '$ref' in parameter ? component(document, parameter.$ref) : parameter
        ) as ParameterSpec;
        return { ...resolved, required: resolved.required ?? false };
      });
      const json = operation.requestBody?.content['application/json'] as
        | { schema: Schema; example?: unknown }
        | undefined;
      operations.push({
        operationId: operation.operationId,
        method: method.toUpperCase() as OperationSpec['method'],
        pathTemplate,
        parameters,
        body: json
          ? { schema: json.schema, example: json.example, required: operation.requestBody?.required ?? false }
          : null,
      });
    }
  }
  return operations;
}

/** Strings an attacker (or a careless client) sends: SQL, HTML, confusables, NUL, oversized, log4shell. */
export const hostileString: fc.Arbitrary<string> = fc.oneof(
  fc.string(),
  fc.string({ unit: 'grapheme', maxLength: 40 }),
  fc.constantFrom(
    '\'; drop table "Order"; --',
    '" OR 1=1 --',
    '<script>alert(1)</script>',
    '<img src=x onerror=alert(1)>',
    'ｃｈｅｓｓ.woolly.test',
    'chess\u200b.woolly.test',
    'раураl.woolly.test',
    '\u212Aing.woolly.test',
    'chess.woolly.test\u0000',
    '../../etc/passwd',
    '%00',
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a log4shell-style payload, on purpose.
    '${jndi:ldap://x}',
    ' ',
    '',
    'x'.repeat(10_000),
    'starter',
    'chess.woolly.test',
    'instances:write',
    'admin',
  ),
);

/** Any JSON value, hostile strings included. */
export const anyJson: fc.Arbitrary<unknown> = fc.oneof(
  hostileString,
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.array(hostileString, { maxLength: 4 }),
  fc.dictionary(hostileString, hostileString, { maxKeys: 3 }),
);

const typeOf = (schema: Schema): string | undefined => {
  const type = schema.type;
  if (Array.isArray(type)) return type.find((t) => t !== 'null') as string | undefined;
  return type as string | undefined;
};

/** Values that match `schema` (within the keywords the document uses). */
export function validValue(document: OpenApiDocument, raw: Schema): fc.Arbitrary<unknown> {
  const schema = resolveSchema(document, raw);
  if (Array.isArray(schema.enum)) return fc.constantFrom(...(schema.enum as unknown[]));
  switch (typeOf(schema)) {
    case 'string': {
      const minLength = (schema.minLength as number | undefined) ?? 0;
      const maxLength = Math.min((schema.maxLength as number | undefined) ?? 40, 60);
      if (schema.format === 'uuid') return fc.uuid();
      if (schema.format === 'email') return fc.emailAddress().filter((email) => email.length <= maxLength);
      if (typeof schema.pattern === 'string') {
        return fc
          .stringMatching(new RegExp(schema.pattern))
          .filter((value) => value.length >= minLength && value.length <= maxLength);
      }
      return fc.string({ minLength, maxLength: Math.max(minLength, maxLength) });
    }
    case 'integer':
      return fc.integer({
        min: (schema.minimum as number | undefined) ?? -1_000_000,
        max: (schema.maximum as number | undefined) ?? 1_000_000,
      });
    case 'number':
      return fc.double({ noNaN: true, noDefaultInfinity: true });
    case 'boolean':
      return fc.boolean();
    case 'array': {
      const items = validValue(document, (schema.items as Schema | undefined) ?? {});
      const constraints = {
        minLength: (schema.minItems as number | undefined) ?? 0,
        maxLength: Math.min((schema.maxItems as number | undefined) ?? 3, 3),
      };
      return schema.uniqueItems
        ? fc.uniqueArray(items, { ...constraints, selector: (value) => JSON.stringify(value) })
        : fc.array(items, constraints);
    }
    case 'object': {
      const properties = (schema.properties ?? {}) as Record<string, Schema>;
      return fc.record(
        Object.fromEntries(
          Object.entries(properties).map(([name, field]) => [name, validValue(document, field)]),
        ),
        { requiredKeys: (schema.required as string[] | undefined) ?? [] },
      );
    }
    default:
      return anyJson;
  }
}

/**
 * Values meant to break `schema`: wrong types, bad enum values, out-of-range numbers and
 * lengths, hostile strings. A few may still pass (a NUL in a free-text field): the server decides.
 */
export function invalidValue(document: OpenApiDocument, raw: Schema): fc.Arbitrary<unknown> {
  const schema = resolveSchema(document, raw);
  const wrongType: fc.Arbitrary<unknown> = fc.oneof(
    fc.integer(),
    fc.boolean(),
    fc.constant(null),
    fc.array(fc.integer(), { maxLength: 2 }),
    fc.constant({}),
  );
  const breaks: fc.Arbitrary<unknown>[] = [wrongType];
  if (Array.isArray(schema.enum)) {
    const first = String(schema.enum[0]);
    breaks.push(fc.constantFrom(first.toUpperCase(), `${first} `, `not_${first}`, ''), hostileString);
  }
  const type = typeOf(schema);
  if (type === 'string') {
    breaks.push(
      fc.string().map((value) => `${value}\u0000`),
      fc.constant(''),
      fc.constant('x'.repeat(((schema.maxLength as number | undefined) ?? 10_000) + 1)),
      hostileString,
    );
    if (schema.format === 'uuid') breaks.push(fc.constantFrom('not-a-uuid', '00000000-0000-0000-0000', '1'));
  }
  if (type === 'integer' || type === 'number') {
    const minimum = (schema.minimum as number | undefined) ?? -1_000_000;
    const maximum = (schema.maximum as number | undefined) ?? 1_000_000;
    breaks.push(fc.constantFrom(minimum - 1, maximum + 1, 1.5, 1e300, -0.5, '12'));
  }
  if (type === 'boolean') breaks.push(fc.constantFrom('true', 0, 1));
  if (type === 'array') breaks.push(fc.array(anyJson, { maxLength: 12 }), fc.constant('item'));
  return fc.oneof(...breaks);
}

/** A query or header value that breaks `schema`, as the string it travels as. */
export function invalidParameter(document: OpenApiDocument, schema: Schema): fc.Arbitrary<string> {
  return fc.oneof(
    invalidValue(document, schema).map((value) =>
      typeof value === 'string' ? value : JSON.stringify(value),
    ),
    fc.constantFrom('abc', '-1', '0', '1.5', '1e3', '99999999999999999999', 'null', 'true', '[]'),
    hostileString,
  );
}
