import { enqueueSubscriptionSync } from '../../billing/subscriptions.ts';
import type { Db, Prisma, Tx } from '../../core/db.ts';
import { type InstanceStatus, transition } from '../../core/domain/instance-status.ts';
import { compareMastodonVersions } from '../../core/domain/mastodon-version.ts';
import { AppError } from '../../core/errors.ts';
import type { MembershipRole, OperationKind } from '../../core/generated/prisma/enums.ts';
import { cancelPurge, enqueueBackup, enqueueReconcile, schedulePurge } from '../../provisioner/index.ts';
import { audit, type SystemActor } from '../audit.ts';
import type { ApiDeps, RequestContext } from '../context.ts';
import { assertInstanceRole, MANAGING_ROLES, SERVER_ROLES } from '../policy.ts';

/** Who may do an action and from which statuses; whether it needs `If-Match`. */
interface ActionRule {
  roles: readonly MembershipRole[] | 'staff';
  from: readonly InstanceStatus[];
  ifMatch: 'required' | 'optional';
}

/** What an action changes, decided from the locked instance row. */
interface Change {
  kind: OperationKind;
  /** The status the instance moves to now (the reconciler takes it on from there). */
  status: InstanceStatus;
  statusReason?: string | null;
  data?: Prisma.InstanceUncheckedUpdateInput;
  event: { type: string; message: string };
  audit: { action: string; data?: Prisma.InputJsonValue };
  /** Extra writes in the same transaction (add-on rows, purge jobs). */
  also?: (tx: Tx) => Promise<void>;
}

type LockedInstance = Prisma.InstanceGetPayload<{
  include: { plan: true; addons: { include: { addonType: true } } };
}>;

/** Statuses in which the spec may change: the reconciler brings the server along. */
const CHANGEABLE: readonly InstanceStatus[] = ['running', 'updating', 'suspended', 'failed'];

/** Where an instance goes when its spec changes: a suspended server stays suspended. */
const afterChange = (status: InstanceStatus): InstanceStatus =>
  status === 'suspended' ? 'suspended' : 'updating';

/** The instance's `spec` column; its add-ons are the InstanceAddon rows, not kept here twice. */
interface InstanceSpec {
  suspended?: boolean;
  suspendReason?: string | null;
}
const specOf = (instance: { spec: unknown }): InstanceSpec => (instance.spec ?? {}) as InstanceSpec;

/**
 * Applies one change to an instance's desired state, in one transaction with the row locked:
 * access and `If-Match` checked, generation bumped, status moved through the state machine, an
 * Operation opened, an Event and an audit row written, and a reconcile queued. Returns the new
 * generation.
 */
function changeInstance(
  deps: Pick<ApiDeps, 'db'>,
  ctx: RequestContext,
  instanceId: string,
  ifMatch: string | undefined,
  rule: ActionRule,
  decide: (instance: LockedInstance) => Change | Promise<Change>,
): Promise<number> {
  return deps.db.$transaction((tx) => changeInstanceIn(tx, ctx, instanceId, ifMatch, rule, decide));
}

/**
 * `changeInstance` on the caller's transaction, for a caller whose own writes must commit or
 * roll back with the change (a fleet upgrade's bookkeeping). A refusal thrown here leaves
 * the transaction half-written: the caller must let it roll back, not go on with it.
 */
async function changeInstanceIn(
  tx: Tx,
  ctx: RequestContext | SystemActor,
  instanceId: string,
  ifMatch: string | undefined,
  rule: ActionRule,
  decide: (instance: LockedInstance) => Change | Promise<Change>,
): Promise<number> {
  const instance = await lockInstance(tx, ctx, instanceId, rule.roles);
  checkPrecondition(instance.generation, ifMatch, rule.ifMatch);
  if (!rule.from.includes(instance.status)) {
    throw new AppError(
      'conflict',
      `The server is ${instance.status}; this needs it to be ${rule.from.join(' or ')}.`,
    );
  }
  const change = await decide(instance);
  const generation = instance.generation + 1;
  await tx.instance.update({ where: { id: instanceId }, data: { ...change.data, generation } });
  if (change.status !== instance.status) {
    await transition(tx, instanceId, instance.status, change.status, {
      statusReason: change.statusReason ?? null,
    });
  } else if (change.statusReason !== undefined) {
    await tx.instance.update({ where: { id: instanceId }, data: { statusReason: change.statusReason } });
  }
  await tx.operation.create({ data: { instanceId, kind: change.kind, status: 'running', generation } });
  await tx.event.create({
    data: { instanceId, type: change.event.type, message: change.event.message, data: { generation } },
  });
  await audit(tx, ctx, {
    action: change.audit.action,
    targetType: 'instance',
    targetId: instanceId,
    organizationId: instance.organizationId,
    data: change.audit.data ?? {},
  });
  await change.also?.(tx);
  await enqueueReconcile(tx, instanceId);
  // Plan and add-on changes, deletion and restore change what Stripe should bill.
  await enqueueSubscriptionSync(tx, instanceId);
  return generation;
}

