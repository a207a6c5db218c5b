import { Router } from 'express';
import type { ApiDeps } from '../context.ts';

/** The public catalog: plans with their limits and prices, and add-ons. No authentication. */
export function catalogRoutes(deps: ApiDeps): Router {
  const router = Router();

  router.get('/v1/plans', async (_req, res) => {
    const plans = await deps.db.plan.findMany({ where: { active: true }, orderBy: { priceMinor: 'asc' } });
    res.json({
      data: plans.map((plan) => ({
        code: plan.code,
        name: plan.name,
        price: { amountMinor: plan.priceMinor, currency: plan.currency, interval: 'month' },
        limits: plan.limits,
        addons: plan.addonCodes,
      })),
    });
  });

  router.get('/v1/addons', async (_req, res) => {
    const addons = await deps.db.addonType.findMany({ where: { active: true }, orderBy: { code: 'asc' } });
    res.json({
      data: addons.map((addon) => ({
        code: addon.code,
        name: addon.name,
        description: addon.description,
        price: { amountMinor: addon.priceMinor, currency: addon.currency, interval: 'month' },
      })),
    });
  });

  return router;
}
