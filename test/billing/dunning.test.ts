/**
 * Dunning on a real PostgreSQL: a failed payment puts the subscription past due, a notice goes
 * before the grace ends, the server is suspended (data kept) when it ends, and deleted the
 * normal way after the retention window; a payment at any point brings the server back at
 * once, but never lifts a suspension staff made for another reason. Every step repeated
 * changes nothing.
 */
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import {
  DUNNING_SUSPEND_REASON,
  type DunningDeps,
  dunningSettingsOf,
  dunningTasks,
  enterPastDue,
  runDunning,
  settlePastDue,
} from '../../billing/dunning.ts';
import { ConfigError, loadConfig } from '../../core/config.ts';
import { makeLogger } from '../../core/log.ts';
import { makeTestDatabase, type TestDatabase } from '../support/db.ts';
import { createOrganization, createUserWithToken } from '../support/factories.ts';
import { createSubscribedServer, jobsWithKey } from './billing-fixtures.ts';

const DAY = 86_400_000;
const T0 = new Date('2026-11-02T10:00:00Z');
const at = (days: number, hours = 0) => new Date(T0.getTime() + days * DAY + hours * 3_600_000);
const settings = { graceDays: 7, retentionDays: 30, deletionGraceHours: 48 };
const log = makeLogger({ log: { level: 'error', format: 'json' } }, new PassThrough().resume());

let database: TestDatabase;
let organizationId: string;
const emails: string[] = [];
const cancelled: string[] = [];
let deps: DunningDeps;

before(async () => {
  database = await makeTestDatabase();
  const owner = await createUserWithToken(database.db, { email: `owner-${Date.now()}@example.test` });
  organizationId = await createOrganization(database.db, owner.userId, 'owner');
  const billing = await createUserWithToken(database.db, { email: `billing-${Date.now()}@example.test` });
  const viewer = await createUserWithToken(database.db);
  await database.db.membership.createMany({
    data: [
      { organizationId, userId: billing.userId, role: 'billing' },
      { organizationId, userId: viewer.userId, role: 'viewer' },
    ],
  });
  for (const { userId } of [owner, billing]) {
    emails.push((await database.db.user.findUniqueOrThrow({ where: { id: userId } })).email);
  }
  deps = {
    db: database.db,
    log,
    settings,
    cancelProviderSubscription: async (providerId) => {
      cancelled.push(providerId);
    },
  };
});

after(async () => {
  await database.release();
});

const subscriptionOf = (id: string) => database.db.subscription.findUniqueOrThrow({ where: { id } });
const instanceOf = (id: string) => database.db.instance.findUniqueOrThrow({ where: { id } });
const eventsOf = async (instanceId: string, type: string) =>
  database.db.event.findMany({ where: { instanceId, type }, orderBy: { id: 'asc' } });
const auditOf = (instanceId: string, action: string) =>
  database.db.auditLog.findMany({ where: { targetId: instanceId, action } });

/** Everything dunning may write for a server, to show that a repeat writes nothing. */
async function footprint(instanceId: string, subscriptionId: string) {
  const db = database.db;
  const [subscription, instance, events, audits, operations, jobs] = await Promise.all([
    subscriptionOf(subscriptionId),
    instanceOf(instanceId),
    db.event.count({ where: { instanceId } }),
    db.auditLog.count({ where: { targetId: instanceId } }),
    db.operation.count({ where: { instanceId } }),
    db.$queryRaw<{ n: bigint }[]>`select count(*) as n from graphile_worker._private_jobs`,
  ]);
  const { updatedAt: _s, ...subscriptionState } = subscription;
  const { updatedAt: _i, ...instanceState } = instance;
  return { subscriptionState, instanceState, events, audits, operations, jobs: Number(jobs[0]?.n) };
}

/** What the reconciler does once a suspension is applied: the server is suspended. */
async function reconcilerSettles(instanceId: string) {
  const instance = await instanceOf(instanceId);
  const suspended = (instance.spec as { suspended?: boolean }).suspended === true;
  await database.db.instance.update({
    where: { id: instanceId },
    data: { status: suspended ? 'suspended' : 'running', observedGeneration: instance.generation },
  });
}

const enter = (subscriptionId: string, when: Date) =>
  database.db.$transaction((tx) => enterPastDue(tx, subscriptionId, when, settings));
const settle = (subscriptionId: string, when: Date) =>
  database.db.$transaction((tx) => settlePastDue(tx, subscriptionId, when));

