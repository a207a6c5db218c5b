import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import { type Request, type RequestHandler, type Response, Router } from 'express';
import { parse } from 'yaml';
import { AppError, type FieldError } from '../core/errors.ts';
import { getActor, requireScope } from './auth/bearer.ts';
import type { Scope } from './context.ts';

// ajv-formats is CommonJS with a default export; under NodeNext it arrives wrapped.
const addFormats = addFormatsModule as unknown as typeof addFormatsModule.default;

type Schema = Record<string, unknown>;
interface Parameter {
  name: string;
  in: 'path' | 'query' | 'header' | 'cookie';
  required?: boolean;
  schema: Schema;
}
type SecurityRequirement = Record<string, string[]>;
interface Operation {
  operationId: string;
  security?: SecurityRequirement[];
  parameters?: (Parameter | { $ref: string })[];
  requestBody?: { required?: boolean; content: Record<string, { schema: Schema }> };
  responses: Record<string, { $ref?: string; content?: Record<string, { schema: Schema }> }>;
}
type PathItem = { parameters?: (Parameter | { $ref: string })[] } & Partial<Record<Method, Operation>>;
type Method = 'get' | 'post' | 'put' | 'patch' | 'delete';
export interface OpenApiDocument {
  openapi: string;
  security?: SecurityRequirement[];
  paths: Record<string, PathItem>;
  components: {
    schemas: Record<string, Schema>;
    parameters: Record<string, Parameter>;
    responses: Record<string, unknown>;
  };
}

const SPEC_ID = 'https://woolly.dev/openapi.json';
const METHODS: Method[] = ['get', 'post', 'put', 'patch', 'delete'];

/** The API description, parsed once from api/openapi.yaml. */
export const openApiDocument: OpenApiDocument = parse(
  readFileSync(path.join(import.meta.dirname, 'openapi.yaml'), 'utf8'),
) as OpenApiDocument;

/** One validator per part of a request, compiled from the document at start. */
interface OperationValidators {
  method: Method;
  /** null: public; otherwise the token scopes the caller needs (possibly none). */
  scopes: Scope[] | null;
  pathTemplate: string;
  pathPattern: RegExp;
  params: ValidateFunction;
  query: ValidateFunction;
  /** Documented request headers (If-Match, Idempotency-Key), by their documented names. */
  headerNames: string[];
  headers: ValidateFunction;
  body: ValidateFunction | null;
  bodyRequired: boolean;
  /** Documented statuses; null where the response has no body. */
  responses: Map<string, ValidateFunction | null>;
}

function makeAjv(coerceTypes: boolean): Ajv2020 {
  // strict off: OpenAPI keywords such as `example` are not JSON Schema.
  const ajv = new Ajv2020({ allErrors: true, strict: false, coerceTypes, useDefaults: true });
  addFormats(ajv);
  ajv.addSchema({ $id: SPEC_ID, components: openApiDocument.components });
  return ajv;
}

const bodyAjv = makeAjv(false);
// Path and query values arrive as strings; their schemas say what to coerce them into.
const parameterAjv = makeAjv(true);

function resolveParameter(parameter: Parameter | { $ref: string }): Parameter {
  if ('$ref' in parameter) {
    const name = parameter.$ref.split('/').at(-1) ?? '';
    const resolved = openApiDocument.components.parameters[name];
    if (!resolved) throw new Error(`openapi: unknown parameter ${parameter.$ref}`);
    return resolved;
  }
  return parameter;
}

/** `#/components/...` references, made absolute so they resolve inside the added document. */
function absolute(schema: Schema): Schema {
  return JSON.parse(JSON.stringify(schema).replaceAll('"$ref":"#/', `"$ref":"${SPEC_ID}#/`));
}

function parametersSchema(parameters: Parameter[]): Schema {
  return {
    type: 'object',
    additionalProperties: false,
    properties: Object.fromEntries(parameters.map((p) => [p.name, absolute(p.schema)])),
    required: parameters.filter((p) => p.required).map((p) => p.name),
  };
}