/**
 * Locks the instance row and checks the caller may act on it (404 when it may not see it);
 * Woolly acting on its own (a system actor) may act on any.
 */
async function lockInstance(
  tx: Tx,
  ctx: RequestContext | SystemActor,
  instanceId: string,
  roles: ActionRule['roles'],
): Promise<LockedInstance> {
  await tx.$queryRaw`select 1 from "Instance" where id = ${instanceId}::uuid for update`;
  const instance = await tx.instance.findUnique({
    where: { id: instanceId },
    include: { plan: true, addons: { include: { addonType: true } } },
  });
  if (!instance) throw new AppError('not_found', `No instance ${instanceId}.`);
  if (!('system' in ctx)) await assertInstanceRole(tx, ctx.actor, instance, roles);
  return instance;
}

/** `If-Match` against the current generation (RFC 9110 strong comparison of `"<generation>"`). */
function checkPrecondition(
  generation: number,
  ifMatch: string | undefined,
  mode: ActionRule['ifMatch'],
): void {
  const current = `"${generation}"`;
  if (ifMatch === undefined) {
    if (mode === 'required') {
      throw new AppError(
        'precondition_required',
        `Send If-Match: ${current} (the ETag of GET /v1/instances/{id}) so a change made meanwhile is not overwritten.`,
      );
    }
    return;
  }
  if (ifMatch !== current) {
    throw new AppError(
      'precondition_failed',
      `The server changed since you read it: If-Match was ${ifMatch}, the current ETag is ${current}. Read it again, then retry.`,
    );
  }
}

/** Changes the plan and/or upgrades Mastodon. */
export function updateInstance(
  deps: Pick<ApiDeps, 'db'>,
  ctx: RequestContext,
  instanceId: string,
  ifMatch: string | undefined,
  input: { plan?: string | undefined; mastodonVersion?: string | undefined },
): Promise<number> {
  // Upgrading is the server's admins' call; a plan change spends money, which billing may do.
  const roles = input.mastodonVersion === undefined ? MANAGING_ROLES : SERVER_ROLES;
  return changeInstance(
    deps,
    ctx,
    instanceId,
    ifMatch,
    { roles, from: CHANGEABLE, ifMatch: 'required' },
    decideUpdate(deps.db, input),
  );
}

/** What a plan change and/or Mastodon upgrade does to the locked instance; refusals throw. */
function decideUpdate(
  db: Db | Tx,
  input: { plan?: string | undefined; mastodonVersion?: string | undefined },
): (instance: LockedInstance) => Promise<Change> {
  return async (instance) => {
    const data: Prisma.InstanceUncheckedUpdateInput = {};
    const changed: string[] = [];
    if (input.plan !== undefined && input.plan !== instance.plan.code) {
      const plan = await db.plan.findUnique({ where: { code: input.plan } });
      if (!plan?.active) {
        throw new AppError('unprocessable', `There is no plan "${input.plan}".`, {
          errors: [{ field: 'plan', message: 'Unknown plan; GET /v1/plans lists them.' }],
        });
      }
      const stranded = instance.addons
        .map((a) => a.addonType.code)
        .filter((code) => !plan.addonCodes.includes(code));
      if (stranded.length > 0) {
        throw new AppError(
          'unprocessable',
          `The ${plan.name} plan cannot carry ${stranded.join(', ')}; remove ${stranded.length > 1 ? 'them' : 'it'} first.`,
          { errors: [{ field: 'plan', message: `Does not allow ${stranded.join(', ')}.` }] },
        );
      }
      data.planId = plan.id;
      changed.push(`plan ${instance.plan.code} → ${plan.code}`);
    }
    if (input.mastodonVersion !== undefined && input.mastodonVersion !== instance.mastodonVersion) {
      if (compareMastodonVersions(input.mastodonVersion, instance.mastodonVersion) < 0) {
        throw new AppError(
          'unprocessable',
          `Mastodon cannot go back from ${instance.mastodonVersion} to ${input.mastodonVersion}: its database migrations only run forward.`,
          {
            errors: [
              { field: 'mastodonVersion', message: `Must be newer than ${instance.mastodonVersion}.` },
            ],
          },
        );
      }
      data.mastodonVersion = input.mastodonVersion;
      changed.push(`Mastodon ${instance.mastodonVersion} → ${input.mastodonVersion}`);
    }
    if (changed.length === 0) {
      throw new AppError('unprocessable', 'Nothing to change: the server already has this plan and version.');
    }
    return {
      kind: data.mastodonVersion ? 'upgrade' : 'resize',
      status: afterChange(instance.status),
      data,
      event: { type: 'instance.updating', message: `Change requested: ${changed.join(', ')}.` },
      audit: { action: 'instance.update', data: { ...input } },
    };
  };
}

