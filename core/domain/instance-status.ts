import { execute, type SqlClient } from '../db.ts';
import { AppError } from '../errors.ts';
import type { InstanceStatus } from '../generated/prisma/enums.ts';

export type { InstanceStatus };

/**
 * The instance lifecycle (ARCHITECTURE.md): every status change goes through `transition`,
 * which checks it against this table and applies it only if nobody changed the row meanwhile.
 */
const NEXT: Record<InstanceStatus, readonly InstanceStatus[]> = {
  pending_payment: ['provisioning', 'deleting', 'failed'],
  provisioning: ['running', 'deleting', 'failed'],
  running: ['updating', 'suspended', 'deleting', 'failed'],
  // A change applied ends running, or suspended when the spec says so (a suspension).
  updating: ['running', 'suspended', 'deleting', 'failed'],
  // Resuming goes through updating, while the reconciler scales the server back up.
  suspended: ['running', 'updating', 'deleting', 'failed'],
  // A deletion undone within its grace period (restore).
  deleting: ['deleted', 'updating', 'failed'],
  deleted: [],
  failed: ['provisioning', 'updating', 'deleting'],
};

export function canTransition(from: InstanceStatus, to: InstanceStatus): boolean {
  return NEXT[from].includes(to);
}

/**
 * Moves an instance from `from` to `to`. Throws `conflict` when the move is not allowed or
 * the instance is no longer in `from` (someone else moved it first).
 */
export async function transition(
  client: SqlClient,
  instanceId: string,
  from: InstanceStatus,
  to: InstanceStatus,
  changes: { statusReason?: string | null; observedGeneration?: number } = {},
): Promise<void> {
  if (!canTransition(from, to)) {
    throw new AppError('conflict', `An instance cannot go from ${from} to ${to}.`);
  }
  const count = await execute(client, {
    name: 'instance-transition',
    text: `update "Instance"
              set status = $3::"InstanceStatus", "statusReason" = $4,
                  "observedGeneration" = coalesce($5::int, "observedGeneration"), "updatedAt" = now()
            where id = $1::uuid and status = $2::"InstanceStatus"`,
    values: [instanceId, from, to, changes.statusReason ?? null, changes.observedGeneration ?? null],
  });
  if (count !== 1) {
    throw new AppError('conflict', `The instance is no longer ${from}; it was changed meanwhile.`);
  }
}
