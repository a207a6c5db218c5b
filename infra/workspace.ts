/**
 * Where Woolly's Pulumi stacks live and how the `pulumi` CLI is found: one inline program per
 * stack through the Automation API, a state backend and a secrets provider from configuration.
 * The CLI and its provider plugins are never downloaded: they come from `WOOLLY_PULUMI_ROOT`
 * (a Pulumi install whose `bin/` holds `pulumi` and `pulumi-resource-*`) or from `PATH`.
 */
import { hkdfSync } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { LocalWorkspace, PulumiCommand, type PulumiFn, type Stack } from '@pulumi/pulumi/automation/index.js';

export interface PulumiSettings {
  /** A Pulumi install root (`<root>/bin/pulumi`); null: `pulumi` on `PATH`. */
  root: string | null;
  /** `file:///…`, `s3://…`, `azblob://…`, `gs://…` or `https://api.pulumi.com`. */
  backendUrl: string;
  /** `passphrase`, or a KMS URL (`awskms://…`, `azurekeyvault://…`, `gcpkms://…`, `hashivault://…`). */
  secretsProvider: string;
  /** Encrypts the stacks' secrets when `secretsProvider` is `passphrase`. */
  passphrase: string;
  /** Stack operations one process runs at a time. */
  concurrency: number;
}

/**
 * The settings from configuration; with no passphrase given (allowed outside production), one
 * derived from the master key that seals everything else, so the local install needs none.
 */
export function pulumiSettings(
  config: { pulumi: Omit<PulumiSettings, 'passphrase'> & { passphrase: string | undefined } },
  masterKey: { key: Buffer },
): PulumiSettings {
  const derived = () =>
    Buffer.from(hkdfSync('sha256', masterKey.key, '', 'woolly pulumi passphrase', 32)).toString('base64url');
  return { ...config.pulumi, passphrase: config.pulumi.passphrase ?? derived() };
}

/** No `pulumi` CLI where the settings say: add-on steps report themselves blocked. */
export class PulumiUnavailable extends Error {
  override name = 'PulumiUnavailable';
  readonly retryable = false;
}

const commands = new Map<string, Promise<PulumiCommand>>();

/** The CLI the settings name, checked once per process (`pulumi version`). */
export function pulumiCommand(settings: Pick<PulumiSettings, 'root'>): Promise<PulumiCommand> {
  const key = settings.root ?? '';
  let command = commands.get(key);
  if (!command) {
    command = PulumiCommand.get({ root: settings.root ?? undefined, skipVersionCheck: true }).catch(() => {
      commands.delete(key);
      throw new PulumiUnavailable(
        `blocked: no pulumi CLI ${settings.root ? `at ${settings.root}/bin/pulumi` : 'on PATH'} (set WOOLLY_PULUMI_ROOT to a Pulumi install whose bin/ holds pulumi and pulumi-resource-kubernetes)`,
      );
    });
    commands.set(key, command);
  }
  return command;
}

/**
 * The stack `stack` of `project` running `program`: created on first use, or with
 * `existing` only selected (a StackNotFoundError when there is none).
 */
export async function openStack(
  settings: PulumiSettings,
  options: { project: string; stack: string; program: PulumiFn; existing?: boolean },
): Promise<Stack> {
  const command = await pulumiCommand(settings);
  if (settings.backendUrl.startsWith('file://')) {
    await mkdir(fileURLToPath(settings.backendUrl), { recursive: true });
  }
  const args = { projectName: options.project, stackName: options.stack, program: options.program };
  const workspace = {
    pulumiCommand: command,
    secretsProvider: settings.secretsProvider,
    projectSettings: {
      name: options.project,
      runtime: 'nodejs' as const,
      backend: { url: settings.backendUrl },
    },
    envVars: {
      PULUMI_BACKEND_URL: settings.backendUrl,
      PULUMI_CONFIG_PASSPHRASE: settings.passphrase,
      PULUMI_SKIP_UPDATE_CHECK: 'true',
      PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK: 'true',
      // The DIY backend's project-scoped layout; stacks are `organization/<project>/<stack>`.
      PULUMI_DIY_BACKEND_LEGACY_LAYOUT: 'false',
    },
  };
  return options.existing
    ? LocalWorkspace.selectStack(args, workspace)
    : LocalWorkspace.createOrSelectStack(args, workspace);
}
