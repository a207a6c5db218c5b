/**
 * The provisioner's side of the add-ons: an instance's add-on stack brought to its add-ons
 * (infra/driver.ts) as a reconcile step, its outputs kept (secrets sealed) and turned into the
 * server's settings, and the stack destroyed when the server is purged.
 */
import { randomBytes } from 'node:crypto';
import type { SecretBox } from '../core/crypto.ts';
import type { Db } from '../core/db.ts';
import type { PlanLimits } from '../core/domain/catalog.ts';
import { objectStorageReservation, searchReservation } from '../infra/addons/in-cluster.ts';
import {
  type AddonPlan,
  addonStackName,
  applyAddonStack,
  destroyAddonStack,
  planAddonStack,
  type StackResource,
} from '../infra/driver.ts';
import type { AddonOutputs, AddonProvider, AddonStackSpec } from '../infra/program.ts';
import { type PulumiSettings, PulumiUnavailable } from '../infra/workspace.ts';
import type { ClusterSettings } from './cluster-settings.ts';
import type { InstanceRenderInput } from './manifests/render-instance.ts';
import { namespaceFor } from './manifests/render-instance.ts';

/** The add-on codes a stack serves. */
const STACK_ADDONS = { objectStorage: 'object_storage', search: 'elasticsearch' } as const;

const CREDENTIALS = 'ADDON_CREDENTIALS';
const SECRET_OUTPUTS = 'ADDON_OUTPUTS';
const context = (instanceId: string, name: string) => `instance:${instanceId}:${name}`;

type Credentials = AddonStackSpec['credentials'];

async function openSealed<T>(db: Db, box: SecretBox, instanceId: string, name: string): Promise<T | null> {
  const record = await db.secretRecord.findUnique({ where: { instanceId_name: { instanceId, name } } });
  return record ? (JSON.parse(box.open(record, context(instanceId, name))) as T) : null;
}

async function seal(db: Db, box: SecretBox, instanceId: string, name: string, value: unknown) {
  const sealed = box.seal(JSON.stringify(value), context(instanceId, name));
  await db.secretRecord.upsert({
    where: { instanceId_name: { instanceId, name } },
    create: { instanceId, name, ...sealed },
    update: sealed,
  });
}

/** The in-cluster store's keys and search's password: made once, sealed, kept for life. */
async function ensureCredentials(db: Db, box: SecretBox, instanceId: string): Promise<Credentials> {
  const existing = await openSealed<Credentials>(db, box, instanceId, CREDENTIALS);
  if (existing) return existing;
  const fresh: Credentials = {
    objectStorageAccessKey: `woolly-${randomBytes(8).toString('hex')}`,
    objectStorageSecretKey: randomBytes(30).toString('base64url'),
    // OpenSearch wants upper and lower case, a digit and a symbol.
    searchPassword: `Ws1-${randomBytes(24).toString('base64url')}`,
  };
  const sealed = box.seal(JSON.stringify(fresh), context(instanceId, CREDENTIALS));
  // Two reconciles racing: the first row wins and both use it.
  await db.secretRecord.createMany({
    data: [{ instanceId, name: CREDENTIALS, ...sealed }],
    skipDuplicates: true,
  });
  return (await openSealed<Credentials>(db, box, instanceId, CREDENTIALS)) as Credentials;
}

/** The secret half of the outputs, sealed apart from the AddonStack row. */
function splitOutputs(outputs: AddonOutputs) {
  const { objectStorage, search, dns } = outputs;
  return {
    open: {
      objectStorage: objectStorage
        ? { ...objectStorage, accessKeyId: undefined, secretAccessKey: undefined }
        : null,
      search: search ? { ...search, password: undefined } : null,
      dns,
    },
    sealed: {
      AWS_ACCESS_KEY_ID: objectStorage?.accessKeyId,
      AWS_SECRET_ACCESS_KEY: objectStorage?.secretAccessKey,
      ES_USER: search?.user,
      ES_PASS: search?.password,
    },
  };
}