describe('a failed payment, the grace period, suspension and a payment', () => {
  let server: { instanceId: string; subscriptionId: string };
  before(async () => {
    server = await createSubscribedServer(database.db, { organizationId });
  });

  it('puts the subscription past due with its grace period, an Event naming whom to tell, and an audit row', async () => {
    assert.equal(await enter(server.subscriptionId, T0), true);
    const subscription = await subscriptionOf(server.subscriptionId);
    assert.equal(subscription.status, 'past_due');
    assert.deepEqual(subscription.pastDueSince, T0);
    assert.deepEqual(subscription.graceEndsAt, at(7));
    const events = await eventsOf(server.instanceId, 'billing.payment_failed');
    assert.equal(events.length, 1);
    const event = events[0] as (typeof events)[number];
    assert.match(event.message, new RegExp(at(7).toISOString()));
    assert.deepEqual([...(event.data as { notify: string[] }).notify].sort(), [...emails].sort());
    const [row] = await auditOf(server.instanceId, 'subscription.past_due');
    assert.equal(row?.actor, 'system:billing');
    assert.equal(row?.organizationId, organizationId);
    assert.equal((await instanceOf(server.instanceId)).status, 'running', 'the server keeps running');
  });

  it('changes nothing when the failure is reported again', async () => {
    const before = await footprint(server.instanceId, server.subscriptionId);
    assert.equal(await enter(server.subscriptionId, at(1)), false);
    assert.deepEqual(await footprint(server.instanceId, server.subscriptionId), before);
  });

  it('warns once, a day before the grace ends, and not earlier', async () => {
    assert.equal((await runDunning(deps, at(5))).warned, 0);
    assert.equal((await eventsOf(server.instanceId, 'billing.grace_ending')).length, 0);
    assert.equal((await runDunning(deps, at(6, 1))).warned, 1);
    const before = await footprint(server.instanceId, server.subscriptionId);
    assert.deepEqual(await runDunning(deps, at(6, 2)), {
      pastDue: 0,
      warned: 0,
      suspended: 0,
      deleted: 0,
      failed: 0,
    });
    assert.deepEqual(await footprint(server.instanceId, server.subscriptionId), before);
    assert.equal((await eventsOf(server.instanceId, 'billing.grace_ending')).length, 1);
    assert.equal((await subscriptionOf(server.subscriptionId)).lastNotice, 'grace_ending');
  });

  it('suspends the server when the grace ends, keeping its data, and only once', async () => {
    assert.equal((await runDunning(deps, at(6, 23))).suspended, 0);
    assert.equal((await runDunning(deps, at(7))).suspended, 1);
    const instance = await instanceOf(server.instanceId);
    assert.equal(instance.status, 'updating', 'the reconciler scales it down');
    assert.deepEqual(instance.spec, { suspended: true, suspendReason: DUNNING_SUSPEND_REASON });
    assert.equal(instance.deleteAfter, null, 'nothing is deleted');
    assert.deepEqual(
      (await jobsWithKey(database.db, server.instanceId)).map((job) => job.task),
      ['instance:reconcile'],
    );
    assert.equal((await jobsWithKey(database.db, `purge:${server.instanceId}`)).length, 0);
    assert.deepEqual((await subscriptionOf(server.subscriptionId)).suspendedAt, at(7));
    assert.equal((await eventsOf(server.instanceId, 'billing.suspended')).length, 1);
    assert.equal((await auditOf(server.instanceId, 'subscription.suspended'))[0]?.actor, 'system:billing');
    assert.equal((await auditOf(server.instanceId, 'instance.suspend'))[0]?.actor, 'system:billing');
    await reconcilerSettles(server.instanceId);
    const before = await footprint(server.instanceId, server.subscriptionId);
    assert.equal((await runDunning(deps, at(8))).suspended, 0);
    assert.deepEqual(await footprint(server.instanceId, server.subscriptionId), before);
  });

  it('resumes the server at once when the payment comes in, and a repeat changes nothing', async () => {
    assert.equal(await settle(server.subscriptionId, at(9)), true);
    const subscription = await subscriptionOf(server.subscriptionId);
    assert.equal(subscription.status, 'active');
    assert.deepEqual(
      [
        subscription.pastDueSince,
        subscription.graceEndsAt,
        subscription.suspendedAt,
        subscription.lastNotice,
      ],
      [null, null, null, null],
    );
    const instance = await instanceOf(server.instanceId);
    assert.equal(instance.status, 'updating');
    assert.equal((instance.spec as { suspended: boolean }).suspended, false);
    assert.equal(
      (
        await database.db.operation.findFirstOrThrow({
          where: { instanceId: server.instanceId, kind: 'resume' },
        })
      ).status,
      'running',
    );
    assert.equal((await eventsOf(server.instanceId, 'billing.payment_recovered')).length, 1);
    assert.equal((await auditOf(server.instanceId, 'subscription.recovered'))[0]?.actor, 'system:billing');
    const before = await footprint(server.instanceId, server.subscriptionId);
    assert.equal(await settle(server.subscriptionId, at(9)), false);
    assert.deepEqual(await footprint(server.instanceId, server.subscriptionId), before);
  });
});

