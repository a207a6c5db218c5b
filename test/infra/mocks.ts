/**
 * Pulumi's mocks for Woolly's programs (no CLI, no cluster, no account): records what a
 * program registers, with the provider each resource names, and answers what AWS would
 * compute (an access key's id and secret, a domain's endpoint, the caller's account).
 * Importing this module installs the mocks.
 */
import assert from 'node:assert/strict';
import * as pulumi from '@pulumi/pulumi';
import type { ResourceView } from '../../infra/policy.ts';

export const ACCOUNT_ID = '123456789012';
export const ACCESS_KEY_ID = 'AKIAIOSFODNN7EXAMPLE';
export const SECRET_ACCESS_KEY = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';
export const searchEndpointFor = (domainName: string) =>
  `search-${domainName}-abc123.eu-central-1.es.amazonaws.com`;

export interface Registered extends ResourceView {
  /** The inputs as sent, secrets still wrapped. */
  raw: Record<string, unknown>;
  /** The provider reference (`<urn>::<id>`) the resource was registered with. */
  provider: string | undefined;
}

const isSecretEnvelope = (record: Record<string, unknown>) =>
  record[pulumi.runtime.specialSigKey] === pulumi.runtime.specialSecretSig;

/** Inputs as a policy pack sees them: secrets unpacked into their values. */
export function unpacked(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(unpacked);
  if (!value || typeof value !== 'object') return value;
  const record = value as Record<string, unknown>;
  if (isSecretEnvelope(record)) return unpacked(record.value);
  return Object.fromEntries(Object.entries(record).map(([key, entry]) => [key, unpacked(entry)]));
}

/** Whether an input was sent as a secret. */
export const sentAsSecret = (value: unknown) =>
  Boolean(value && typeof value === 'object' && isSecretEnvelope(value as Record<string, unknown>));

const registered: Registered[] = [];

function computed(type: string, inputs: Record<string, unknown>): { id?: string; state: object } {
  if (type === 'aws:iam/accessKey:AccessKey') {
    return { id: ACCESS_KEY_ID, state: { secret: SECRET_ACCESS_KEY } };
  }
  if (type === 'aws:opensearch/domain:Domain') {
    return { state: { endpoint: searchEndpointFor(String(inputs.domainName)) } };
  }
  return { state: {} };
}

await pulumi.runtime.setMocks(
  {
    newResource: (args) => {
      registered.push({
        type: args.type,
        name: args.name,
        inputs: unpacked(args.inputs) as Record<string, unknown>,
        raw: args.inputs,
        provider: args.provider,
      });
      const { id, state } = computed(args.type, args.inputs);
      return { id: id ?? `${args.name}-id`, state: { ...args.inputs, ...state } };
    },
    call: (args) =>
      args.token === 'aws:index/getCallerIdentity:getCallerIdentity'
        ? { accountId: ACCOUNT_ID, arn: `arn:aws:iam::${ACCOUNT_ID}:user/woolly`, userId: 'AIDAEXAMPLE' }
        : args.inputs,
  },
  'woolly',
  'test',
  false,
);

export const owner = {
  instanceId: '3f2b9c4e-1a7d-4e0b-9c2f-5d6e7f8a9b0c',
  organizationId: '0b7e2f1c-5a4d-4c3b-8e2a-1f0e9d8c7b6a',
  namespace: 'mastodon-3f2b9c4e1a7d',
};

/**
 * Runs a program and returns what it registered (providers included) and its outputs,
 * resolved, once Pulumi has finished registering every resource it returned.
 */
export async function run<T>(
  program: () => { resources: Record<string, pulumi.Resource>; outputs: T },
): Promise<{ resources: Registered[]; outputs: pulumi.Unwrap<T> }> {
  registered.length = 0;
  const { resources, outputs } = program();
  await Promise.all(
    Object.values(resources).map((resource) => new Promise((resolve) => resource.urn.apply(resolve))),
  );
  const resolved = await new Promise<pulumi.Unwrap<T>>((resolve) => pulumi.output(outputs).apply(resolve));
  return { resources: [...registered], outputs: resolved };
}

export const find = (resources: readonly ResourceView[], type: string, name: string) => {
  const found = resources.find((resource) => resource.type === type && resource.name === name);
  assert.ok(found, `${type} ${name} registered`);
  // biome-ignore lint/suspicious/noExplicitAny: the inputs are checked by the assertions that follow.
  return found.inputs as Record<string, any>;
};

/**
 * Runs a whole stack program (what the Automation API would run) and returns what it
 * registered and returned, once registrations stop coming (they are asynchronous).
 */
export async function runProgram(
  program: () => Promise<unknown>,
): Promise<{ resources: Registered[]; outputs: unknown }> {
  registered.length = 0;
  const outputs = await program();
  for (let seen = -1; seen !== registered.length; ) {
    seen = registered.length;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return { resources: [...registered], outputs };
}

/** Each resource of `type` edited by `edit`, the rest unchanged: a deliberately broken variant. */
export function edited(
  resources: readonly ResourceView[],
  type: string,
  // biome-ignore lint/suspicious/noExplicitAny: a deliberate edit deep in the registered inputs.
  edit: (inputs: Record<string, any>) => void,
): ResourceView[] {
  return resources.map((resource) => {
    if (resource.type !== type) return resource;
    const inputs = structuredClone(resource.inputs);
    edit(inputs);
    return { ...resource, inputs };
  });
}