/**
 * One server's step of a fleet upgrade (provisioner/fleet-upgrades.ts): the change a staff
 * PATCH of `mastodonVersion` makes, on the caller's transaction so the fleet upgrade's own
 * writes commit with it. Only a `running` server is upgraded, and without If-Match (the fleet
 * upgrade holds no ETag): a server that is not running, gone, or already on this version or a
 * newer one is refused as the PATCH would refuse it, and the caller skips it.
 */
export function upgradeInstanceInFleet(
  tx: Tx,
  ctx: RequestContext,
  instanceId: string,
  mastodonVersion: string,
  fleet: { fleetUpgradeId: string; wave: number },
): Promise<number> {
  const decide = decideUpdate(tx, { mastodonVersion });
  const rule = { roles: 'staff', from: ['running'], ifMatch: 'optional' } as const;
  return changeInstanceIn(tx, ctx, instanceId, undefined, rule, async (instance) => {
    const change = await decide(instance);
    return {
      ...change,
      event: {
        ...change.event,
        message: `${change.event.message} Part of fleet upgrade ${fleet.fleetUpgradeId}, wave ${fleet.wave}.`,
      },
      audit: { action: 'instance.update', data: { mastodonVersion, ...fleet } },
    };
  });
}

/** Adds an add-on the plan allows. */
export function addInstanceAddon(
  deps: Pick<ApiDeps, 'db'>,
  ctx: RequestContext,
  instanceId: string,
  ifMatch: string | undefined,
  code: string,
): Promise<number> {
  const rule = { roles: MANAGING_ROLES, from: CHANGEABLE, ifMatch: 'optional' } as const;
  return changeInstance(deps, ctx, instanceId, ifMatch, rule, async (instance) => {
    const codes = instance.addons.map((addon) => addon.addonType.code);
    if (codes.includes(code)) throw new AppError('conflict', `The server already has ${code}.`);
    const addonType = await deps.db.addonType.findUnique({ where: { code } });
    if (!addonType?.active || !instance.plan.addonCodes.includes(code)) {
      throw new AppError('unprocessable', `The ${instance.plan.name} plan cannot carry ${code}.`, {
        errors: [
          { field: 'code', message: 'Not available on this plan; GET /v1/plans lists what each allows.' },
        ],
      });
    }
    return {
      kind: 'configure',
      status: afterChange(instance.status),
      event: { type: 'instance.updating', message: `Add-on ${addonType.name} requested.` },
      audit: { action: 'instance.addon.add', data: { code } },
      also: async (tx) => {
        await tx.instanceAddon.create({ data: { instanceId, addonTypeId: addonType.id } });
      },
    };
  });
}

/** Removes an add-on the server has. */
export function removeInstanceAddon(
  deps: Pick<ApiDeps, 'db'>,
  ctx: RequestContext,
  instanceId: string,
  ifMatch: string | undefined,
  code: string,
): Promise<number> {
  const rule = { roles: MANAGING_ROLES, from: CHANGEABLE, ifMatch: 'optional' } as const;
  return changeInstance(deps, ctx, instanceId, ifMatch, rule, (instance) => {
    const addon = instance.addons.find((candidate) => candidate.addonType.code === code);
    if (!addon) throw new AppError('not_found', `The server has no ${code} add-on.`);
    return {
      kind: 'configure',
      status: afterChange(instance.status),
      event: { type: 'instance.updating', message: `Removal of add-on ${addon.addonType.name} requested.` },
      audit: { action: 'instance.addon.remove', data: { code } },
      also: async (tx) => {
        await tx.instanceAddon.delete({ where: { id: addon.id } });
      },
    };
  });
}

/** Staff stop a server, keeping everything; the reconciler scales it to zero. */
export function suspendInstance(
  deps: Pick<ApiDeps, 'db'>,
  ctx: RequestContext,
  instanceId: string,
  ifMatch: string | undefined,
  reason: string | undefined,
): Promise<number> {
  return changeInstance(deps, ctx, instanceId, ifMatch, SUSPEND_RULE, decideSuspend(reason));
}

