/** Limits a plan sells; every sizing decision (quotas, replicas, sidekiq) derives from these. */
export interface PlanLimits {
  /** Monthly active users included before community fees apply. */
  activeUsers: number;
  /** Media storage included, in GiB. */
  storageGb: number;
  /** CPU for the whole server (web + streaming + sidekiq), in millicores. */
  cpuMillicores: number;
  /** Memory for the whole server, in MiB. */
  memoryMib: number;
  /** Total sidekiq threads across processes. */
  sidekiqConcurrency: number;
  /** Puma (web) replicas; more than one gets a PodDisruptionBudget. */
  webReplicas: number;
  /** Connections the server's database role may hold. */
  dbConnections: number;
}

/** Add-on kinds Woolly sells on top of a plan. */
export const ADDON_CODES = ['object_storage', 'elasticsearch', 'custom_domain', 'extra_storage'] as const;
export type AddonCode = (typeof ADDON_CODES)[number];

export interface PlanDefinition {
  code: string;
  name: string;
  /** Monthly price in minor units of `currency`. */
  priceMinor: number;
  currency: string;
  limits: PlanLimits;
  /** Add-ons this plan may carry. */
  addons: readonly AddonCode[];
}

export interface AddonDefinition {
  code: AddonCode;
  name: string;
  description: string;
  /** Monthly base price in minor units; metered parts are billed on top. */
  priceMinor: number;
  currency: string;
}

/** The catalog seeded into a new database; `woolly seed` keeps rows in line with it. */
export const PLAN_CATALOG: readonly PlanDefinition[] = [
  {
    code: 'starter',
    name: 'Starter',
    priceMinor: 1900,
    currency: 'eur',
    limits: {
      activeUsers: 100,
      storageGb: 25,
      cpuMillicores: 1500,
      memoryMib: 3072,
      sidekiqConcurrency: 10,
      webReplicas: 1,
      dbConnections: 20,
    },
    addons: ['object_storage', 'custom_domain', 'extra_storage'],
  },
  {
    code: 'community',
    name: 'Community',
    priceMinor: 5900,
    currency: 'eur',
    limits: {
      activeUsers: 1000,
      storageGb: 100,
      cpuMillicores: 3000,
      memoryMib: 6144,
      sidekiqConcurrency: 25,
      webReplicas: 2,
      dbConnections: 50,
    },
    addons: ['object_storage', 'elasticsearch', 'custom_domain', 'extra_storage'],
  },
  {
    code: 'large',
    name: 'Large',
    priceMinor: 19900,
    currency: 'eur',
    limits: {
      activeUsers: 10000,
      storageGb: 500,
      cpuMillicores: 8000,
      memoryMib: 16384,
      sidekiqConcurrency: 75,
      webReplicas: 3,
      dbConnections: 150,
    },
    addons: ['object_storage', 'elasticsearch', 'custom_domain', 'extra_storage'],
  },
];

export const ADDON_CATALOG: readonly AddonDefinition[] = [
  {
    code: 'object_storage',
    name: 'Object storage',
    description: 'S3-compatible bucket for media, billed per GB-hour beyond the plan',
    priceMinor: 500,
    currency: 'eur',
  },
  {
    code: 'elasticsearch',
    name: 'Full-text search',
    description: 'Elasticsearch/OpenSearch for full-text search, billed per active hour',
    priceMinor: 1500,
    currency: 'eur',
  },
  {
    code: 'custom_domain',
    name: 'Custom domain',
    description: 'Serve the server under a domain the community owns',
    priceMinor: 300,
    currency: 'eur',
  },
  {
    code: 'extra_storage',
    name: 'Extra storage',
    description: 'Another 50 GB of media storage',
    priceMinor: 500,
    currency: 'eur',
  },
];

/** What a community's members may pay toward its server each month (Sponsorships). */
export const SPONSOR_TIERS = [
  { code: 'rosegold', name: 'Rosegold sponsor', priceMinor: 500, currency: 'eur' },
  { code: 'gold', name: 'Gold sponsor', priceMinor: 1500, currency: 'eur' },
  { code: 'platinum', name: 'Platinum sponsor', priceMinor: 5000, currency: 'eur' },
] as const;

/**
 * Metered prices, per unit beyond what the plan includes, in minor units (decimals allowed:
 * Stripe takes `unit_amount_decimal`). Storage is €0.10 a GB-month (730 hours); search €0.02
 * an active hour; a monthly active user beyond the plan's 1 cent.
 */
export const METERED_PRICES = {
  storage_gb_hours: { name: 'Object storage (GB-hours)', unitMinorDecimal: '0.0137', currency: 'eur' },
  search_hours: { name: 'Search (active hours)', unitMinorDecimal: '2', currency: 'eur' },
  active_users: { name: 'Community fee (monthly active users)', unitMinorDecimal: '1', currency: 'eur' },
} as const;

/** Units of each meter a plan includes every month, charged at zero. */
export function includedUnits(limits: PlanLimits): Record<keyof typeof METERED_PRICES, number> {
  return { storage_gb_hours: limits.storageGb * 730, search_hours: 0, active_users: limits.activeUsers };
}
