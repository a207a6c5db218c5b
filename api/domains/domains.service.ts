import { randomBytes } from 'node:crypto';
import { type Db, isUniqueViolation, type Tx } from '../../core/db.ts';
import { challengeRecord, normaliseCustomDomain } from '../../core/domain/custom-domain.ts';
import { AppError } from '../../core/errors.ts';
import type { MembershipRole } from '../../core/generated/prisma/enums.ts';
import { audit } from '../audit.ts';
import type { ApiDeps, RequestContext } from '../context.ts';
import { acceptOrderDomain, domainLookupKey } from '../orders/order-domain.ts';
import { readDomainFacts } from '../orders/orders.repository.ts';
import {
  assertOrganizationAccess,
  decideOrganizationAccess,
  MANAGING_ROLES,
  MEMBER_ROLES,
} from '../policy.ts';
import { DNS_TIMEOUT_MS, type DnsResolver, type TxtLookup } from './dns.ts';

/** Claims decide where an organization's servers live, so billing and viewers may only look. */
const CLAIMING_ROLES: readonly MembershipRole[] = ['owner', 'admin'];

interface CustomDomainRow {
  id: string;
  organizationId: string;
  hostname: string;
  verificationToken: string;
  verifiedAt: Date | null;
  lastCheckedAt: Date | null;
  lastCheckError: string | null;
  createdAt: Date;
}

/** A custom domain as the API shows it, with the DNS record that proves it. */
export function presentCustomDomain(domain: CustomDomainRow) {
  return {
    id: domain.id,
    organizationId: domain.organizationId,
    hostname: domain.hostname,
    verifiedAt: domain.verifiedAt?.toISOString() ?? null,
    lastCheckedAt: domain.lastCheckedAt?.toISOString() ?? null,
    lastCheckError: domain.lastCheckError,
    createdAt: domain.createdAt.toISOString(),
    dnsRecord: challengeRecord(domain.hostname, domain.verificationToken),
  };
}

/** Says nothing about which organization holds the claim. */
function verifiedElsewhere(hostname: string): AppError {
  return new AppError('domain_unavailable', `${hostname} is already verified by another organization.`);
}

async function getCustomDomain(db: Db | Tx, organizationId: string, domainId: string) {
  const domain = await db.customDomain.findFirst({ where: { id: domainId, organizationId } });
  if (!domain) throw new AppError('not_found', `No custom domain ${domainId}.`);
  return domain;
}

/** The verdict of `GET /v1/domains/check`: `reason` is what the order would be refused with. */
export interface DomainCheck {
  domain: string;
  available: boolean;
  reason: string | null;
}

/**
 * Whether the organization could order a server at `input` now: the domain decision of
 * `createOrder` (`acceptOrderDomain`, on the same facts), with its refusal as `reason`
 * instead of an error. Only those who may order (managing roles, staff) may ask, since the
 * answer tells which names the organization has verified.
 */
export async function checkServerDomain(
  deps: ApiDeps,
  ctx: RequestContext,
  organizationId: string,
  input: string,
): Promise<DomainCheck> {
  const facts = await readDomainFacts(deps.pool, { organizationId, userId: ctx.actor.userId, domain: input });
  decideOrganizationAccess(ctx.actor, organizationId, facts, MANAGING_ROLES);
  try {
    const domain = acceptOrderDomain(input, deps.config.baseDomain, facts);
    return { domain, available: true, reason: null };
  } catch (error) {
    if (!(error instanceof AppError)) throw error;
    return { domain: domainLookupKey(input) ?? input, available: false, reason: error.detail };
  }
}

/** Claims `input` for the organization; its TXT record still has to be published and verified. */
export async function claimCustomDomain(
  deps: ApiDeps,
  ctx: RequestContext,
  organizationId: string,
  input: string,
): Promise<CustomDomainRow> {
  await assertOrganizationAccess(deps.db, ctx.actor, organizationId, CLAIMING_ROLES);
  const hostname = normaliseCustomDomain(input, deps.config.baseDomain);
  return deps.db
    .$transaction(async (tx) => {
      const elsewhere = await tx.customDomain.count({
        where: { hostname, verifiedAt: { not: null }, organizationId: { not: organizationId } },
      });
      if (elsewhere > 0) throw verifiedElsewhere(hostname);
      const created = await tx.customDomain.create({
        // 24 random bytes are 32 url-safe characters; published in DNS, so not a secret.
        data: { organizationId, hostname, verificationToken: randomBytes(24).toString('base64url') },
      });
      await audit(tx, ctx, {
        action: 'domain.claim',
        targetType: 'custom_domain',
        targetId: created.id,
        organizationId,
        data: { hostname },
      });
      return created;
    })
    .catch((error: unknown) => {
      if (isUniqueViolation(error)) {
        throw new AppError(
          'conflict',
          `This organization has claimed ${hostname} already; GET /v1/organizations/${organizationId}/domains shows its DNS record.`,
        );
      }
      throw error;
    });
}

