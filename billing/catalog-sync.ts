/**
 * `woolly billing sync`: Woolly's catalog (plans, add-ons, sponsorship tiers, meters and the
 * metered prices of each plan) made to exist in Stripe, found again by fixed product ids,
 * price lookup keys and meter event names, so running it again changes nothing, and a changed
 * amount makes a new Price that takes over the lookup key (Prices cannot change) while the old
 * one is archived.
 */
import Stripe from 'stripe';
import {
  ADDON_CATALOG,
  includedUnits,
  METERED_PRICES,
  PLAN_CATALOG,
  SPONSOR_TIERS,
} from '../core/domain/catalog.ts';
import { METERS, type Meter } from './metering.ts';

/** One Price as Woolly wants it. */
interface DesiredPrice {
  lookupKey: string;
  product: string;
  currency: string;
  /** Licensed: a fixed amount a month. Metered: graduated tiers on a meter. */
  amount: { unitMinor: number } | { meter: Meter; includedUnits: number; unitMinorDecimal: string };
}

interface DesiredProduct {
  id: string;
  name: string;
}

const productId = (kind: string, code: string) => `woolly_${kind}_${code}`;

/** Everything the catalog needs in Stripe. */
export function desiredCatalog(): { products: DesiredProduct[]; prices: DesiredPrice[]; meters: Meter[] } {
  const products: DesiredProduct[] = [];
  const prices: DesiredPrice[] = [];
  for (const plan of PLAN_CATALOG) {
    const id = productId('plan', plan.code);
    products.push({ id, name: `${plan.name} plan` });
    prices.push({
      lookupKey: `plan:${plan.code}`,
      product: id,
      currency: plan.currency,
      amount: { unitMinor: plan.priceMinor },
    });
    const included = includedUnits(plan.limits);
    for (const meter of Object.keys(METERED_PRICES) as Meter[]) {
      prices.push({
        lookupKey: `usage:${meter}:${plan.code}`,
        product: productId('usage', meter),
        currency: METERED_PRICES[meter].currency,
        amount: {
          meter,
          includedUnits: included[meter],
          unitMinorDecimal: METERED_PRICES[meter].unitMinorDecimal,
        },
      });
    }
  }
  for (const meter of Object.keys(METERED_PRICES) as Meter[]) {
    products.push({ id: productId('usage', meter), name: METERED_PRICES[meter].name });
  }
  for (const addon of ADDON_CATALOG) {
    const id = productId('addon', addon.code);
    products.push({ id, name: addon.name });
    prices.push({
      lookupKey: `addon:${addon.code}`,
      product: id,
      currency: addon.currency,
      amount: { unitMinor: addon.priceMinor },
    });
  }
  for (const tier of SPONSOR_TIERS) {
    const id = productId('sponsor', tier.code);
    products.push({ id, name: tier.name });
    prices.push({
      lookupKey: `sponsor:${tier.code}`,
      product: id,
      currency: tier.currency,
      amount: { unitMinor: tier.priceMinor },
    });
  }
  return { products, prices, meters: Object.keys(METERS) as Meter[] };
}

/** The parameters of a new Price for `price`, its meter's id given. */
function priceParams(price: DesiredPrice, meterId: (meter: Meter) => string): Stripe.PriceCreateParams {
  const base = {
    product: price.product,
    currency: price.currency,
    lookup_key: price.lookupKey,
    transfer_lookup_key: true,
    metadata: { woolly: price.lookupKey },
  };
  if ('unitMinor' in price.amount) {
    return { ...base, unit_amount: price.amount.unitMinor, recurring: { interval: 'month' } };
  }
  const { meter, includedUnits: included, unitMinorDecimal } = price.amount;
  return {
    ...base,
    billing_scheme: 'tiered',
    tiers_mode: 'graduated',
    tiers:
      included > 0
        ? [
            { up_to: included, unit_amount: 0 },
            { up_to: 'inf', unit_amount_decimal: Stripe.Decimal.from(unitMinorDecimal) },
          ]
        : [{ up_to: 'inf', unit_amount_decimal: Stripe.Decimal.from(unitMinorDecimal) }],
    recurring: { interval: 'month', usage_type: 'metered', meter: meterId(meter) },
  };
}

