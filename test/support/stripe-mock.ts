/**
 * stripe-mock, Stripe's own API mock, for tests: built once per machine from the Go module
 * proxy by test/support/stripe/build.sh into a cache outside the repo (see its README). It
 * validates routes and parameters against Stripe's OpenAPI spec and answers with fixtures;
 * it is stateless (nothing POSTed is remembered) and sends no webhooks.
 */
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import Stripe from 'stripe';

/** A running stripe-mock; point a Stripe client at `127.0.0.1:<port>` over plain HTTP. */
export interface StripeMock {
  /** `http://127.0.0.1:<port>` */
  url: string;
  port: number;
  /** Kills stripe-mock (it keeps no state worth a graceful stop). */
  release(): Promise<void>;
}

/** Any test-mode secret key is accepted; a missing or live key gets a 401. */
export const STRIPE_MOCK_API_KEY = 'sk_test_123';

const here = path.join(import.meta.dirname, 'stripe');
const READY_TIMEOUT_MS = 30_000;
const LOG_LINES = 50;

/** The stripe-mock version required in stripe/go.mod, read the way build.sh reads it. */
export function stripeMockVersion(): string {
  const goMod = readFileSync(path.join(here, 'go.mod'), 'utf8').replace(/^\s*\/\/.*$/gm, '');
  const match = /(?:^|\s)github\.com\/stripe\/stripe-mock\s+(v\d\S*)/m.exec(goMod);
  if (!match?.[1])
    throw new Error(`github.com/stripe/stripe-mock is not required in ${path.join(here, 'go.mod')}`);
  return match[1];
}

/** Where build.sh puts (or has put) the binary. */
function cachedBinary(): { file: string; built: boolean } {
  const cache = process.env.WOOLLY_STRIPE_CACHE || path.join(os.homedir(), '.cache', 'woolly', 'stripe');
  const file = path.join(cache, stripeMockVersion(), 'stripe-mock');
  return { file, built: existsSync(file) };
}

let binary: string | undefined;

/** The stripe-mock binary; runs build.sh the first time in a process when the cache is empty. */
export function stripeMockBinary(): string {
  if (binary) return binary;
  const cached = cachedBinary();
  if (cached.built) {
    binary = cached.file;
    return binary;
  }
  const dir = execFileSync('bash', [path.join(here, 'build.sh')], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  }).trim();
  binary = path.join(dir, 'stripe-mock');
  return binary;
}

/**
 * Why tests of stripe-mock cannot run (no `go` to build it, nothing cached), as node:test's
 * `skip` option; `false` when they can. Under CI=true it is always `false`, so a missing
 * dependency fails the run instead of skipping.
 */
export function stripeMockSkipReason(): string | false {
  if (process.env.CI === 'true') return false;
  if (cachedBinary().built) return false;
  if (spawnSync('go', ['version'], { stdio: 'ignore' }).status === 0) return false;
  return 'stripe-mock is not built and `go` is missing: install Go, then run `bash test/support/stripe/build.sh` once';
}

/**
 * Starts stripe-mock on a loopback port the kernel picks and resolves once it answers an
 * authenticated `GET /v1/customers` (about 1 s: it parses its 8 MB spec first). Fails with
 * its last output lines if it exits first or is not ready within 30 s.
 */
export async function startStripeMock(): Promise<StripeMock> {
  const file = stripeMockBinary();
  // Both listeners on 127.0.0.1 port 0. Each address must be given: with only -http-addr,
  // stripe-mock still opens HTTPS on [::]:12112, which a second instance cannot bind.
  const child: ChildProcess = spawn(file, ['-http-addr', '127.0.0.1:0', '-https-addr', '127.0.0.1:0'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  let port: number | undefined;
  let status: string | null = null;
  const keep = (chunk: Buffer) => {
    for (const line of chunk.toString('utf8').split('\n').filter(Boolean)) {
      lines.push(line);
      const listening = /^Listening for HTTP at address: 127\.0\.0\.1:(\d+)$/.exec(line);
      if (listening) port = Number(listening[1]);
    }
    if (lines.length > LOG_LINES) lines.splice(0, lines.length - LOG_LINES);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<void>((resolve) => {
    child.once('error', (error) => {
      status = `failed to start: ${error.message}`;
      resolve();
    });
    // 'close' rather than 'exit': it comes after the output pipes drain, so the lines are kept.
    child.once('close', (code, signal) => {
      status = signal ? `killed by ${signal}` : `exited with code ${code}`;
      resolve();
    });
  });
  const killOnExit = () => {
    if (status === null) child.kill('SIGKILL');
  };
  process.once('exit', killOnExit);
  let released = false;
  const release = async () => {
    if (released) return;
    released = true;
    if (status === null) child.kill('SIGKILL');
    await exited;
    process.removeListener('exit', killOnExit);
  };

  const failure = (what: string) =>
    new Error(`${what}\n--- stripe-mock (${status ?? 'still running'}), last lines ---\n${lines.join('\n')}`);
  try {
    const deadline = Date.now() + READY_TIMEOUT_MS;
    while (!(port !== undefined && (await answers(port)))) {
      if (status !== null) throw failure('stripe-mock stopped before it was ready');
      if (Date.now() > deadline) throw failure(`stripe-mock not ready within ${READY_TIMEOUT_MS / 1000} s`);
      await sleep(100);
    }
    return { url: `http://127.0.0.1:${port}`, port, release };
  } catch (error) {
    await release();
    throw error;
  }
}

async function answers(port: number): Promise<boolean> {
  try {
    const response = await fetch(`http://127.0.0.1:${port}/v1/customers`, {
      headers: { authorization: `Bearer ${STRIPE_MOCK_API_KEY}` },
      signal: AbortSignal.timeout(2_000),
    });
    await response.arrayBuffer();
    return response.status === 200;
  } catch {
    return false;
  }
}

/** The real `stripe` client pointed at `mock`, with no retries of its own (tests count calls). */
export function stripeMockClient(mock: StripeMock): Stripe {
  return new Stripe(STRIPE_MOCK_API_KEY, {
    host: '127.0.0.1',
    port: mock.port,
    protocol: 'http',
    maxNetworkRetries: 0,
  });
}