export interface AddonStepInput {
  instance: {
    id: string;
    organizationId: string;
    domain: string;
    plan: { limits: unknown };
    addons: { addonType: { code: string } }[];
  };
  settings: ClusterSettings;
  /** The cluster's kubeconfig; null on the dry-run target, which only plans. */
  kubeconfig: string | null;
  /** Makes the server's namespace, where the in-cluster add-ons go, before the stack goes up. */
  ensureNamespace: () => Promise<void>;
}

/**
 * Brings the instance's add-on stack to its add-ons: on a real cluster through Pulumi, on the
 * dry-run target as a plan. A server with no stack add-on and no stack is left alone; one whose
 * add-ons were all removed has its stack destroyed.
 */
export async function reconcileAddons(
  deps: { db: Db; box: SecretBox; pulumi?: PulumiSettings | null },
  input: AddonStepInput,
): Promise<{ outcome: 'succeeded' | 'skipped'; detail: string }> {
  const { db, box } = deps;
  const { instance, settings } = input;
  const codes = new Set(instance.addons.map((addon) => addon.addonType.code));
  const wanted = {
    objectStorage: codes.has(STACK_ADDONS.objectStorage),
    search: codes.has(STACK_ADDONS.search),
  };
  const existing = await db.addonStack.findUnique({ where: { instanceId: instance.id } });
  const anyWanted = wanted.objectStorage || wanted.search;
  if (!anyWanted && (!existing || existing.state === 'destroyed')) {
    return { outcome: 'skipped', detail: 'no add-on needs a stack' };
  }
  const stackName = addonStackName(instance.id);
  const provider: AddonProvider =
    settings.addons.provider === 'aws'
      ? { kind: 'aws', settings: settings.addons.aws, credentials: null }
      : { kind: 'in-cluster', kubeconfig: input.kubeconfig ?? '' };
  const spec: AddonStackSpec = {
    owner: {
      instanceId: instance.id,
      organizationId: instance.organizationId,
      namespace: namespaceFor(instance.id),
    },
    domain: instance.domain,
    limits: instance.plan.limits as PlanLimits,
    ...wanted,
    provider,
    credentials: await ensureCredentials(db, box, instance.id),
  };
  const record = async (
    state: 'planned' | 'up' | 'destroyed',
    result: {
      resources: StackResource[];
      outputs: AddonOutputs;
      changes: Record<string, number>;
    },
  ) => {
    const { open, sealed } = splitOutputs(result.outputs);
    await seal(db, box, instance.id, SECRET_OUTPUTS, sealed);
    const row = {
      stackName: `woolly-addons/${stackName}`,
      state,
      resources: result.resources as object[],
      outputs: JSON.parse(JSON.stringify(open)),
      changes: result.changes,
    };
    await db.addonStack.upsert({
      where: { instanceId: instance.id },
      create: { instanceId: instance.id, ...row },
      update: row,
    });
  };
  const none: AddonOutputs = { objectStorage: null, search: null, dns: null };

  if (!input.kubeconfig) {
    const plan: AddonPlan = await planAddonStack(spec);
    if (plan.violations.length > 0) {
      throw Object.assign(
        new Error(
          `policy refused the add-on stack: ${plan.violations.map((v) => `${v.resource}: ${v.message}`).join('; ')}`,
        ),
        { retryable: false },
      );
    }
    await record(
      anyWanted ? 'planned' : 'destroyed',
      anyWanted ? { ...plan, changes: {} } : { resources: [], outputs: none, changes: {} },
    );
    return {
      outcome: 'skipped',
      detail: anyWanted
        ? `dry-run: stack ${stackName} would hold ${plan.resources.length} resources: ${describeResources(plan.resources)}`
        : `dry-run: stack ${stackName} would be destroyed`,
    };
  }
  if (!deps.pulumi) {
    throw new PulumiUnavailable(
      'blocked: Pulumi is not configured for this worker, so add-ons cannot be made',
    );
  }
  if (!anyWanted) {
    const destroyed = await destroyAddonStack({ db, settings: deps.pulumi }, instance.id);
    await record('destroyed', { resources: [], outputs: none, changes: destroyed?.changes ?? {} });
    return {
      outcome: 'succeeded',
      detail: `destroyed stack ${stackName}: ${describeChanges(destroyed?.changes ?? {})}`,
    };
  }
  await input.ensureNamespace();
  const applied = await applyAddonStack({ db, settings: deps.pulumi }, spec);
  await record('up', applied);
  return { outcome: 'succeeded', detail: `stack ${stackName} up: ${describeChanges(applied.changes)}` };
}