const SUSPEND_RULE = {
  roles: 'staff',
  from: ['running', 'updating', 'failed'],
  ifMatch: 'optional',
} as const;

/** A suspension: the spec says suspended, with why, and the reconciler scales the server to zero. */
const decideSuspend =
  (reason: string | undefined) =>
  (instance: LockedInstance): Change => ({
    kind: 'suspend',
    status: 'updating',
    statusReason: `suspending${reason ? `: ${reason}` : ''}`,
    data: { spec: { ...specOf(instance), suspended: true, suspendReason: reason ?? null } },
    event: { type: 'instance.suspending', message: `Suspension requested${reason ? `: ${reason}` : ''}.` },
    audit: { action: 'instance.suspend', data: { reason: reason ?? null } },
  });

/** Staff start a suspended server again. */
export function resumeInstance(
  deps: Pick<ApiDeps, 'db'>,
  ctx: RequestContext,
  instanceId: string,
  ifMatch: string | undefined,
): Promise<number> {
  const rule = { roles: 'staff', from: ['suspended'], ifMatch: 'optional' } as const;
  return changeInstance(deps, ctx, instanceId, ifMatch, rule, decideResume);
}

/** A resume: the spec says running again, and the reconciler scales the server back up. */
const decideResume = (instance: LockedInstance): Change => ({
  kind: 'resume',
  status: 'updating',
  statusReason: 'resuming',
  data: { spec: { ...specOf(instance), suspended: false, suspendReason: null } },
  event: { type: 'instance.resuming', message: 'Resume requested.' },
  audit: { action: 'instance.resume' },
});

/**
 * Staff retry a failed server: it goes back to what it was doing (provisioning, applying a
 * change, or waiting to be purged) and the reconciler starts a fresh operation.
 */
export function retryInstance(
  deps: Pick<ApiDeps, 'db'>,
  ctx: RequestContext,
  instanceId: string,
  ifMatch: string | undefined,
): Promise<number> {
  const rule = { roles: 'staff', from: ['failed'], ifMatch: 'optional' } as const;
  return changeInstance(deps, ctx, instanceId, ifMatch, rule, (instance) => {
    const deleting = instance.deleteAfter !== null;
    const neverRan = instance.observedGeneration === 0;
    return {
      kind: deleting ? 'delete' : neverRan ? 'provision' : 'configure',
      status: deleting ? 'deleting' : neverRan ? 'provisioning' : 'updating',
      statusReason: `retrying after: ${instance.statusReason ?? 'a failure'}`,
      event: { type: 'instance.retrying', message: 'Retry requested by staff.' },
      audit: { action: 'instance.retry', data: { reason: instance.statusReason } },
      also: deleting
        ? (tx) =>
            schedulePurge(
              tx,
              instanceId,
              new Date(Math.max(Date.now(), instance.deleteAfter?.getTime() ?? 0)),
            )
        : undefined,
    };
  });
}

/**
 * Deletes a server after the grace period: it stops now (scaled to zero, data kept) and the
 * purge is scheduled; until then `restoreInstance` undoes it.
 */
export function deleteInstance(
  deps: Pick<ApiDeps, 'db' | 'config'>,
  ctx: RequestContext,
  instanceId: string,
  ifMatch: string | undefined,
): Promise<number> {
  const rule = {
    roles: SERVER_ROLES,
    from: ['provisioning', 'running', 'updating', 'suspended', 'failed'],
    ifMatch: 'optional',
  } as const;
  return changeInstance(deps, ctx, instanceId, ifMatch, rule, () =>
    decideDelete(instanceId, new Date(Date.now() + deps.config.deletionGraceHours * 3_600_000)),
  );
}

/** A deletion: the server stops now and its purge (final backup first) is scheduled for `deleteAfter`. */
const decideDelete = (instanceId: string, deleteAfter: Date): Change => ({
  kind: 'delete',
  status: 'deleting',
  statusReason: `stopped; purged at ${deleteAfter.toISOString()} unless restored`,
  data: { deleteAfter },
  event: {
    type: 'instance.deleting',
    message: `Deletion requested: the server stops now and is purged at ${deleteAfter.toISOString()} unless restored.`,
  },
  audit: { action: 'instance.delete', data: { deleteAfter: deleteAfter.toISOString() } },
  also: (tx) => schedulePurge(tx, instanceId, deleteAfter),
});

/** Undoes a deletion still in its grace period; the server comes back as it was. */
export function restoreInstance(
  deps: Pick<ApiDeps, 'db'>,
  ctx: RequestContext,
  instanceId: string,
  ifMatch: string | undefined,
): Promise<number> {
  const rule = { roles: SERVER_ROLES, from: ['deleting'], ifMatch: 'optional' } as const;
  return changeInstance(deps, ctx, instanceId, ifMatch, rule, decideRestore(new Date()));
}

