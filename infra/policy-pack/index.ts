/**
 * The `woolly` policy pack, for `pulumi preview --policy-pack infra/policy-pack`
 * (with `--policy-pack-config` naming the stack's plan for `storage-within-plan`). Only the CLI
 * runs this file: constructing the pack serves it to the CLI. Tests use `woollyPolicies`.
 */
import { PolicyPack } from '@pulumi/policy';
import { woollyPolicies } from './woolly-policies.ts';

new PolicyPack('woolly', { policies: woollyPolicies() });
