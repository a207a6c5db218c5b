import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { canTransition, type InstanceStatus } from '../../../core/domain/instance-status.ts';
import { InstanceStatus as Statuses } from '../../../core/generated/prisma/enums.ts';

const ALL = Object.values(Statuses) as InstanceStatus[];

describe('canTransition', () => {
  const allowed: [InstanceStatus, InstanceStatus][] = [
    ['pending_payment', 'provisioning'],
    ['provisioning', 'running'],
    ['running', 'suspended'],
    ['suspended', 'running'],
    ['running', 'updating'],
    ['updating', 'running'],
    ['deleting', 'deleted'],
    ['updating', 'suspended'],
    ['suspended', 'updating'],
    ['deleting', 'updating'],
    ['failed', 'provisioning'],
    ['provisioning', 'failed'],
  ];
  for (const [from, to] of allowed) {
    test(`allows ${from} → ${to}`, () => assert.equal(canTransition(from, to), true));
  }

  const refused: [InstanceStatus, InstanceStatus][] = [
    ['running', 'pending_payment'],
    ['deleted', 'running'],
    ['pending_payment', 'running'],
    ['suspended', 'provisioning'],
    ['deleting', 'running'],
    ['provisioning', 'deleted'],
    ['running', 'deleted'],
  ];
  for (const [from, to] of refused) {
    test(`refuses ${from} → ${to}`, () => assert.equal(canTransition(from, to), false));
  }

  test('every live status can be moved to deleting', () => {
    for (const from of ALL.filter((s) => s !== 'deleting' && s !== 'deleted')) {
      assert.equal(canTransition(from, 'deleting'), true, from);
    }
  });

  test('deleted is terminal: nothing leaves it', () => {
    for (const to of ALL) assert.equal(canTransition('deleted', to), false, to);
  });

  test('only deleting leads to deleted', () => {
    assert.deepEqual(
      ALL.filter((from) => canTransition(from, 'deleted')),
      ['deleting'],
    );
  });

  test('nothing goes back to pending_payment', () => {
    for (const from of ALL) assert.equal(canTransition(from, 'pending_payment'), false, from);
  });

  test('no status transitions to itself', () => {
    for (const status of ALL) assert.equal(canTransition(status, status), false, status);
  });

  test('every status except deleted can reach deleted', () => {
    for (const start of ALL.filter((s) => s !== 'deleted')) {
      const seen = new Set<InstanceStatus>([start]);
      const queue: InstanceStatus[] = [start];
      while (queue.length > 0) {
        const from = queue.shift() as InstanceStatus;
        for (const to of ALL) {
          if (canTransition(from, to) && !seen.has(to)) {
            seen.add(to);
            queue.push(to);
          }
        }
      }
      assert.ok(seen.has('deleted'), `${start} cannot reach deleted`);
    }
  });
});
