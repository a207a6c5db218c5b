/**
 * The real `pulumi` CLI and Kubernetes provider for tests, built once per machine by
 * test/support/pulumi/build.sh into a cache outside the repo (see its README).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { PulumiSettings } from '../../infra/workspace.ts';

const here = path.join(import.meta.dirname, 'pulumi');

/** The module version `module` is required at in `<folder>/go.mod`, as build.sh reads it. */
function required(folder: string, module: string): string {
  const goMod = readFileSync(path.join(here, folder, 'go.mod'), 'utf8').replace(/^\s*\/\/.*$/gm, '');
  const match = new RegExp(`(?:^|\\s)${module.replaceAll('.', '\\.')}\\s+(v\\d\\S*)`, 'm').exec(goMod);
  if (!match?.[1]) throw new Error(`${module} is not required in ${path.join(here, folder, 'go.mod')}`);
  return match[1];
}

/** Where build.sh puts (or has put) its binaries: the Pulumi root, whose bin/ holds them. */
function cachedRoot(): { root: string; built: boolean } {
  const cache = process.env.WOOLLY_PULUMI_CACHE || path.join(os.homedir(), '.cache', 'woolly', 'pulumi');
  const root = path.join(
    cache,
    `${required('cli', 'github.com/pulumi/pulumi/pkg/v3')}-k8s-${required('kubernetes', 'github.com/pulumi/pulumi-kubernetes/provider/v4')}`,
  );
  const built = ['pulumi', 'pulumi-resource-kubernetes'].every((binary) =>
    existsSync(path.join(root, 'bin', binary)),
  );
  return { root, built };
}

let root: string | undefined;

/** The Pulumi root; runs build.sh the first time in a process when the cache is empty. */
export function pulumiRoot(): string {
  if (root) return root;
  const cached = cachedRoot();
  root = cached.built
    ? cached.root
    : execFileSync('bash', [path.join(here, 'build.sh')], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'inherit'],
      }).trim();
  return root;
}

/**
 * Why tests of the real CLI cannot run (no `go` to build it, nothing cached), as node:test's
 * `skip` option; `false` when they can. Under CI=true it is always `false`, so a missing
 * dependency fails the run instead of skipping.
 */
export function pulumiSkipReason(): string | false {
  if (process.env.CI === 'true') return false;
  if (cachedRoot().built) return false;
  if (spawnSync('go', ['version'], { stdio: 'ignore' }).status === 0) return false;
  return 'the pulumi CLI is not built and `go` is missing: install Go, then run `bash test/support/pulumi/build.sh` once';
}

/** Settings for stacks kept under `dir` (state in `<dir>/state`). */
export function testPulumiSettings(dir: string): PulumiSettings {
  return {
    root: pulumiRoot(),
    backendUrl: `file://${dir}/state`,
    passphrase: 'test-passphrase',
    secretsProvider: 'passphrase',
    concurrency: 2,
  };
}