/** Whether a deleting server may still come back: its purge is not due yet. */
export const isRestorable = (instance: { status: InstanceStatus; deleteAfter: Date | null }, at: Date) =>
  instance.status === 'deleting' && instance.deleteAfter !== null && instance.deleteAfter > at;

/** A restore: the deletion undone and its purge dropped, refused once the purge is due. */
const decideRestore =
  (at: Date) =>
  (instance: LockedInstance): Change => {
    if (!isRestorable(instance, at)) {
      throw new AppError(
        'conflict',
        'The grace period is over: the server is being purged and cannot be restored.',
      );
    }
    return {
      kind: 'resume',
      // Through `updating`: the reconciler brings it back, suspended if it was before.
      status: 'updating',
      statusReason: 'restoring',
      data: { deleteAfter: null },
      event: { type: 'instance.restoring', message: 'Deletion undone; the server is coming back.' },
      audit: { action: 'instance.restore' },
      also: (tx) => cancelPurge(tx, instance.id),
    };
  };

/**
 * The changes Woolly makes to a server on its own (billing's dunning), in the caller's
 * transaction: the same Operation, Event, reconcile and subscription sync as a person's, with
 * no access check and the audit row naming `by`. A server in a status the change does not fit
 * is refused (`conflict`), so callers look at the status first.
 */
const SYSTEM_RULES = {
  suspend: SUSPEND_RULE,
  // A suspension still being applied (updating) or stuck (failed) is undone as well.
  resume: { roles: 'staff', from: ['suspended', 'updating', 'failed'], ifMatch: 'optional' },
  delete: {
    roles: 'staff',
    from: ['provisioning', 'running', 'updating', 'suspended', 'failed'],
    ifMatch: 'optional',
  },
  restore: { roles: 'staff', from: ['deleting'], ifMatch: 'optional' },
} as const;

/** Suspends a server as Woolly (see `SYSTEM_RULES`); `reason` is kept in its spec. */
export function suspendInstanceAsSystem(tx: Tx, by: SystemActor, instanceId: string, reason: string) {
  return changeInstanceIn(tx, by, instanceId, undefined, SYSTEM_RULES.suspend, decideSuspend(reason));
}

/** Resumes a suspended (or suspending) server as Woolly. */
export function resumeInstanceAsSystem(tx: Tx, by: SystemActor, instanceId: string) {
  return changeInstanceIn(tx, by, instanceId, undefined, SYSTEM_RULES.resume, decideResume);
}

/** Deletes a server as Woolly: it stops now and is purged (final backup first) at `deleteAfter`. */
export function deleteInstanceAsSystem(tx: Tx, by: SystemActor, instanceId: string, deleteAfter: Date) {
  return changeInstanceIn(tx, by, instanceId, undefined, SYSTEM_RULES.delete, () =>
    decideDelete(instanceId, deleteAfter),
  );
}

/** Undoes a deletion as Woolly, while `isRestorable` at `at`. */
export function restoreInstanceAsSystem(tx: Tx, by: SystemActor, instanceId: string, at: Date) {
  return changeInstanceIn(tx, by, instanceId, undefined, SYSTEM_RULES.restore, decideRestore(at));
}

/** Queues a backup; one at a time per server. Returns the Backup row. */
export async function requestBackup(deps: Pick<ApiDeps, 'db'>, ctx: RequestContext, instanceId: string) {
  return deps.db.$transaction(async (tx) => {
    const instance = await lockInstance(tx, ctx, instanceId, SERVER_ROLES);
    if (!['running', 'updating', 'suspended'].includes(instance.status)) {
      throw new AppError(
        'conflict',
        `The server is ${instance.status}; only a live server can be backed up.`,
      );
    }
    const pending = await tx.backup.findFirst({
      where: { instanceId, status: 'pending' },
      select: { id: true },
    });
    if (pending) throw new AppError('conflict', `Backup ${pending.id} is still running; one at a time.`);
    const backup = await tx.backup.create({ data: { instanceId, status: 'pending' } });
    await tx.operation.create({
      data: { instanceId, kind: 'backup', status: 'running', generation: instance.generation },
    });
    await audit(tx, ctx, {
      action: 'instance.backup',
      targetType: 'instance',
      targetId: instanceId,
      organizationId: instance.organizationId,
      data: { backupId: backup.id },
    });
    await enqueueBackup(tx, instanceId, backup.id);
    return backup;
  });
}
