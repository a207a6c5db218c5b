import type { KubeObject } from '../manifests/render-instance.ts';

/** Where a run-once Job stands: `failed` once it has spent its retries. */
export interface JobState {
  state: 'running' | 'succeeded' | 'failed';
  detail: string;
}

/** One object Woolly applied, as the cluster holds it: its metadata, nothing more. */
export interface ObservedObject {
  /** Its `woolly.dev/instance-id` label. */
  instanceId: string;
  kind: string;
  name: string;
  /** Its `woolly.dev/generation` annotation; `null` on objects that carry none (the Secret). */
  generation: number | null;
}

/** Where an instance's objects go: a real cluster, or the dry-run store. */
export interface ClusterTarget {
  /** True when nothing really runs: the instance is provisioned *in dry-run*. */
  readonly dryRun: boolean;
  /**
   * Creates or updates `objects` (server-side apply on a cluster), each annotated with
   * `generation`; objects not given are left alone until `prune`.
   */
  apply(instanceId: string, generation: number, objects: KubeObject[]): Promise<{ applied: number }>;
  /** Removes the instance's objects that are not in `keep` (except Jobs still running). */
  prune(instanceId: string, generation: number, keep: KubeObject[]): Promise<{ pruned: number }>;
  /**
   * Where the instance's Job `name` stands. A failed Job is deleted as it is reported, so the
   * next apply of it (a staff retry) runs it afresh.
   */
  jobState(instanceId: string, name: string): Promise<JobState>;
  /** Removes every object of the instance (its namespace and all in it). */
  remove(instanceId: string): Promise<{ removed: number }>;
  /**
   * Whether the instance's workloads run what was last applied: every Deployment has seen its
   * latest spec and has all its replicas updated and available. `waiting` names the rest.
   */
  rollout(instanceId: string): Promise<{ done: boolean; waiting: string[] }>;
  /**
   * Every object of `instanceIds` the target holds, of every kind an instance has but Job (run
   * once, and gone by their TTL), for the fleet resync to compare with what each should have.
   * One pass over the whole target, not a call per instance.
   */
  observe(instanceIds: ReadonlySet<string>): Promise<ObservedObject[]>;
}
