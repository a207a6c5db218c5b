import { randomUUID } from 'node:crypto';
import {
  ANONYMOUS_SPONSOR,
  findSponsorTier,
  getSponsorPrice,
  openSponsorCheckout,
  type SponsorTier,
} from '../../billing/sponsorships.ts';
import { SPONSOR_TIERS } from '../../core/domain/catalog.ts';
import { AppError, type FieldError } from '../../core/errors.ts';
import type { Logger } from '../../core/log.ts';
import { audit } from '../audit.ts';
import type { ApiDeps, RequestContext } from '../context.ts';
import { stripeGatewayOf } from '../orders/orders.service.ts';
import { assertInstanceRole, MANAGING_ROLES, MEMBER_ROLES } from '../policy.ts';

/** Longest display name a sponsor may choose, in characters (as people count them). */
const DISPLAY_NAME_MAX = 80;
/** RFC 5321's limit on an address's length. */
const EMAIL_MAX = 254;
/** One `@`, something on each side, a dot in the domain, no spaces: Stripe checks the rest. */
const EMAIL = /^[^\s@]+@[^\s@.]+(\.[^\s@.]+)+$/;
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what this refuses.
const CONTROL = /[\u0000-\u001f\u007f]/;

/** Servers whose page is never shown: gone, or on their way out. */
const GONE = new Set(['deleting', 'deleted']);

const price = (tier: { amountMinor: number; currency: string }) => ({
  amountMinor: tier.amountMinor,
  currency: tier.currency.trim(),
  interval: 'month' as const,
});

const presentTier = (tier: SponsorTier) => ({
  code: tier.code,
  name: tier.name,
  price: price({ amountMinor: tier.priceMinor, currency: tier.currency }),
});

const pagePath = (domain: string) => `/v1/sponsor-pages/${domain}`;

/**
 * Opens or closes a server's public sponsor page (opt-in; closed until this opens it), with its
 * audit row. A server on its way out cannot open one. Owners, admins and billing members; staff.
 */
export async function updateSponsorPage(
  deps: Pick<ApiDeps, 'db'>,
  ctx: RequestContext,
  instanceId: string,
  change: { enabled: boolean; headline?: string | null },
) {
  return deps.db.$transaction(async (tx) => {
    const instance = await tx.instance.findUnique({ where: { id: instanceId } });
    if (!instance) throw new AppError('not_found', `No instance ${instanceId}.`);
    await assertInstanceRole(tx, ctx.actor, instance, MANAGING_ROLES);
    if (change.enabled && GONE.has(instance.status)) {
      throw new AppError(
        'conflict',
        `Server ${instance.domain} is ${instance.status}: a server on its way out takes no sponsors.`,
      );
    }
    const headline = change.headline === undefined ? undefined : change.headline?.trim() || null;
    const page = await tx.sponsorPage.upsert({
      where: { instanceId },
      create: { instanceId, enabled: change.enabled, headline: headline ?? null },
      update: { enabled: change.enabled, ...(headline === undefined ? {} : { headline }) },
    });
    await audit(tx, ctx, {
      action: change.enabled ? 'sponsor_page.enable' : 'sponsor_page.disable',
      targetType: 'instance',
      targetId: instanceId,
      organizationId: instance.organizationId,
      data: { headline: page.headline },
    });
    return {
      instanceId,
      domain: instance.domain,
      enabled: page.enabled,
      headline: page.headline,
      publicPath: pagePath(instance.domain),
    };
  });
}

/** Every sponsorship of a server, newest first, with the sponsor's address and total paid (members). */
export async function listInstanceSponsorships(
  deps: Pick<ApiDeps, 'db'>,
  ctx: RequestContext,
  instanceId: string,
) {
  const instance = await deps.db.instance.findUnique({ where: { id: instanceId } });
  if (!instance) throw new AppError('not_found', `No instance ${instanceId}.`);
  await assertInstanceRole(deps.db, ctx.actor, instance, MEMBER_ROLES);
  const sponsorships = await deps.db.sponsorship.findMany({
    where: { instanceId },
    orderBy: [{ createdAt: 'desc' }, { id: 'asc' }],
    include: { payments: { select: { amountMinor: true } } },
  });
  return sponsorships.map((sponsorship) => ({
    id: sponsorship.id,
    tier: sponsorship.tier,
    status: sponsorship.status,
    email: sponsorship.sponsorEmail,
    displayName: sponsorship.displayName,
    showName: sponsorship.showName,
    price: price(sponsorship),
    startedAt: sponsorship.startedAt?.toISOString() ?? null,
    endedAt: sponsorship.endedAt?.toISOString() ?? null,
    createdAt: sponsorship.createdAt.toISOString(),
    totalPaid: {
      amountMinor: sponsorship.payments.reduce((sum, payment) => sum + payment.amountMinor, 0),
      currency: sponsorship.currency.trim(),
    },
  }));
}

/** The server behind a public page, or `not_found` unless it is there and its page is open. */
async function getOpenPage(deps: Pick<ApiDeps, 'db'>, domain: string) {
  const instance = await deps.db.instance.findUnique({
    where: { domain: domain.toLowerCase() },
    include: { sponsorPage: true },
  });
  if (!instance || GONE.has(instance.status) || !instance.sponsorPage?.enabled) {
    throw new AppError('not_found', `${domain} has no sponsor page.`);
  }
  return { instance, page: instance.sponsorPage };
}

