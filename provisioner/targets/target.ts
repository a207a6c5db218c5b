import type { KubeObject } from '../manifests/render-instance.ts';

/** Where an instance's objects go: a real cluster, or the dry-run store. */
export interface ClusterTarget {
  /** True when nothing really runs: the instance is provisioned *in dry-run*. */
  readonly dryRun: boolean;
  /**
   * Makes the instance's objects on the target exactly `objects` (server-side apply on a
   * cluster), removing objects of the instance that are no longer rendered.
   */
  apply(
    instanceId: string,
    generation: number,
    objects: KubeObject[],
  ): Promise<{ applied: number; pruned: number }>;
  /** Removes every object of the instance (its namespace and all in it). */
  remove(instanceId: string): Promise<{ removed: number }>;
  /**
   * Whether the instance's workloads run what was last applied: every Deployment has seen its
   * latest spec and has all its replicas updated and available. `waiting` names the rest.
   */
  rollout(instanceId: string): Promise<{ done: boolean; waiting: string[] }>;
}
