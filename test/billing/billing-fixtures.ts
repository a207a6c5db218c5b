import { randomUUID } from 'node:crypto';
import type { Db } from '../../core/db.ts';
import type { InstanceStatus } from '../../core/domain/instance-status.ts';

/** A server of `organizationId` on `plan`, with a subscription of `provider` and its period. */
export async function createSubscribedServer(
  db: Db,
  options: {
    organizationId: string;
    plan?: string;
    status?: InstanceStatus;
    spec?: Record<string, unknown>;
    provider?: 'none' | 'stripe';
    periodStart?: Date;
    addons?: string[];
    subscription?: {
      status?: string;
      priceMinor?: number;
      currency?: string;
      canceledAt?: Date | null;
      createdAt?: Date;
      pastDueSince?: Date;
      graceEndsAt?: Date;
      suspendedAt?: Date;
    };
  },
): Promise<{ instanceId: string; subscriptionId: string; domain: string }> {
  const plan = await db.plan.findUniqueOrThrow({ where: { code: options.plan ?? 'starter' } });
  const addonTypes = await db.addonType.findMany({ where: { code: { in: options.addons ?? [] } } });
  const domain = `s-${randomUUID().slice(0, 8)}.woolly.test`;
  const instance = await db.instance.create({
    data: {
      organizationId: options.organizationId,
      planId: plan.id,
      domain,
      mastodonVersion: 'v4.5.11',
      status: options.status ?? 'running',
      spec: (options.spec ?? {}) as object,
      generation: 1,
      observedGeneration: 1,
      addons: { create: addonTypes.map((addon) => ({ addonTypeId: addon.id })) },
    },
  });
  const start = options.periodStart ?? new Date('2026-10-01T00:00:00Z');
  const end = new Date(start);
  end.setUTCMonth(end.getUTCMonth() + 1);
  const provider = options.provider ?? 'none';
  const subscription = await db.subscription.create({
    data: {
      instanceId: instance.id,
      organizationId: options.organizationId,
      provider,
      providerId: provider === 'stripe' ? `sub_${randomUUID().replaceAll('-', '')}` : null,
      status: options.subscription?.status ?? 'active',
      priceMinor: options.subscription?.priceMinor ?? plan.priceMinor,
      currency: options.subscription?.currency ?? plan.currency,
      currentPeriodStart: start,
      currentPeriodEnd: end,
      canceledAt: options.subscription?.canceledAt ?? null,
      pastDueSince: options.subscription?.pastDueSince ?? null,
      graceEndsAt: options.subscription?.graceEndsAt ?? null,
      suspendedAt: options.subscription?.suspendedAt ?? null,
      ...(options.subscription?.createdAt ? { createdAt: options.subscription.createdAt } : {}),
    },
  });
  return { instanceId: instance.id, subscriptionId: subscription.id, domain };
}

/** The graphile-worker jobs queued under `key`, with their task and time. */
export async function jobsWithKey(db: Db, key: string) {
  return db.$queryRaw<{ task: string; runAt: Date }[]>`
    select t.identifier as task, j.run_at as "runAt" from graphile_worker._private_jobs j
      join graphile_worker._private_tasks t on t.id = j.task_id where j.key = ${key}`;
}
