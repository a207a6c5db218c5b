/**
 * A job runner in a process of its own, for tests that kill one (SIGKILL) mid-job: what
 * `woolly worker` runs (core/worker.ts with the provisioner's and the API's tasks and crontab),
 * configured from the environment the same way (DATABASE_URL, WOOLLY_MASTER_KEYS, LOG_LEVEL…).
 * Settings `woolly worker` does not take (yet) come as arguments:
 *   --wait-poll-ms <ms>       how soon a reconcile waiting on the cluster looks again
 *   --sweep-interval-ms <ms>  how often dead runners' jobs are looked for
 *   --poll-interval-ms <ms>   how often an idle runner looks for jobs that are due
 * With `--tasks block`, the only task is `test:block`, which never ends.
 *
 * It loads everything, then waits for a `start` line on stdin (so a test can keep one warm and
 * start it the moment it needs it), and reports on stdout as JSON lines: `{"ready": runnerId}`
 * once it takes jobs, `{"started": jobId}` when a `test:block` job starts. It exits when stdin
 * closes, so it never outlives its test.
 */
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { apiTasks } from '../../api/tasks.ts';
import { loadConfig } from '../../core/config.ts';
import { makeSecretBox } from '../../core/crypto.ts';
import { makePrisma } from '../../core/db.ts';
import { makeLogger } from '../../core/log.ts';
import { startWorker, type Task } from '../../core/worker.ts';
import { PROVISIONER_CRONTAB } from '../../provisioner/index.ts';
import { provisionerTasks } from '../../provisioner/tasks.ts';
import { BLOCK_TASK } from './worker-processes.ts';

const { values: args } = parseArgs({
  options: {
    tasks: { type: 'string', default: 'woolly' },
    'wait-poll-ms': { type: 'string' },
    'sweep-interval-ms': { type: 'string' },
    'poll-interval-ms': { type: 'string' },
  },
});

const report = (message: Record<string, unknown>) => process.stdout.write(`${JSON.stringify(message)}\n`);

const config = loadConfig();
if (!config.databaseUrl) throw new Error('worker-process: DATABASE_URL is required');
const databaseUrl = config.databaseUrl;
const log = makeLogger(config);
const db = makePrisma(databaseUrl);

let tasks: Record<string, Task>;
let crontab = '';
if (args.tasks === 'block') {
  tasks = {
    [BLOCK_TASK]: async (_payload, helpers) => {
      report({ started: helpers.job.id });
      await new Promise(() => {});
    },
  };
} else {
  const api = apiTasks({ db, log });
  tasks = {
    ...provisionerTasks({
      db,
      box: makeSecretBox(config.masterKeys),
      log,
      ...(args['wait-poll-ms'] ? { waitPollMs: Number(args['wait-poll-ms']) } : {}),
    }),
    ...api.tasks,
  };
  crontab = [api.crontab, PROVISIONER_CRONTAB].join('\n');
}

const lines = createInterface({ input: process.stdin });
lines.once('close', () => process.exit(0));
await new Promise<void>((resolve) => lines.once('line', () => resolve()));

const worker = await startWorker({
  databaseUrl,
  concurrency: config.workerConcurrency,
  log,
  tasks,
  crontab,
  ...(args['sweep-interval-ms'] ? { sweepIntervalMs: Number(args['sweep-interval-ms']) } : {}),
  ...(args['poll-interval-ms'] ? { pollIntervalMs: Number(args['poll-interval-ms']) } : {}),
});
report({ ready: worker.id });
process.once('SIGTERM', () => {
  void worker
    .release()
    .then(() => db.$disconnect())
    .then(() => process.exit(0));
});