function compileOperations(): Map<string, OperationValidators> {
  const operations = new Map<string, OperationValidators>();
  for (const [pathTemplate, item] of Object.entries(openApiDocument.paths)) {
    for (const method of METHODS) {
      const operation = item[method];
      if (!operation) continue;
      const parameters = [...(item.parameters ?? []), ...(operation.parameters ?? [])].map(resolveParameter);
      const bodySchema = operation.requestBody?.content['application/json']?.schema;
      const responses = new Map<string, ValidateFunction | null>();
      for (const [status, response] of Object.entries(operation.responses)) {
        const resolved = response.$ref
          ? (openApiDocument.components.responses[response.$ref.split('/').at(-1) ?? ''] as typeof response)
          : response;
        const schema = Object.values(resolved?.content ?? {})[0]?.schema;
        responses.set(status, schema ? bodyAjv.compile(absolute(schema)) : null);
      }
      const security = operation.security ?? openApiDocument.security ?? [];
      operations.set(operation.operationId, {
        method,
        scopes: security.length === 0 ? null : ((security[0]?.bearer ?? []) as Scope[]),
        pathTemplate,
        pathPattern: new RegExp(`^${pathTemplate.replace(/\{[^}]+\}/g, '[^/]+')}$`),
        params: parameterAjv.compile(parametersSchema(parameters.filter((p) => p.in === 'path'))),
        query: parameterAjv.compile(parametersSchema(parameters.filter((p) => p.in === 'query'))),
        headerNames: parameters.filter((p) => p.in === 'header').map((p) => p.name),
        headers: bodyAjv.compile(parametersSchema(parameters.filter((p) => p.in === 'header'))),
        body: bodySchema ? bodyAjv.compile(absolute(bodySchema)) : null,
        bodyRequired: operation.requestBody?.required ?? false,
        responses,
      });
    }
  }
  return operations;
}

const operations = compileOperations();

function fieldErrors(errors: ErrorObject[] | null | undefined, prefix: string): FieldError[] {
  return (errors ?? []).map((error) => {
    const segments = error.instancePath.split('/').filter(Boolean);
    if (error.keyword === 'required') segments.push(String(error.params.missingProperty));
    if (error.keyword === 'additionalProperties') segments.push(String(error.params.additionalProperty));
    const field = [prefix, ...segments].filter(Boolean).join('.') || '(body)';
    const message =
      error.keyword === 'additionalProperties'
        ? 'is not a known field'
        : error.keyword === 'required'
          ? 'is required'
          : (error.message ?? 'is invalid');
    return { field, message };
  });
}

/**
 * Fields holding U+0000 anywhere in `value`. PostgreSQL text cannot store that character, so
 * it is refused up front as a field error rather than failing deep in a query.
 */
function nulFields(value: unknown, field: string): FieldError[] {
  if (typeof value === 'string')
    return value.includes('\u0000') ? [{ field: field || '(body)', message: 'must not contain U+0000' }] : [];
  if (Array.isArray(value))
    return value.flatMap((item, index) => nulFields(item, field ? `${field}.${index}` : String(index)));
  if (value && typeof value === 'object') {
    return Object.entries(value).flatMap(([key, item]) => [
      ...(key.includes('\u0000')
        ? [{ field: field || '(body)', message: 'has a field name containing U+0000' }]
        : []),
      ...nulFields(item, field ? `${field}.${key}` : key),
    ]);
  }
  return [];
}

/** Authentication and scope come before validation: a stranger learns nothing from a 400. */
function authorize(scopes: Scope[] | null): RequestHandler {
  return (req, _res, next) => {
    if (scopes === null) return next();
    const actor = getActor(req);
    for (const scope of scopes) requireScope(actor, scope);
    next();
  };
}

/**
 * Validates a request against its operation in api/openapi.yaml: path parameters, query,
 * documented headers and JSON body (defaults applied, strings in path and query coerced). Failures throw
 * `validation_failed` listing every field; the handler gets the result as its `input`.
 */
