import type pg from 'pg';
import type { Statement } from '../../core/db.ts';
import type { MembershipRole } from '../../core/generated/prisma/enums.ts';
import { domainLookupKey, type OrderDomainFacts } from './order-domain.ts';

/**
 * Placing an order is the API's hottest write, so it runs on plain pg: one query reads every
 * fact the decision needs, and one statement writes the order with everything that goes with
 * it (`combine` in core/db.ts). Through Prisma the same work cost about 25 ms of CPU an order (README, Performance).
 */

/** Who the caller is to the organization (`decideOrganizationAccess`), and what decides the domain. */
export interface DomainFacts extends OrderDomainFacts {
  organizationExists: boolean;
  /** The caller's role in the organization, if a member. */
  role: MembershipRole | null;
}

export interface OrderFacts extends DomainFacts {
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
  /** Regions placement may choose from: those of the real clusters, or of any when none is real. */
  regions: string[];
}

/**
 * The columns of `DomainFacts`, for the organization $1, the caller $2 and the domain's lookup
 * key (`domainLookupKey`, null for no host name) in the parameter `domain`: one text both the
 * order's facts and the domain check read, so they decide on the same facts.
 */
const domainFactColumns = (domain: string) => `
         exists(select 1 from "Organization" where id = $1::uuid) as "organizationExists",
         (select role from "Membership" where "organizationId" = $1::uuid and "userId" = $2::uuid) as role,
         coalesce((select array_agg(hostname) from "CustomDomain"
                    where "organizationId" = $1::uuid and "verifiedAt" is not null), '{}') as "verifiedDomains",
         exists(select 1 from "Instance" where domain = ${domain}::text) as "domainTaken"`;

const FACTS = `
  select ${domainFactColumns('$5')},
         (select json_build_object('hasPassword', "passwordHash" is not null, 'emailVerified', "emailVerifiedAt" is not null)
            from "User" where id = $2::uuid) as "user",
         (select json_build_object('id', id, 'code', code, 'name', name, 'priceMinor', "priceMinor",
                                   'currency', currency, 'addonCodes', "addonCodes", 'active', active)
            from "Plan" where code = $3) as plan,
         coalesce((select json_agg(json_build_object('id', id, 'code', code, 'priceMinor', "priceMinor"))
                     from "AddonType" where code = any($4::text[]) and active), '[]') as addons,
         coalesce((select array_agg(distinct region) from "Cluster"
                    where target = 'kubernetes'
                       or not exists (select 1 from "Cluster" where target = 'kubernetes')), '{}') as regions`;

export async function readOrderFacts(
  pool: pg.Pool,
  input: { organizationId: string; userId: string; plan: string; addons: string[]; domain: string },
): Promise<OrderFacts> {
  const { rows } = await pool.query<OrderFacts & { user: OrderFacts['user'] | null }>({
    name: 'order-facts',
    text: FACTS,
    values: [input.organizationId, input.userId, input.plan, input.addons, domainLookupKey(input.domain)],
  });
  const row = rows[0] as OrderFacts & { user: OrderFacts['user'] | null };
  return { ...row, user: row.user ?? { hasPassword: false, emailVerified: false } };
}

/** `DomainFacts` alone, for checking a domain without ordering (`GET /v1/domains/check`). */
export async function readDomainFacts(
  pool: pg.Pool,
  input: { organizationId: string; userId: string; domain: string },
): Promise<DomainFacts> {
  const { rows } = await pool.query<DomainFacts>({
    name: 'domain-facts',
    text: `select ${domainFactColumns('$3')}`,
    values: [input.organizationId, input.userId, domainLookupKey(input.domain)],
  });
  return rows[0] as DomainFacts;
}

/**
 * The instance, its add-ons and the order, as statements to combine with the rest of the
 * order's writes. A domain already taken breaks the unique index `Instance_domain_key`. A
 * paid-at-once order creates its instance already `provisioning`: the state machine's
 * `pending_payment → provisioning`, taken at creation, since one statement cannot update the
 * row it inserts.
 */
export function orderInsertStatements(order: {
  id: string;
  instanceId: string;
  organizationId: string;
  planId: string;
  domain: string;
  mastodonVersion: string;
  /** Where the server must be placed; null for any region. */
  region: string | null;
  addonCodes: string[];
  addonTypeIds: string[];
  paid: boolean;
  totalMinor: number;
  currency: string;
  createdById: string;
  at: Date;
}): Statement[] {
  return [
    {
      text: `insert into "Instance" (id, "organizationId", "planId", domain, "mastodonVersion", status, spec,
                                     "createdAt", "updatedAt")
             values ($1::uuid, $2::uuid, $3::uuid, $4::text, $5::text, $6::"InstanceStatus",
                     jsonb_strip_nulls(jsonb_build_object('region', $8::text)), $7::timestamptz, $7::timestamptz)
             returning 1`,
      values: [
        order.instanceId,
        order.organizationId,
        order.planId,
        order.domain,
        order.mastodonVersion,
        order.paid ? 'provisioning' : 'pending_payment',
        order.at,
        order.region,
      ],
    },
    {
      text: `insert into "InstanceAddon" (id, "instanceId", "addonTypeId")
             select gen_random_uuid(), $1::uuid, addon from unnest($2::uuid[]) as addon
             returning 1`,
      values: [order.instanceId, order.addonTypeIds],
    },
    {
      text: `insert into "Order" (id, "organizationId", "instanceId", domain, "planId", "addonCodes", status,
                                  "totalMinor", currency, "createdById", "paidAt", "createdAt")
             values ($1::uuid, $2::uuid, $3::uuid, $4::text, $5::uuid, $6::text[], $7::"OrderStatus", $8::int,
                     $9::text, $10::uuid, $11::timestamptz, $12::timestamptz)
             returning 1`,
      values: [
        order.id,
        order.organizationId,
        order.instanceId,
        order.domain,
        order.planId,
        order.addonCodes,
        order.paid ? 'paid' : 'pending_payment',
        order.totalMinor,
        order.currency,
        order.createdById,
        order.paid ? order.at : null,
        order.at,
      ],
    },
  ];
}
