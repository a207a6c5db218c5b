import type { PlanLimits } from '../core/domain/catalog.ts';
import type { ClusterSettings } from './cluster-settings.ts';
import { type InstanceRenderInput, namespaceFor } from './manifests/render-instance.ts';

/** The Secret holding an instance's generated secrets (`renderInstanceSecret`). */
export const INSTANCE_SECRET_NAME = 'mastodon-secrets';

/** The instance's fields its objects are rendered from. */
export interface RenderedInstance {
  id: string;
  domain: string;
  mastodonVersion: string;
  flavor: string;
  plan: { code: string; limits: unknown };
}

/**
 * What `renderInstanceManifests` gets for one instance on its cluster: the reconciler renders
 * what it applies from it, and the fleet resync what a running instance should have, so both
 * see the same objects.
 */
export function instanceRenderInput(
  instance: RenderedInstance,
  settings: ClusterSettings,
  options: {
    generation: number;
    /** Scaled to zero: suspended, or deleted and waiting out its grace period. */
    suspended: boolean;
    /** The Owner account to make; only while the instance is being provisioned. */
    owner: { username: string; email: string } | null;
    /** What its add-on stack holds (`addonRenderInput`); none when left out. */
    addons?: Pick<InstanceRenderInput, 'objectStorage' | 'search' | 'addonQuota'>;
  },
): InstanceRenderInput {
  const databaseName = namespaceFor(instance.id).replaceAll('-', '_');
  return {
    instanceId: instance.id,
    domain: instance.domain,
    mastodonVersion: instance.mastodonVersion,
    flavor: instance.flavor === 'glitch' ? 'glitch' : 'vanilla',
    planCode: instance.plan.code,
    limits: instance.plan.limits as PlanLimits,
    generation: options.generation,
    secretName: INSTANCE_SECRET_NAME,
    database: {
      host: settings.databaseHost,
      port: settings.databasePort,
      name: databaseName,
      user: databaseName,
    },
    smtp: {
      server: settings.smtpServer,
      port: settings.smtpPort,
      fromAddress: `notifications@${instance.domain}`,
    },
    ingressClassName: settings.ingressClassName,
    clusterIssuer: settings.clusterIssuer,
    objectStorage: options.addons?.objectStorage ?? null,
    search: options.addons?.search ?? null,
    addonQuota: options.addons?.addonQuota ?? null,
    suspended: options.suspended,
    owner: options.owner,
  };
}