const describeChanges = (changes: Record<string, number>) =>
  Object.entries(changes)
    .map(([kind, count]) => `${count} ${kind}`)
    .join(', ') || 'no changes';

function describeResources(resources: StackResource[]): string {
  return resources
    .filter((resource) => !resource.type.startsWith('pulumi:'))
    .map((resource) => `${resource.type.split(':').at(-1)} ${resource.name}`)
    .join(', ');
}

/** What the add-ons change in the server's own objects: its S3 and search settings, and the quota the in-cluster variants take in its namespace. */
export function addonRenderInput(
  stack: { state: string; outputs: unknown } | null,
  limits: PlanLimits,
): Pick<InstanceRenderInput, 'objectStorage' | 'search' | 'addonQuota'> {
  if (!stack || stack.state === 'destroyed') return { objectStorage: null, search: null, addonQuota: null };
  const outputs = stack.outputs as AddonOutputs;
  const stored = outputs.objectStorage;
  const objectStorage = stored
    ? {
        bucket: stored.bucket,
        endpoint: stored.endpoint,
        region: stored.region,
        ...(stored.aliasHost ? { aliasHost: stored.aliasHost } : {}),
        ...(stored.route ? { route: stored.route } : {}),
      }
    : null;
  const search = outputs.search
    ? { host: outputs.search.host, port: outputs.search.port, scheme: outputs.search.scheme }
    : null;
  // Only the in-cluster variants live in the namespace: the routed store, a `.svc` search host.
  const reservations = [
    ...(objectStorage?.route ? [objectStorageReservation(limits)] : []),
    ...(search?.host.endsWith('.svc.cluster.local') ? [searchReservation(limits)] : []),
  ];
  const addonQuota =
    reservations.length > 0
      ? reservations.reduce((sum, part) => ({
          cpuMillicores: sum.cpuMillicores + part.cpuMillicores,
          memoryMib: sum.memoryMib + part.memoryMib,
          volumes: sum.volumes + part.volumes,
          storageGb: sum.storageGb + part.storageGb,
        }))
      : null;
  return { objectStorage, search, addonQuota };
}

/** The add-ons' credentials for the server's Secret (`AWS_*`, `ES_USER`, `ES_PASS`). */
export async function addonSecretValues(
  db: Db,
  box: SecretBox,
  instanceId: string,
): Promise<Record<string, string>> {
  const stack = await db.addonStack.findUnique({ where: { instanceId }, select: { state: true } });
  if (!stack || stack.state === 'destroyed') return {};
  const sealed =
    (await openSealed<Record<string, string | undefined>>(db, box, instanceId, SECRET_OUTPUTS)) ?? {};
  return Object.fromEntries(
    Object.entries(sealed).filter((entry): entry is [string, string] => typeof entry[1] === 'string'),
  );
}

/** The purge's step: the stack's resources and the stack go; nothing when there never was one. */
export async function purgeAddons(
  deps: { db: Db; pulumi?: PulumiSettings | null },
  instanceId: string,
): Promise<{ outcome: 'succeeded' | 'skipped'; detail: string }> {
  const stack = await deps.db.addonStack.findUnique({ where: { instanceId } });
  if (stack?.state !== 'up') return { outcome: 'skipped', detail: 'no add-on stack holds resources' };
  if (!deps.pulumi) {
    throw new PulumiUnavailable(
      'blocked: Pulumi is not configured for this worker, so add-ons cannot be removed',
    );
  }
  const destroyed = await destroyAddonStack({ db: deps.db, settings: deps.pulumi }, instanceId);
  await deps.db.addonStack.update({
    where: { instanceId },
    data: { state: 'destroyed', resources: [], changes: destroyed?.changes ?? {} },
  });
  return {
    outcome: 'succeeded',
    detail: `destroyed stack ${stack.stackName}: ${describeChanges(destroyed?.changes ?? {})}`,
  };
}