function validate(operationId: string): RequestHandler {
  const operation = operations.get(operationId);
  if (!operation) throw new Error(`openapi: no operation ${operationId}`);
  return (req, res, next) => {
    const params = { ...req.params };
    const query = { ...(req.query as Record<string, unknown>) };
    const headers: Record<string, string> = {};
    for (const name of operation.headerNames) {
      const value = req.get(name);
      if (value !== undefined) headers[name] = value;
    }
    const errors = [
      ...(operation.params(params) ? [] : fieldErrors(operation.params.errors, '')),
      ...(operation.query(query) ? [] : fieldErrors(operation.query.errors, '')),
      ...(operation.headers(headers) ? [] : fieldErrors(operation.headers.errors, '')),
    ];
    let body: unknown;
    if (operation.body) {
      body = req.body;
      if (body === undefined) {
        if (operation.bodyRequired) errors.push({ field: '(body)', message: 'a JSON body is required' });
      } else if (!operation.body(body)) {
        errors.push(...fieldErrors(operation.body.errors, ''));
      }
    }
    errors.push(
      ...nulFields(params, ''),
      ...nulFields(query, ''),
      ...nulFields(headers, ''),
      ...nulFields(body, ''),
    );
    if (errors.length > 0) {
      throw new AppError('validation_failed', `The request has ${errors.length} invalid field(s).`, {
        errors,
      });
    }
    res.locals.input = { params, query, headers, body };
    next();
  };
}

/** The operation a method and path belong to, for checking responses in tests. */
export function findOperation(
  method: string,
  pathname: string,
): { operationId: string; pathTemplate: string } | null {
  for (const [operationId, operation] of operations) {
    if (operation.method === method.toLowerCase() && operation.pathPattern.test(pathname)) {
      return { operationId, pathTemplate: operation.pathTemplate };
    }
  }
  return null;
}

/** Errors of a response against the document (an undocumented status is an error too). */
export function responseErrors(operationId: string, status: number, body: unknown): string[] {
  const operation = operations.get(operationId);
  if (!operation?.responses.has(String(status))) return [`${operationId} does not document status ${status}`];
  const validator = operation.responses.get(String(status));
  if (!validator)
    return body === null || body === '' ? [] : [`status ${status} has no body, but one was sent`];
  return validator(body)
    ? []
    : (validator.errors ?? []).map((e) => `${e.instancePath || '(body)'} ${e.message}`);
}

type Operations = import('./generated/openapi.ts').operations;
type Json<T> = T extends { content: { 'application/json': infer B } } ? B : never;

/** The validated input of an operation, typed from the document. */
export interface InputOf<K extends keyof Operations> {
  params: Operations[K]['parameters'] extends { path: infer P } ? P : never;
  query: Operations[K]['parameters'] extends { query?: infer Q } ? NonNullable<Q> : never;
  headers: Operations[K]['parameters'] extends { header?: infer H } ? NonNullable<H> : never;
  body: Operations[K] extends { requestBody: infer B }
    ? Json<B>
    : Operations[K] extends { requestBody?: infer B }
      ? Json<NonNullable<B>> | undefined
      : never;
}

/** A handler of one operation, given its validated input. */
export type OperationHandler<K extends keyof Operations> = (
  req: Request,
  res: Response,
  input: InputOf<K>,
) => Promise<unknown> | unknown;
/** A handler for every operation of the document; a missing one is a type error. */
export type OperationHandlers = { [K in keyof Operations]: OperationHandler<K> };

/**
 * Mounts every operation of api/openapi.yaml at its documented method and path, behind its
 * request validator. Routes are never written twice: the document is the route table.
 */
export function mountOperations(
  handlers: OperationHandlers,
  options: { idempotency: RequestHandler; readBody: RequestHandler[] },
): Router {
  const router = Router();
  for (const [operationId, operation] of operations) {
    const handler = handlers[operationId as keyof Operations] as OperationHandler<keyof Operations>;
    const expressPath = operation.pathTemplate.replace(/\{([^}]+)\}/g, ':$1');
    // Bodies are read only where the document says an operation takes one, after the caller
    // is known; elsewhere a body is ignored.
    const chain = [
      authorize(operation.scopes),
      ...(operation.body ? options.readBody : []),
      validate(operationId),
    ];
    if (operation.method === 'post') chain.push(options.idempotency);
    router[operation.method](expressPath, ...chain, async (req, res) => {
      await handler(req, res, res.locals.input);
    });
  }
  return router;
}
