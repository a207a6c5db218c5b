import assert from 'node:assert/strict';
import { PLAN_CATALOG } from '../../core/domain/catalog.ts';
import type { InstanceRenderInput } from '../../provisioner/manifests/render-instance.ts';

/**
 * A render input for a community-plan server (two web replicas, so its rendering has a
 * PodDisruptionBudget), for tests that apply a server's objects to the test API server.
 */
export function sampleRenderInput(
  instanceId: string,
  overrides: Partial<InstanceRenderInput> = {},
): InstanceRenderInput {
  // community: two web replicas, so the rendering has a PodDisruptionBudget.
  const plan = PLAN_CATALOG.find((candidate) => candidate.code === 'community');
  assert.ok(plan);
  return {
    instanceId,
    domain: `${instanceId.slice(0, 8)}.woolly.test`,
    mastodonVersion: 'v4.5.11',
    flavor: 'vanilla',
    planCode: plan.code,
    limits: { ...plan.limits },
    generation: 1,
    secretName: 'mastodon-secrets',
    database: { host: '10.20.30.40', port: 5432, name: 'mastodon_db', user: 'mastodon_db' },
    smtp: { server: 'smtp.mail.test', port: 587, fromAddress: 'notifications@woolly.test' },
    ingressClassName: 'nginx',
    clusterIssuer: 'letsencrypt',
    objectStorage: null,
    search: null,
    ...overrides,
  };
}