/** A tier as `[up to, amount a unit]`, the amount a plain number whichever field holds it. */
const tierOf = (tier: {
  up_to?: number | 'inf' | null;
  unit_amount?: number | null;
  unit_amount_decimal?: unknown;
}): [number | 'inf', number] => [
  tier.up_to ?? 'inf',
  tier.unit_amount_decimal != null ? Number(String(tier.unit_amount_decimal)) : (tier.unit_amount ?? 0),
];

/** Whether the active `existing` Price already is what `wanted` asks for. */
function samePrice(existing: Stripe.Price, wanted: Stripe.PriceCreateParams): boolean {
  const product = typeof existing.product === 'string' ? existing.product : existing.product.id;
  return (
    product === wanted.product &&
    existing.currency === wanted.currency &&
    existing.recurring?.interval === wanted.recurring?.interval &&
    (existing.recurring?.meter ?? undefined) === wanted.recurring?.meter &&
    (wanted.tiers
      ? JSON.stringify((existing.tiers ?? []).map(tierOf)) === JSON.stringify(wanted.tiers.map(tierOf))
      : existing.unit_amount === wanted.unit_amount)
  );
}

export interface SyncReport {
  products: { created: number; updated: number; kept: number };
  prices: { created: number; replaced: number; kept: number };
  meters: { created: number; kept: number };
}

const isMissing = (error: unknown) => (error as { statusCode?: number }).statusCode === 404;

/** Makes Stripe hold the catalog; safe to run any number of times. */
export async function syncCatalog(stripe: Stripe): Promise<SyncReport> {
  const desired = desiredCatalog();
  const report: SyncReport = {
    products: { created: 0, updated: 0, kept: 0 },
    prices: { created: 0, replaced: 0, kept: 0 },
    meters: { created: 0, kept: 0 },
  };

  const meters = new Map<string, string>();
  for await (const meter of stripe.billing.meters.list({ status: 'active', limit: 100 })) {
    meters.set(meter.event_name, meter.id);
  }
  for (const meter of desired.meters) {
    if (meters.has(meter)) {
      report.meters.kept++;
      continue;
    }
    const made = await stripe.billing.meters.create({
      display_name: METERED_PRICES[meter].name,
      event_name: meter,
      default_aggregation: { formula: METERS[meter].aggregate },
      customer_mapping: { type: 'by_id', event_payload_key: 'stripe_customer_id' },
      value_settings: { event_payload_key: 'value' },
    });
    meters.set(meter, made.id);
    report.meters.created++;
  }

  for (const product of desired.products) {
    const existing = await stripe.products.retrieve(product.id).catch((error) => {
      if (isMissing(error)) return null;
      throw error;
    });
    if (!existing) {
      await stripe.products.create({ id: product.id, name: product.name, metadata: { woolly: product.id } });
      report.products.created++;
    } else if (existing.name !== product.name || !existing.active) {
      await stripe.products.update(product.id, { name: product.name, active: true });
      report.products.updated++;
    } else {
      report.products.kept++;
    }
  }

  const meterId = (meter: Meter) => meters.get(meter) ?? '';
  // Stripe filters by at most 10 lookup keys a request.
  for (let start = 0; start < desired.prices.length; start += 10) {
    const batch = desired.prices.slice(start, start + 10);
    const found = await stripe.prices.list({
      lookup_keys: batch.map((price) => price.lookupKey),
      active: true,
      limit: 100,
      expand: ['data.tiers'],
    });
    for (const price of batch) {
      const wanted = priceParams(price, meterId);
      const existing = found.data.find((candidate) => candidate.lookup_key === price.lookupKey);
      if (existing && samePrice(existing, wanted)) {
        report.prices.kept++;
        continue;
      }
      await stripe.prices.create(wanted);
      if (existing) {
        await stripe.prices.update(existing.id, { active: false });
        report.prices.replaced++;
      } else {
        report.prices.created++;
      }
    }
  }
  return report;
}
