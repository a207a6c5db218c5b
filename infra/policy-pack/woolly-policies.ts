/**
 * Woolly's rules (infra/policy.ts) as @pulumi/policy stack validations, one policy per rule,
 * all mandatory. Built here and constructed into a pack only by index.ts, because a
 * `PolicyPack` starts the CLI's gRPC server as soon as it exists.
 */
import type { StackValidationArgs, StackValidationPolicy } from '@pulumi/policy';
import { PLAN_CATALOG, type PlanLimits } from '../../core/domain/catalog.ts';
import { type ResourceView, RULES, type RuleContext } from '../policy.ts';

const PLAN_CONFIG = {
  properties: { plan: { type: 'string' as const, enum: PLAN_CATALOG.map((plan) => plan.code) } },
  required: ['plan'],
};

/** The limits of the plan named in a policy's config (`{"<policy>": {"plan": "community"}}`). */
function limitsFromConfig(rule: string, args: StackValidationArgs): PlanLimits {
  const { plan } = args.getConfig<{ plan?: string }>();
  const found = PLAN_CATALOG.find((candidate) => candidate.code === plan);
  if (!found) throw new Error(`policy ${rule} needs the stack's plan in its config, got ${plan}`);
  return found.limits;
}

/**
 * The pack's policies. With `limits` they check against that plan; without, each policy that
 * sizes by plan reads the plan's code from its config (`--policy-pack-config`).
 */
export function woollyPolicies(limits?: PlanLimits): StackValidationPolicy[] {
  return Object.entries(RULES).map(([rule, { description, usesPlan, check }]) => ({
    name: rule,
    description,
    enforcementLevel: 'mandatory',
    ...(usesPlan && !limits ? { configSchema: PLAN_CONFIG } : {}),
    validateStack: (args, reportViolation) => {
      const resources: ResourceView[] = args.resources.map((resource) => ({
        type: resource.type,
        name: resource.name,
        inputs: resource.props,
      }));
      const context: RuleContext = {
        get limits() {
          return limits ?? limitsFromConfig(rule, args);
        },
        resources,
      };
      args.resources.forEach((resource, index) => {
        const view = resources[index];
        const message = view ? check(view, context) : null;
        if (message) reportViolation(`${resource.type} ${resource.name}: ${message}`, resource.urn);
      });
    },
  }));
}