/**
 * A server's public sponsor page: its tiers and its active sponsors, named only where they
 * chose to be, counted otherwise. Never an e-mail address.
 */
export async function getSponsorPage(deps: Pick<ApiDeps, 'db' | 'config'>, domain: string) {
  const { instance, page } = await getOpenPage(deps, domain);
  const active = await deps.db.sponsorship.findMany({
    where: { instanceId: instance.id, status: 'active' },
    orderBy: [{ startedAt: 'asc' }, { id: 'asc' }],
    select: { tier: true, displayName: true, showName: true },
  });
  const named = active.filter((sponsor) => sponsor.showName && sponsor.displayName);
  return {
    domain: instance.domain,
    headline: page.headline,
    tiers: SPONSOR_TIERS.map(presentTier),
    sponsors: named.map((sponsor) => ({ displayName: sponsor.displayName as string, tier: sponsor.tier })),
    anonymousSponsors: active.length - named.length,
    checkoutAvailable: deps.config.billingProvider === 'stripe',
  };
}

export interface SponsorCheckoutInput {
  tier: string;
  email: string;
  displayName?: string | null;
  showName: boolean;
}

/** The checkout request, checked and tidied; every field at fault is listed at once. */
export function acceptSponsorInput(input: SponsorCheckoutInput) {
  const errors: FieldError[] = [];
  const tier = findSponsorTier(input.tier);
  if (!tier) {
    errors.push({
      field: 'tier',
      message: `Unknown tier; choose one of ${SPONSOR_TIERS.map((known) => known.code).join(', ')}.`,
    });
  }
  const email = input.email.trim();
  if (email.length > EMAIL_MAX || !EMAIL.test(email)) {
    errors.push({ field: 'email', message: 'Give an e-mail address such as ada@example.com.' });
  }
  const displayName = input.displayName?.trim() || null;
  if (displayName && [...displayName].length > DISPLAY_NAME_MAX) {
    errors.push({ field: 'displayName', message: `At most ${DISPLAY_NAME_MAX} characters.` });
  } else if (displayName && CONTROL.test(displayName)) {
    errors.push({ field: 'displayName', message: 'Must not contain control characters.' });
  } else if (input.showName && !displayName) {
    errors.push({ field: 'displayName', message: 'Give the name to show, or set showName to false.' });
  }
  if (!tier || errors.length > 0) {
    throw new AppError('unprocessable', `The sponsorship has ${errors.length} field(s) to fix.`, { errors });
  }
  return { tier, email, displayName, showName: input.showName };
}

/** What a public request carries: no caller, only its ids and logger. */
export interface PublicRequestContext {
  requestId: string;
  log: Logger;
}

/**
 * Starts a sponsorship from a server's public page: checks the request, writes the pending
 * Sponsorship (with an anonymous audit row), then opens its Stripe Checkout. The row comes
 * first so that a paid session always finds its sponsorship; if Stripe fails the row stays
 * pending, shown to nobody but the organization. Only with the `stripe` billing provider.
 */
export async function startSponsorship(
  deps: ApiDeps,
  ctx: PublicRequestContext,
  domain: string,
  input: SponsorCheckoutInput,
) {
  const { instance } = await getOpenPage(deps, domain);
  const gateway = deps.config.billingProvider === 'stripe' ? stripeGatewayOf(deps) : null;
  if (!gateway) {
    throw new AppError(
      'conflict',
      'Sponsorships are paid through Stripe, and this Woolly takes no payments through it (billing provider none): the page lists the tiers only.',
    );
  }
  const accepted = acceptSponsorInput(input);
  const stripePrice = await getSponsorPrice(gateway, accepted.tier.code);
  const sponsorship = {
    id: randomUUID(),
    instanceId: instance.id,
    tier: accepted.tier.code,
    sponsorEmail: accepted.email,
  };
  await deps.db.$transaction(async (tx) => {
    await tx.sponsorship.create({
      data: {
        ...sponsorship,
        organizationId: instance.organizationId,
        displayName: accepted.displayName,
        showName: accepted.showName,
        amountMinor: stripePrice.unit_amount ?? accepted.tier.priceMinor,
        currency: stripePrice.currency,
        status: 'pending',
      },
    });
    await audit(
      tx,
      { requestId: ctx.requestId, actor: null },
      {
        action: 'sponsorship.checkout',
        targetType: 'sponsorship',
        targetId: sponsorship.id,
        organizationId: instance.organizationId,
        data: { instanceId: instance.id, tier: sponsorship.tier, shownAs: displayedName(accepted) },
      },
    );
  });
  const checkout = await openSponsorCheckout(
    { db: deps.db, gateway, publicUrl: deps.config.publicUrl },
    { sponsorship, priceId: stripePrice.id, domain: instance.domain },
  );
  ctx.log.info('sponsorship checkout opened', {
    sponsorshipId: sponsorship.id,
    instanceId: instance.id,
    tier: sponsorship.tier,
  });
  return {
    sponsorshipId: sponsorship.id,
    checkoutUrl: checkout.url,
    expiresAt: checkout.expiresAt.toISOString(),
  };
}

/** The name others see for a sponsor. */
const displayedName = (sponsor: { displayName: string | null; showName: boolean }) =>
  sponsor.showName && sponsor.displayName ? sponsor.displayName : ANONYMOUS_SPONSOR;