describe('after the retention window', () => {
  let server: { instanceId: string; subscriptionId: string };
  before(async () => {
    server = await createSubscribedServer(database.db, { organizationId, provider: 'stripe' });
    await enter(server.subscriptionId, T0);
    await runDunning(deps, at(7));
    await reconcilerSettles(server.instanceId);
  });

  it('deletes the server the normal way, ends the subscription, and cancels the provider subscription once', async () => {
    cancelled.length = 0;
    assert.equal((await runDunning(deps, at(36, 23))).deleted, 0, 'not before the window ends');
    const run = await runDunning(deps, at(37));
    assert.equal(run.deleted, 1);
    const instance = await instanceOf(server.instanceId);
    assert.equal(instance.status, 'deleting');
    const purgeAt = new Date(at(37).getTime() + settings.deletionGraceHours * 3_600_000);
    assert.deepEqual(instance.deleteAfter, purgeAt);
    const purge = await jobsWithKey(database.db, `purge:${server.instanceId}`);
    assert.deepEqual(purge, [{ task: 'instance:purge', runAt: purgeAt }]);
    const subscription = await subscriptionOf(server.subscriptionId);
    assert.equal(subscription.status, 'cancelled');
    assert.deepEqual(subscription.canceledAt, at(37));
    assert.deepEqual(cancelled, [subscription.providerId]);
    assert.equal((await eventsOf(server.instanceId, 'billing.deleted')).length, 1);
    const before = await footprint(server.instanceId, server.subscriptionId);
    assert.equal((await runDunning(deps, at(38))).deleted, 0);
    assert.deepEqual(await footprint(server.instanceId, server.subscriptionId), before);
    assert.equal(cancelled.length, 1);
  });

  it('a payment while the deletion can still be undone restores and resumes the server', async () => {
    assert.equal(await settle(server.subscriptionId, at(38)), true);
    const instance = await instanceOf(server.instanceId);
    assert.equal(instance.status, 'updating');
    assert.equal(instance.deleteAfter, null);
    assert.equal((instance.spec as { suspended: boolean }).suspended, false);
    assert.equal((await jobsWithKey(database.db, `purge:${server.instanceId}`)).length, 0);
    const subscription = await subscriptionOf(server.subscriptionId);
    assert.equal(subscription.status, 'active');
    assert.equal(subscription.canceledAt, null);
  });
});

describe('what a payment does not undo', () => {
  it('a server staff suspended for another reason stays suspended after the payment', async () => {
    const server = await createSubscribedServer(database.db, {
      organizationId,
      status: 'suspended',
      spec: { suspended: true, suspendReason: 'abuse report' },
    });
    await enter(server.subscriptionId, T0);
    assert.equal((await runDunning(deps, at(7))).suspended, 1);
    const untouched = await instanceOf(server.instanceId);
    assert.deepEqual(untouched.spec, { suspended: true, suspendReason: 'abuse report' });
    assert.equal(untouched.generation, 1, 'dunning made no change to the server');
    assert.deepEqual((await subscriptionOf(server.subscriptionId)).suspendedAt, at(7));
    assert.equal(await settle(server.subscriptionId, at(8)), true);
    const after = await instanceOf(server.instanceId);
    assert.equal(after.status, 'suspended');
    assert.deepEqual(after.spec, { suspended: true, suspendReason: 'abuse report' });
    assert.equal((await subscriptionOf(server.subscriptionId)).status, 'active');
  });

  it('a payment once the purge is due cannot bring the server back: staff are told to refund it', async () => {
    const server = await createSubscribedServer(database.db, { organizationId });
    await enter(server.subscriptionId, T0);
    await runDunning(deps, at(7));
    await reconcilerSettles(server.instanceId);
    await runDunning(deps, at(37));
    assert.equal(await settle(server.subscriptionId, at(40)), true);
    assert.equal((await instanceOf(server.instanceId)).status, 'deleting');
    const subscription = await subscriptionOf(server.subscriptionId);
    assert.equal(subscription.status, 'cancelled');
    assert.equal(subscription.lastNotice, 'paid_after_deletion');
    assert.equal((await auditOf(server.instanceId, 'subscription.paid_after_deletion')).length, 1);
    assert.equal(await settle(server.subscriptionId, at(41)), false);
  });
});

