import type { Db } from './db.ts';
import { ADDON_CATALOG, PLAN_CATALOG } from './domain/catalog.ts';

/** The cluster row every dry-run placement lands on. */
export const DRY_RUN_CLUSTER = 'dry-run';

/**
 * Brings the catalog rows (plans, add-on types) and the dry-run cluster in line with the
 * code's catalog. Idempotent: run at every start and by `woolly seed`.
 */
export async function seedCatalog(db: Db): Promise<void> {
  await db.$transaction(async (tx) => {
    for (const plan of PLAN_CATALOG) {
      const data = {
        name: plan.name,
        priceMinor: plan.priceMinor,
        currency: plan.currency,
        limits: { ...plan.limits },
        addonCodes: [...plan.addons],
      };
      await tx.plan.upsert({
        where: { code: plan.code },
        create: { code: plan.code, ...data },
        update: data,
      });
    }
    for (const addon of ADDON_CATALOG) {
      const { code, ...data } = addon;
      await tx.addonType.upsert({ where: { code }, create: addon, update: data });
    }
    await tx.cluster.upsert({
      where: { name: DRY_RUN_CLUSTER },
      create: { name: DRY_RUN_CLUSTER, target: 'dry_run', region: 'local', capacity: 1_000_000 },
      update: {},
    });
  });
}
