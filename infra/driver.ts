/**
 * Runs instances' add-on stacks: `up` from the instance's add-ons, `destroy` once it is
 * purged, and on the dry-run target a plan made under Pulumi's mocks instead. One operation per
 * stack at a time across every worker (a PostgreSQL advisory lock), at most
 * `settings.concurrency` at once per process, and Woolly's policy rules checked over the
 * program's resources before anything is created.
 */
import { readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { CommandError, StackNotFoundError } from '@pulumi/pulumi/automation/index.js';
import type { Db } from '../core/db.ts';
import type { Violation } from './policy.ts';
import type { AddonOutputs, AddonStackSpec } from './program.ts';
import { openStack, type PulumiSettings, pulumiCommand } from './workspace.ts';

export const ADDON_PROJECT = 'woolly-addons';

export const addonStackName = (instanceId: string) => `instance-${instanceId}`;

/** A resource a stack holds, or plans to. */
export interface StackResource {
  type: string;
  name: string;
}

export interface AddonPlan {
  resources: StackResource[];
  violations: Violation[];
  outputs: AddonOutputs;
}

export interface AddonApplied {
  resources: StackResource[];
  outputs: AddonOutputs;
  /** Resources by what the operation did to them (`create`, `update`, `same`, `delete`, ...). */
  changes: Record<string, number>;
}

/** A stack operation may take this long (an OpenSearch domain takes ~20 minutes to create). */
const STACK_OPERATION_TIMEOUT_MS = 2 * 3_600_000;

/** Woolly's policy refused the program: nothing was created. */
export class PolicyViolation extends Error {
  override name = 'PolicyViolation';
  readonly retryable = false;
}

/**
 * The program's resources, outputs and policy findings, from a run under Pulumi's mocks in a
 * worker thread (no CLI, no cloud, no cluster). Where a value is only known once created it
 * reads `(known after up)`.
 */
export function planAddonStack(spec: AddonStackSpec): Promise<AddonPlan> {
  const entry = new URL('./plan-thread.ts', import.meta.url).href;
  // A worker thread does not inherit the tsx loader: it registers it, then loads the entry.
  const bootstrap = `import('tsx/esm/api').then(({ register }) => { register(); return import(${JSON.stringify(entry)}); })`;
  return new Promise((resolve, reject) => {
    let plan: AddonPlan | undefined;
    const worker = new Worker(bootstrap, { eval: true, workerData: spec });
    worker.once('message', (message: AddonPlan) => {
      plan = message;
    });
    worker.once('error', reject);
    worker.once('exit', (code) =>
      plan
        ? resolve(plan)
        : reject(new Error(`the add-on plan stopped (exit code ${code}) without a result`)),
    );
  });
}

/** Runs at most `concurrency` operations at once; the rest wait their turn, in order. */
class Limiter {
  private running = 0;
  private readonly queue: (() => void)[] = [];
  constructor(private readonly concurrency: number) {}

  async run<T>(work: () => Promise<T>): Promise<T> {
    if (this.running >= this.concurrency) await new Promise<void>((resolve) => this.queue.push(resolve));
    this.running++;
    try {
      return await work();
    } finally {
      this.running--;
      this.queue.shift()?.();
    }
  }
}

const limiters = new Map<number, Limiter>();

/**
 * Runs `work` holding the stack: after this process's turn (bounded parallelism) and the
 * stack's advisory lock, which every worker takes, so two operations on one stack run one after
 * the other wherever they started. The lock is a transaction's: a worker that dies lets go.
 */
function withStack<T>(
  db: Db,
  settings: PulumiSettings,
  stackName: string,
  work: (recovered: boolean) => Promise<T>,
): Promise<T> {
  let limiter = limiters.get(settings.concurrency);
  if (!limiter) {
    limiter = new Limiter(settings.concurrency);
    limiters.set(settings.concurrency, limiter);
  }
  return limiter.run(() =>
    db.$transaction(
      async (tx) => {
        await tx.$executeRaw`select pg_advisory_xact_lock(hashtextextended(${`pulumi:${ADDON_PROJECT}/${stackName}`}, 0))`;
        return work(await clearStaleLock(settings, stackName));
      },
      { timeout: STACK_OPERATION_TIMEOUT_MS, maxWait: STACK_OPERATION_TIMEOUT_MS },
    ),
  );
}

/**
 * Holding the advisory lock, no other operation on the stack runs, so a lock file the file
 * backend still holds was left by a worker that died mid-operation: it goes, and the caller
 * refreshes the stack (clearing the creates that never finished) before going on.
 */
async function clearStaleLock(settings: PulumiSettings, stackName: string): Promise<boolean> {
  if (!settings.backendUrl.startsWith('file://')) return false;
  const dir = path.join(
    fileURLToPath(settings.backendUrl),
    '.pulumi',
    'locks',
    'organization',
    ADDON_PROJECT,
    stackName,
  );
  const stale = await readdir(dir).catch(() => []);
  await Promise.all(stale.map((file) => rm(path.join(dir, file), { force: true })));
  return stale.length > 0;
}

/** What a failed CLI run said, once per distinct error (secrets are already masked by Pulumi). */
function pulumiFailure(operation: string, error: unknown): Error {
  if (!(error instanceof CommandError)) return error instanceof Error ? error : new Error(String(error));
  const said = new Set(
    error.message
      .split('\n')
      .flatMap((line) => /\berror: (.+)$/.exec(line.trim())?.[1] ?? [])
      .map((text) => text.trim()),
  );
  const message = [...said].join('; ') || error.message;
  return new Error(`pulumi ${operation} failed: ${message.slice(0, 2000)}`);
}

async function resourcesOf(stack: Awaited<ReturnType<typeof openStack>>): Promise<StackResource[]> {
  const state = await stack.exportStack();
  const resources = (state.deployment?.resources ?? []) as { type: string; urn: string }[];
  return resources
    .filter((resource) => resource.type !== 'pulumi:pulumi:Stack')
    .map((resource) => ({ type: resource.type, name: resource.urn.split('::').at(-1) ?? '' }));
}

/**
 * Brings the instance's stack to `spec` (refreshing it first, so what changed outside Pulumi
 * is seen and put back), after the policy rules passed over the program's resources.
 */
export async function applyAddonStack(
  deps: { db: Db; settings: PulumiSettings },
  spec: AddonStackSpec,
): Promise<AddonApplied> {
  await pulumiCommand(deps.settings);
  const plan = await planAddonStack(spec);
  if (plan.violations.length > 0) {
    throw new PolicyViolation(
      `policy refused the add-on stack: ${plan.violations.map((v) => `${v.resource}: ${v.message} (${v.rule})`).join('; ')}`,
    );
  }
  const stackName = addonStackName(spec.owner.instanceId);
  return withStack(deps.db, deps.settings, stackName, async (recovered) => {
    // Loaded on first use: the cloud SDKs behind it take a second to load.
    const { addonProgram } = await import('./program.ts');
    const stack = await openStack(deps.settings, {
      project: ADDON_PROJECT,
      stack: stackName,
      program: addonProgram(spec),
    });
    try {
      if (recovered) await stack.refresh({ clearPendingCreates: true, color: 'never' });
      const result = await stack.up({ refresh: true, color: 'never' });
      const outputs = Object.fromEntries(
        Object.entries(result.outputs).map(([key, output]) => [key, output.value ?? null]),
      ) as unknown as AddonOutputs;
      return {
        outputs: {
          objectStorage: outputs.objectStorage ?? null,
          search: outputs.search ?? null,
          dns: outputs.dns ?? null,
        },
        changes: (result.summary.resourceChanges ?? {}) as Record<string, number>,
        resources: await resourcesOf(stack),
      };
    } catch (error) {
      throw pulumiFailure('up', error);
    }
  });
}

/** Deletes everything the instance's stack holds, then the stack itself; none: nothing to do. */
export async function destroyAddonStack(
  deps: { db: Db; settings: PulumiSettings },
  instanceId: string,
): Promise<{ changes: Record<string, number> } | null> {
  const stackName = addonStackName(instanceId);
  return withStack(deps.db, deps.settings, stackName, async () => {
    let stack: Awaited<ReturnType<typeof openStack>>;
    try {
      // Destroy runs no program: the stack's state names every resource and its provider.
      stack = await openStack(deps.settings, {
        project: ADDON_PROJECT,
        stack: stackName,
        program: async () => ({}),
        existing: true,
      });
    } catch (error) {
      if (error instanceof StackNotFoundError) return null;
      throw pulumiFailure('stack select', error);
    }
    try {
      const result = await stack.destroy({ color: 'never' });
      await stack.workspace.removeStack(stackName);
      return { changes: (result.summary.resourceChanges ?? {}) as Record<string, number> };
    } catch (error) {
      throw pulumiFailure('destroy', error);
    }
  });
}