/** The organization's claims, oldest first; any member (or staff) may look. */
export async function listCustomDomains(deps: ApiDeps, ctx: RequestContext, organizationId: string) {
  await assertOrganizationAccess(deps.db, ctx.actor, organizationId, MEMBER_ROLES);
  return deps.db.customDomain.findMany({
    where: { organizationId },
    orderBy: [{ createdAt: 'asc' }, { id: 'asc' }],
  });
}

/** What a failed lookup found, in words for the customer. */
function describeLookup(name: string, lookup: TxtLookup): string {
  switch (lookup.outcome) {
    case 'found': {
      const shown = lookup.values.slice(0, 3).map((value) => JSON.stringify(value.slice(0, 100)));
      const more = lookup.values.length > 3 ? ` and ${lookup.values.length - 3} more` : '';
      return `The TXT records at ${name} hold ${shown.join(', ')}${more}, not the expected value.`;
    }
    case 'nxdomain':
      return `The name ${name} does not exist in DNS (NXDOMAIN).`;
    case 'nodata':
      return `The name ${name} exists but has no TXT record.`;
    case 'timeout':
      return `The DNS lookup of ${name} got no answer within ${DNS_TIMEOUT_MS / 1000} s.`;
    case 'failed':
      return `The DNS lookup of ${name} failed (${lookup.code}).`;
  }
}

/**
 * Looks up the claim's TXT record now and marks the claim verified when it holds the expected
 * value. A failed check is recorded (`lastCheckedAt`, `lastCheckError`, an audit row) before
 * it is refused, so the customer can see it later. The partial unique index on verified
 * hostnames decides a race with another organization.
 */
export async function verifyCustomDomain(
  deps: ApiDeps,
  ctx: RequestContext,
  dns: DnsResolver,
  organizationId: string,
  domainId: string,
): Promise<CustomDomainRow> {
  await assertOrganizationAccess(deps.db, ctx.actor, organizationId, CLAIMING_ROLES);
  const domain = await getCustomDomain(deps.db, organizationId, domainId);
  if (domain.verifiedAt) return domain;
  const elsewhere = await deps.db.customDomain.count({
    where: { hostname: domain.hostname, verifiedAt: { not: null }, organizationId: { not: organizationId } },
  });
  if (elsewhere > 0) throw verifiedElsewhere(domain.hostname);

  const record = challengeRecord(domain.hostname, domain.verificationToken);
  const lookup = await dns.lookupTxt(record.name);
  const now = new Date();
  if (lookup.outcome === 'found' && lookup.values.includes(record.value)) {
    return deps.db
      .$transaction(async (tx) => {
        const { count } = await tx.customDomain.updateMany({
          where: { id: domain.id, organizationId },
          data: { verifiedAt: now, lastCheckedAt: now, lastCheckError: null },
        });
        if (count === 0) throw new AppError('not_found', `No custom domain ${domainId}.`);
        await audit(tx, ctx, {
          action: 'domain.verify',
          targetType: 'custom_domain',
          targetId: domain.id,
          organizationId,
          data: { hostname: domain.hostname, verified: true },
        });
        return { ...domain, verifiedAt: now, lastCheckedAt: now, lastCheckError: null };
      })
      .catch((error: unknown) => {
        if (isUniqueViolation(error)) throw verifiedElsewhere(domain.hostname);
        throw error;
      });
  }

  const detail = `${describeLookup(record.name, lookup)} Expected a TXT record with the value "${record.value}"; publish it and verify again.`;
  await deps.db.$transaction(async (tx) => {
    const { count } = await tx.customDomain.updateMany({
      where: { id: domain.id, organizationId, verifiedAt: null },
      data: { lastCheckedAt: now, lastCheckError: detail },
    });
    if (count === 0) return;
    await audit(tx, ctx, {
      action: 'domain.verify',
      targetType: 'custom_domain',
      targetId: domain.id,
      organizationId,
      data: { hostname: domain.hostname, verified: false, error: detail },
    });
  });
  throw new AppError('unprocessable', detail);
}

/** Gives up a claim, unless a server of the organization that is not deleted still relies on it. */
export async function removeCustomDomain(
  deps: ApiDeps,
  ctx: RequestContext,
  organizationId: string,
  domainId: string,
): Promise<void> {
  await assertOrganizationAccess(deps.db, ctx.actor, organizationId, CLAIMING_ROLES);
  await deps.db.$transaction(async (tx) => {
    const domain = await getCustomDomain(tx, organizationId, domainId);
    const user = await tx.instance.findFirst({
      where: {
        organizationId,
        status: { not: 'deleted' },
        OR: [{ domain: domain.hostname }, { domain: { endsWith: `.${domain.hostname}` } }],
      },
      select: { domain: true },
    });
    if (user) {
      throw new AppError(
        'conflict',
        `The server ${user.domain} still uses ${domain.hostname}; delete that server first, then remove the domain.`,
      );
    }
    await tx.customDomain.delete({ where: { id: domain.id } });
    await audit(tx, ctx, {
      action: 'domain.remove',
      targetType: 'custom_domain',
      targetId: domain.id,
      organizationId,
      data: { hostname: domain.hostname },
    });
  });
}
