/**
 * Job runners in child processes (test/support/worker-process.ts), which a test can SIGKILL
 * mid-job as a crash would: `spawnWorkerProcess` loads one, `start` makes it take jobs.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import type { MasterKey } from '../../core/config.ts';

/** The one task of a `block` worker process: it reports its start, then never ends. */
export const BLOCK_TASK = 'test:block';

const script = path.join(import.meta.dirname, 'worker-process.ts');
const TAIL_LINES = 40;

/** Every worker process still running, killed should the test process exit first. */
const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

export interface WorkerProcess {
  readonly pid: number | undefined;
  /** Makes it take jobs; resolves with its runner id (its jobs' `locked_by`) once it does. */
  start(): Promise<string>;
  /** Resolves with the id of the next `test:block` job it starts. */
  nextStarted(): Promise<string>;
  /** Resolves once the process is gone, with how it ended (`exited with code 70`, `killed by SIGKILL`). */
  exited(): Promise<string>;
  /** Sends `signal` (SIGKILL unless given) and waits until the process is gone. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** The last lines it wrote to stderr (its log), for failure messages. */
  tail(): string;
}

export interface WorkerProcessOptions {
  databaseUrl: string;
  /** The keys its secret box opens with: the test's, so it can open what the test sealed. */
  masterKeys: MasterKey[];
  /** `woolly` (what `woolly worker` runs) or `block` (one task that never ends). */
  tasks?: 'woolly' | 'block';
  concurrency?: number;
  waitPollMs?: number;
  sweepIntervalMs?: number;
  pollIntervalMs?: number;
  logLevel?: 'error' | 'warn' | 'info' | 'debug';
}

/** Spawns a worker process, loaded but not yet taking jobs; it dies with the test process. */
export function spawnWorkerProcess(options: WorkerProcessOptions): WorkerProcess {
  const args = ['--import', 'tsx', script, `--tasks=${options.tasks ?? 'woolly'}`];
  if (options.waitPollMs !== undefined) args.push(`--wait-poll-ms=${options.waitPollMs}`);
  if (options.sweepIntervalMs !== undefined) args.push(`--sweep-interval-ms=${options.sweepIntervalMs}`);
  if (options.pollIntervalMs !== undefined) args.push(`--poll-interval-ms=${options.pollIntervalMs}`);
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    NODE_ENV: 'test',
    DATABASE_URL: options.databaseUrl,
    WOOLLY_MASTER_KEYS: options.masterKeys.map((key) => `${key.id}:${key.key.toString('base64')}`).join(','),
    WOOLLY_WORKER_CONCURRENCY: String(options.concurrency ?? 2),
    LOG_LEVEL: options.logLevel ?? 'error',
    LOG_FORMAT: 'json',
  };
  // The child is no test file of node:test's.
  delete env.NODE_TEST_CONTEXT;
  const child: ChildProcess = spawn(process.execPath, args, {
    cwd: path.resolve(import.meta.dirname, '..', '..'),
    env,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  running.add(child);
  const errors: string[] = [];
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (chunk: string) => {
    errors.push(...chunk.split('\n').filter(Boolean));
    if (errors.length > TAIL_LINES) errors.splice(0, errors.length - TAIL_LINES);
  });
  let status: string | null = null;
  const exited = new Promise<string>((resolve) => {
    child.once('exit', (code, signal) => {
      running.delete(child);
      const how = signal ? `killed by ${signal}` : `exited with code ${code}`;
      status = how;
      resolve(how);
    });
  });
  const tail = () => `--- worker process ${child.pid} (${status ?? 'running'}) ---\n${errors.join('\n')}`;

  // Reports, one JSON object a line; waiters take the first one they match.
  const waiters: { take: (message: Record<string, unknown>) => boolean }[] = [];
  let buffered = '';
  child.stdout?.setEncoding('utf8');
  child.stdout?.on('data', (chunk: string) => {
    buffered += chunk;
    for (let end = buffered.indexOf('\n'); end >= 0; end = buffered.indexOf('\n')) {
      const line = buffered.slice(0, end);
      buffered = buffered.slice(end + 1);
      let message: Record<string, unknown>;
      try {
        message = JSON.parse(line) as Record<string, unknown>;
      } catch {
        continue;
      }
      const index = waiters.findIndex((waiter) => waiter.take(message));
      if (index >= 0) waiters.splice(index, 1);
    }
  });
  const next = (key: string) =>
    new Promise<string>((resolve, reject) => {
      waiters.push({
        take: (message) => {
          if (!(key in message)) return false;
          resolve(String(message[key]));
          return true;
        },
      });
      void exited.then(() => reject(new Error(`the worker process ended before "${key}"\n${tail()}`)));
    });

  return {
    pid: child.pid,
    start() {
      const ready = next('ready');
      child.stdin?.write('start\n');
      return ready;
    },
    nextStarted: () => next('started'),
    exited: () => exited,
    async kill(signal = 'SIGKILL') {
      if (status === null) child.kill(signal);
      await exited;
    },
    tail,
  };
}