describe('payments outside dunning', () => {
  it('make an incomplete subscription active, and leave one someone cancelled alone', async () => {
    const incomplete = await createSubscribedServer(database.db, {
      organizationId,
      subscription: { status: 'incomplete' },
    });
    assert.equal(await settle(incomplete.subscriptionId, T0), true);
    assert.equal((await subscriptionOf(incomplete.subscriptionId)).status, 'active');
    const ended = await createSubscribedServer(database.db, {
      organizationId,
      subscription: { status: 'cancelled', canceledAt: T0 },
    });
    const before = await footprint(ended.instanceId, ended.subscriptionId);
    assert.equal(await settle(ended.subscriptionId, at(1)), false);
    assert.equal(await enter(ended.subscriptionId, at(1)), false);
    assert.deepEqual(await footprint(ended.instanceId, ended.subscriptionId), before);
  });
});

describe('the dunning job', () => {
  it('puts a `none` subscription past due once one of its ledger invoices is open past its due date', async () => {
    const server = await createSubscribedServer(database.db, { organizationId });
    await database.db.invoice.create({
      data: {
        organizationId,
        instanceId: server.instanceId,
        providerId: `woolly:${server.subscriptionId}:test`,
        status: 'open',
        totalMinor: 1900,
        currency: 'eur',
        periodStart: at(-30),
        periodEnd: at(0),
        dueAt: at(14),
      },
    });
    assert.equal((await runDunning(deps, at(13))).pastDue, 0);
    assert.equal((await subscriptionOf(server.subscriptionId)).status, 'active');
    assert.equal((await runDunning(deps, at(14))).pastDue, 1);
    const subscription = await subscriptionOf(server.subscriptionId);
    assert.equal(subscription.status, 'past_due');
    assert.deepEqual(subscription.graceEndsAt, at(21));
    assert.equal((await runDunning(deps, at(14, 1))).pastDue, 0);
  });

  it('a provider that fails to cancel leaves the step undone for the next run', async () => {
    const server = await createSubscribedServer(database.db, { organizationId, provider: 'stripe' });
    await enter(server.subscriptionId, T0);
    await runDunning(deps, at(7));
    await reconcilerSettles(server.instanceId);
    const failing: DunningDeps = {
      ...deps,
      cancelProviderSubscription: async () => {
        throw new Error('Stripe is down');
      },
    };
    const run = await runDunning(failing, at(37));
    assert.equal(run.failed, 1);
    assert.equal((await subscriptionOf(server.subscriptionId)).status, 'past_due');
    assert.equal((await instanceOf(server.instanceId)).status, 'suspended');
    assert.equal((await runDunning(deps, at(37, 1))).deleted, 1);
    assert.equal((await instanceOf(server.instanceId)).status, 'deleting');
  });

  it('runs every 15 minutes, one run at a time', () => {
    const { tasks, crontab } = dunningTasks(deps);
    assert.deepEqual(Object.keys(tasks), ['billing:dunning']);
    assert.equal(crontab, '*/15 * * * * billing:dunning ?queue=billing:dunning&jobKey=billing:dunning');
  });
});

describe('dunning settings', () => {
  it('default to 7 days of grace and 30 of retention, with the deletion grace of the configuration', () => {
    assert.deepEqual(dunningSettingsOf(loadConfig({ WOOLLY_DELETION_GRACE_HOURS: '24' })), {
      graceDays: 7,
      retentionDays: 30,
      deletionGraceHours: 24,
    });
    const set = loadConfig({ WOOLLY_BILLING_GRACE_DAYS: '14', WOOLLY_BILLING_RETENTION_DAYS: '60' });
    assert.deepEqual(set.dunning, { graceDays: 14, retentionDays: 60 });
  });

  it('refuse bad values in one line naming each variable', () => {
    assert.throws(
      () => loadConfig({ WOOLLY_BILLING_GRACE_DAYS: 'a week', WOOLLY_BILLING_RETENTION_DAYS: '0' }),
      (error: unknown) => {
        assert.ok(error instanceof ConfigError);
        assert.doesNotMatch(error.message, /\n/);
        assert.match(error.message, /WOOLLY_BILLING_GRACE_DAYS .*\(got "a week"\)/);
        assert.match(error.message, /WOOLLY_BILLING_RETENTION_DAYS .*\(got "0"\)/);
        return true;
      },
    );
  });
});
