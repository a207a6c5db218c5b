/**
 * gofakes3 (github.com/johannesboyne/gofakes3), an S3-compatible server in Go, for tests that
 * list buckets: built once per machine from the Go module proxy by test/support/s3/build.sh
 * into a cache outside the repo, run in memory on a loopback port. It serves path-style
 * buckets, PUT and ListObjectsV2 with continuation tokens; it does not verify signatures
 * (the signer is checked against AWS's published example instead).
 */
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/** A running gofakes3 with one bucket. */
export interface S3Server {
  /** `http://127.0.0.1:<port>` */
  url: string;
  bucket: string;
  /** Stores `body` under `key` in the bucket. */
  put(key: string, body: Buffer | string): Promise<void>;
  release(): Promise<void>;
}

const here = path.join(import.meta.dirname, 's3');
const READY_TIMEOUT_MS = 15_000;

function version(): string {
  const goMod = readFileSync(path.join(here, 'go.mod'), 'utf8').replace(/^\s*\/\/.*$/gm, '');
  const match = /(?:^|\s)github\.com\/johannesboyne\/gofakes3\s+(v\d\S*)/m.exec(goMod);
  if (!match?.[1]) throw new Error(`github.com/johannesboyne/gofakes3 is not required in ${here}/go.mod`);
  return match[1];
}

function cachedBinary(): { file: string; built: boolean } {
  const cache = process.env.WOOLLY_S3_CACHE || path.join(os.homedir(), '.cache', 'woolly', 's3');
  const file = path.join(cache, version(), 'gofakes3');
  return { file, built: existsSync(file) };
}

/** Why gofakes3 tests cannot run (no binary and no `go`), as node:test's `skip`; never under CI=true. */
export function s3ServerSkipReason(): string | false {
  if (process.env.CI === 'true') return false;
  if (cachedBinary().built) return false;
  if (spawnSync('go', ['version'], { stdio: 'ignore' }).status === 0) return false;
  return 'gofakes3 is not built and `go` is missing: install Go, then run `bash test/support/s3/build.sh` once';
}

function binary(): string {
  const cached = cachedBinary();
  if (cached.built) return cached.file;
  const dir = execFileSync('bash', [path.join(here, 'build.sh')], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  }).trim();
  return path.join(dir, 'gofakes3');
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  if (typeof address !== 'object' || !address) throw new Error('no free port');
  return address.port;
}

/** Starts gofakes3 in memory with `bucket` made; resolves once it lists the bucket. */
export async function startS3Server(bucket = 'mastodon'): Promise<S3Server> {
  const port = await freePort();
  const child: ChildProcess = spawn(
    binary(),
    ['-backend', 'memory', '-host', `127.0.0.1:${port}`, '-initialbucket', bucket, '-quiet'],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  const output: string[] = [];
  child.stderr?.on('data', (chunk: Buffer) => output.push(chunk.toString('utf8')));
  let exited = false;
  const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));
  child.once('close', () => {
    exited = true;
  });
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  const release = async () => {
    if (!exited) child.kill('SIGKILL');
    await closed;
    process.removeListener('exit', killOnExit);
  };
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    const ready = await fetch(`${url}/${bucket}?list-type=2`).then(
      (response) => response.ok,
      () => false,
    );
    if (ready) break;
    if (exited || Date.now() > deadline) {
      await release();
      throw new Error(`gofakes3 did not start: ${output.join('').slice(-2000)}`);
    }
    await sleep(50);
  }
  return {
    url,
    bucket,
    async put(key, body) {
      const response = await fetch(`${url}/${bucket}/${key.split('/').map(encodeURIComponent).join('/')}`, {
        method: 'PUT',
        body: typeof body === 'string' ? body : new Uint8Array(body),
      });
      await response.arrayBuffer();
      if (!response.ok) throw new Error(`gofakes3 refused PUT ${key}: HTTP ${response.status}`);
    },
    release,
  };
}
