import type { ApiDeps } from '../context.ts';
import type { OperationHandlers } from '../openapi.ts';

const price = (item: { priceMinor: number; currency: string }) => ({
  amountMinor: item.priceMinor,
  currency: item.currency,
  interval: 'month' as const,
});

/** The public catalog: plans with their limits and prices, and add-ons. No authentication. */
export function catalogHandlers(deps: ApiDeps): Pick<OperationHandlers, 'listPlans' | 'listAddons'> {
  return {
    async listPlans(_req, res) {
      const plans = await deps.db.plan.findMany({ where: { active: true }, orderBy: { priceMinor: 'asc' } });
      res.json({
        data: plans.map((plan) => ({
          code: plan.code,
          name: plan.name,
          price: price(plan),
          limits: plan.limits,
          addons: plan.addonCodes,
        })),
      });
    },
    async listAddons(_req, res) {
      const addons = await deps.db.addonType.findMany({ where: { active: true }, orderBy: { code: 'asc' } });
      res.json({
        data: addons.map((addon) => ({
          code: addon.code,
          name: addon.name,
          description: addon.description,
          price: price(addon),
        })),
      });
    },
  };
}
