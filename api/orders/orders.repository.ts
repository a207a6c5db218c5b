import type pg from 'pg';
import type { MembershipRole } from '../../core/generated/prisma/enums.ts';

/**
 * Placing an order is the API's hottest write, so it runs on plain pg: one query reads every
 * fact the decision needs, one statement writes the order, its instance, add-ons and audit
 * row. Through Prisma the same work cost about 25 ms of CPU an order (README, Performance).
 */

export interface OrderFacts {
  organizationExists: boolean;
  /** The caller's role in the organization, if a member. */
  role: MembershipRole | null;
  user: { hasPassword: boolean; emailVerified: boolean };
  plan: {
    id: string;
    code: string;
    name: string;
    priceMinor: number;
    currency: string;
    addonCodes: string[];
    active: boolean;
  } | null;
  /** The active add-on types among those asked for. */
  addons: { id: string; code: string; priceMinor: number }[];
  /** Hostnames the organization has verified (custom domains). */
  verifiedDomains: string[];
}

const FACTS = `
  select exists(select 1 from "Organization" where id = $1::uuid) as "organizationExists",
         (select role from "Membership" where "organizationId" = $1::uuid and "userId" = $2::uuid) as role,
         (select json_build_object('hasPassword', "passwordHash" is not null, 'emailVerified', "emailVerifiedAt" is not null)
            from "User" where id = $2::uuid) as "user",
         (select json_build_object('id', id, 'code', code, 'name', name, 'priceMinor', "priceMinor",
                                   'currency', currency, 'addonCodes', "addonCodes", 'active', active)
            from "Plan" where code = $3) as plan,
         coalesce((select json_agg(json_build_object('id', id, 'code', code, 'priceMinor', "priceMinor"))
                     from "AddonType" where code = any($4::text[]) and active), '[]') as addons,
         coalesce((select array_agg(hostname) from "CustomDomain"
                    where "organizationId" = $1::uuid and "verifiedAt" is not null), '{}') as "verifiedDomains"`;

export async function readOrderFacts(
  pool: pg.Pool,
  input: { organizationId: string; userId: string; plan: string; addons: string[] },
): Promise<OrderFacts> {
  const { rows } = await pool.query<OrderFacts & { user: OrderFacts['user'] | null }>({
    name: 'order-facts',
    text: FACTS,
    values: [input.organizationId, input.userId, input.plan, input.addons],
  });
  const row = rows[0] as OrderFacts & { user: OrderFacts['user'] | null };
  return { ...row, user: row.user ?? { hasPassword: false, emailVerified: false } };
}

export interface OrderRow {
  id: string;
  organizationId: string;
  instanceId: string | null;
  domain: string;
  status: 'pending_payment' | 'paid' | 'cancelled';
  addonCodes: string[];
  totalMinor: number;
  currency: string;
  paidAt: Date | null;
  createdAt: Date;
}

/**
 * Writes the instance (pending payment), its add-ons and the order in one statement. A
 * domain already taken breaks the unique index `Instance_domain_key`.
 */
const INSERT = `
  with instance as (
    insert into "Instance" (id, "organizationId", "planId", domain, "mastodonVersion", status, spec, "updatedAt")
    values ($1::uuid, $2::uuid, $3::uuid, $4, $5, 'pending_payment', json_build_object('addons', $6::text[]), now())
    returning id
  ), addons as (
    insert into "InstanceAddon" (id, "instanceId", "addonTypeId")
    select gen_random_uuid(), instance.id, addon from instance, unnest($7::uuid[]) as addon
  )
  insert into "Order" (id, "organizationId", "instanceId", domain, "planId", "addonCodes", status, "totalMinor",
                       currency, "createdById", "paidAt")
  select $8::uuid, $2::uuid, instance.id, $4, $3::uuid, $6::text[], $9::"OrderStatus", $10, $11, $12::uuid, $13
    from instance
  returning id, "organizationId", "instanceId", domain, status, "addonCodes", "totalMinor", currency, "paidAt", "createdAt"`;

export async function insertOrder(
  client: pg.PoolClient,
  order: {
    id: string;
    instanceId: string;
    organizationId: string;
    planId: string;
    domain: string;
    mastodonVersion: string;
    addonCodes: string[];
    addonTypeIds: string[];
    status: 'pending_payment' | 'paid';
    totalMinor: number;
    currency: string;
    createdById: string;
    paidAt: Date | null;
  },
): Promise<OrderRow> {
  const { rows } = await client.query<OrderRow>({
    name: 'order-insert',
    text: INSERT,
    values: [
      order.instanceId,
      order.organizationId,
      order.planId,
      order.domain,
      order.mastodonVersion,
      order.addonCodes,
      order.addonTypeIds,
      order.id,
      order.status,
      order.totalMinor,
      order.currency,
      order.createdById,
      order.paidAt,
    ],
  });
  return rows[0] as OrderRow;
}
