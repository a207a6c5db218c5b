/**
 * Runs one add-on program under Pulumi's mocks, in a worker thread of its own (the mocks are
 * global to the Pulumi runtime, which real stack operations in the main thread also use), and
 * posts back what it registers, what Woolly's policy rules say of it, and its outputs: the
 * dry-run target's plan, and the policy gate before a real `up`, made without the CLI.
 */
import { parentPort, workerData } from 'node:worker_threads';
import * as pulumi from '@pulumi/pulumi';
import { checkResources, type ResourceView } from './policy.ts';
import { type AddonStackSpec, addonProgram } from './program.ts';

/** What a cloud provider fills in on creation, unknown until the stack really goes up. */
const LATER = '(known after up)';

const spec = workerData as AddonStackSpec;
const registered: ResourceView[] = [];
await pulumi.runtime.setMocks(
  {
    newResource: (args) => {
      registered.push({ type: args.type, name: args.name, inputs: args.inputs });
      return { id: `${args.name}-planned`, state: args.inputs };
    },
    call: () => ({}),
  },
  'woolly-addons',
  'plan',
  false,
);

const stackOutputs = await addonProgram(spec)();
// Every registration has reached the mocks once the runtime's queue has drained.
await pulumi.runtime.disconnect();
const outputs = await new Promise<unknown>((resolve) => pulumi.output(stackOutputs).apply(resolve));

parentPort?.postMessage({
  resources: registered.map(({ type, name }) => ({ type, name })),
  violations: checkResources(registered, spec.limits),
  outputs: JSON.parse(JSON.stringify(outputs, (_key, value) => (value === undefined ? LATER : value))),
});
