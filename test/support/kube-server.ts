import assert from 'node:assert/strict';
/**
 * A real Kubernetes API server for tests: etcd plus kube-apiserver, built from Go modules by
 * test/support/kube/build.sh into a cache outside the repo (see test/support/kube/README.md).
 * There is no kubelet, scheduler or controller-manager: objects are stored, validated,
 * defaulted, authorized (RBAC) and server-side applied, but nothing acts on them.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { generateKeyPairSync, randomBytes, X509Certificate } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { provisionerRbac } from '../../provisioner/rbac.ts';

export interface KubeApiServer {
  /** `https://127.0.0.1:<port>` */
  url: string;
  /** Bearer token of `woolly-admin`, in group `system:masters` (allowed everything). */
  adminToken: string;
  /** Bearer tokens of the extra users asked for in `startKubeApiServer({ users })`, by name. */
  tokens: Record<string, string>;
  /** A kubeconfig for the admin that trusts the server's CA (no insecure-skip-tls-verify). */
  kubeconfigYaml: string;
  /** PEM of the self-signed CA kube-apiserver generated for its serving certificate. */
  caCert: string;
  /** Stops kube-apiserver and etcd and removes their temp folder. */
  release(): Promise<void>;
}

export interface KubeApiServerOptions {
  /** Extra token users, e.g. restricted users for RBAC tests (no groups unless given). */
  users?: Array<{ name: string; groups?: string[] }>;
}

export interface KubeBinaries {
  dir: string;
  kubeApiServer: string;
  etcd: string;
  kubernetesVersion: string;
  etcdVersion: string;
}

const kubeModuleDir = path.join(import.meta.dirname, 'kube');
const READY_TIMEOUT_MS = 90_000;
const LOG_LINES = 200;

function moduleVersion(goMod: string, module: string): string {
  const escaped = module.replaceAll('.', '\\.');
  const code = goMod.replace(/^\s*\/\/.*$/gm, '');
  const match = new RegExp(`(?:^|\\s)${escaped}\\s+(v\\d\\S*)`, 'm').exec(code);
  if (!match?.[1]) throw new Error(`${module} is not required in ${path.join(kubeModuleDir, 'go.mod')}`);
  return match[1];
}

/**
 * Where build.sh puts kube-apiserver and etcd (versions read from test/support/kube/go.mod, the
 * same way build.sh reads them). Throws, naming build.sh, when either binary is missing.
 */
export function kubeBinaries(): KubeBinaries {
  const goMod = readFileSync(path.join(kubeModuleDir, 'go.mod'), 'utf8');
  const kubernetesVersion = moduleVersion(goMod, 'k8s.io/kubernetes');
  const etcdVersion = moduleVersion(goMod, 'go.etcd.io/etcd/server/v3');
  const cache = process.env.WOOLLY_KUBE_CACHE || path.join(os.homedir(), '.cache', 'woolly', 'kube');
  const dir = path.join(cache, `${kubernetesVersion}-etcd-${etcdVersion}`);
  const binaries = {
    dir,
    kubeApiServer: path.join(dir, 'kube-apiserver'),
    etcd: path.join(dir, 'etcd'),
    kubernetesVersion,
    etcdVersion,
  };
  const missing = [binaries.kubeApiServer, binaries.etcd].filter((file) => !existsSync(file));
  if (missing.length > 0) {
    throw new Error(
      `kube-apiserver ${kubernetesVersion} and etcd ${etcdVersion} are not built (missing ${missing.join(', ')}): ` +
        'run `bash test/support/kube/build.sh` once (needs Go and the Go module proxy; several minutes the first time)',
    );
  }
  return binaries;
}

/**
 * Why the tests that need kube-apiserver cannot run (its binaries are missing, naming
 * build.sh), as node:test's `skip` option; `false` when they can. Under CI=true it is always
 * `false`, so a missing binary fails the run instead of skipping.
 */
export function kubeSkipReason(): string | false {
  if (process.env.CI === 'true') return false;
  try {
    kubeBinaries();
    return false;
  } catch (error) {
    return (error as Error).message;
  }
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

interface Managed {
  name: string;
  child: ChildProcess;
  lines: string[];
  exited: Promise<void>;
  exitCode(): string | null;
}

/** Spawns a server process, keeping the last lines of its output for error messages. */
function run(name: string, command: string, args: string[]): Managed {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  let status: string | null = null;
  const keep = (chunk: Buffer) => {
    lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
    if (lines.length > LOG_LINES) lines.splice(0, lines.length - LOG_LINES);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<void>((resolve) => {
    child.once('error', (error) => {
      status = `failed to start: ${error.message}`;
      resolve();
    });
    child.once('exit', (code, signal) => {
      status = signal ? `killed by ${signal}` : `exited with code ${code}`;
      resolve();
    });
  });
  return { name, child, lines, exited, exitCode: () => status };
}

async function stop(processes: Managed[]): Promise<void> {
  await Promise.all(
    processes.map(async (managed) => {
      // Nothing to keep: the data folder is deleted next, so no graceful shutdown (which
      // takes kube-apiserver several seconds).
      if (managed.exitCode() === null) managed.child.kill('SIGKILL');
      await managed.exited;
    }),
  );
}

function tail(managed: Managed, count = 25): string {
  const status = managed.exitCode() ?? 'still running';
  return `--- ${managed.name} (${status}), last lines ---\n${managed.lines.slice(-count).join('\n')}`;
}

function get(
  url: string,
  options: https.RequestOptions = {},
): Promise<{ status: number; body: string } | undefined> {
  const client = url.startsWith('https:') ? https : http;
  return new Promise((resolve) => {
    const request = client.get(url, { ...options, timeout: 5_000 }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => {
        body += chunk;
      });
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
      response.on('error', () => resolve(undefined));
    });
    request.on('timeout', () => request.destroy());
    request.on('error', () => resolve(undefined));
  });
}

/** The CA of kube-apiserver's self-signed bundle (serving cert, then its CA); '' until written. */
function caOf(bundle: string): string {
  const blocks = bundle.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  const ca = blocks.find((pem) => new X509Certificate(pem).ca);
  return ca ? `${ca}\n` : '';
}

function kubeconfig(url: string, caCert: string, token: string): string {
  const ca = Buffer.from(caCert).toString('base64');
  return [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    '- name: woolly-test',
    '  cluster:',
    `    server: ${url}`,
    `    certificate-authority-data: ${ca}`,
    'users:',
    '- name: woolly-admin',
    '  user:',
    `    token: ${token}`,
    'contexts:',
    '- name: woolly-test',
    '  context:',
    '    cluster: woolly-test',
    '    user: woolly-admin',
    'current-context: woolly-test',
    '',
  ].join('\n');
}

const token = () => randomBytes(24).toString('hex');

/**
 * Starts etcd and kube-apiserver on free loopback ports with a fresh temp folder, and resolves
 * once `/readyz` answers ok (about 5 s on 2 cores). Fails after 90 s with both processes' last lines.
 */
export async function startKubeApiServer(options: KubeApiServerOptions = {}): Promise<KubeApiServer> {
  const binaries = kubeBinaries();
  const root = await mkdtemp(path.join(os.tmpdir(), 'woolly-kube-'));
  const processes: Managed[] = [];
  const killOnExit = () => {
    for (const managed of processes) if (managed.exitCode() === null) managed.child.kill('SIGKILL');
  };
  process.once('exit', killOnExit);
  let released = false;
  const release = async () => {
    if (released) return;
    released = true;
    await stop(processes);
    process.removeListener('exit', killOnExit);
    await rm(root, { recursive: true, force: true });
  };

  try {
    const deadline = Date.now() + READY_TIMEOUT_MS;
    const failure = (what: string) =>
      new Error(`${what}\n${processes.map((managed) => tail(managed)).join('\n')}`);
    const waitFor = async (what: string, check: () => Promise<boolean>) => {
      while (!(await check())) {
        const dead = processes.find((managed) => managed.exitCode() !== null);
        if (dead) throw failure(`${dead.name} stopped while waiting for ${what}`);
        if (Date.now() > deadline) throw failure(`${what} not ready within ${READY_TIMEOUT_MS / 1000} s`);
        await sleep(250);
      }
    };

    // etcd: one member, loopback only, data in the temp folder.
    const [clientPort, peerPort] = [await freePort(), await freePort()];
    const etcdUrl = `http://127.0.0.1:${clientPort}`;
    const peerUrl = `http://127.0.0.1:${peerPort}`;
    processes.push(
      run('etcd', binaries.etcd, [
        '--name=woolly-test',
        `--data-dir=${path.join(root, 'etcd')}`,
        `--listen-client-urls=${etcdUrl}`,
        `--advertise-client-urls=${etcdUrl}`,
        `--listen-peer-urls=${peerUrl}`,
        `--initial-advertise-peer-urls=${peerUrl}`,
        `--initial-cluster=woolly-test=${peerUrl}`,
        '--initial-cluster-state=new',
        '--unsafe-no-fsync',
        '--log-level=warn',
      ]),
    );

    // kube-apiserver's inputs: a service-account key pair and a token file.
    const certDir = path.join(root, 'certs');
    await mkdir(certDir, { mode: 0o700 });
    const saKey = path.join(root, 'service-account.key');
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    await writeFile(saKey, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    const adminToken = token();
    const tokens: Record<string, string> = {};
    const csv = [`${adminToken},woolly-admin,woolly-admin,"system:masters"`];
    for (const user of options.users ?? []) {
      tokens[user.name] = token();
      const groups = user.groups?.length ? `,"${user.groups.join(',')}"` : '';
      csv.push(`${tokens[user.name]},${user.name},${user.name}${groups}`);
    }
    const tokenFile = path.join(root, 'tokens.csv');
    await writeFile(tokenFile, `${csv.join('\n')}\n`, { mode: 0o600 });

    await waitFor('etcd /health', async () => (await get(`${etcdUrl}/health`))?.status === 200);

    const port = await freePort();
    const url = `https://127.0.0.1:${port}`;
    processes.push(
      run('kube-apiserver', binaries.kubeApiServer, [
        `--etcd-servers=${etcdUrl}`,
        '--bind-address=127.0.0.1',
        // Otherwise it advertises the host's default-route address (and fails without one).
        '--advertise-address=127.0.0.1',
        `--secure-port=${port}`,
        `--cert-dir=${certDir}`,
        '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
        `--service-account-key-file=${saKey}`,
        `--service-account-signing-key-file=${saKey}`,
        '--authorization-mode=RBAC',
        `--token-auth-file=${tokenFile}`,
        '--service-cluster-ip-range=10.0.0.0/20',
        '--disable-admission-plugins=ServiceAccount',
        // No kubelets: nothing to reconcile the `kubernetes` Service's endpoints for.
        '--endpoint-reconciler-type=none',
        '--profiling=false',
      ]),
    );

    // The serving certificate appears in --cert-dir before the port opens.
    const bundle = path.join(certDir, 'apiserver.crt');
    let caCert = '';
    await waitFor('kube-apiserver /readyz', async () => {
      if (!caCert) {
        if (!existsSync(bundle)) return false;
        caCert = caOf(await readFile(bundle, 'utf8'));
        if (!caCert) return false;
      }
      const response = await get(`${url}/readyz`, {
        ca: caCert,
        headers: { authorization: `Bearer ${adminToken}` },
      });
      return response?.status === 200;
    });

    return {
      url,
      adminToken,
      tokens,
      caCert,
      kubeconfigYaml: kubeconfig(url, caCert, adminToken),
      release,
    };
  } catch (error) {
    await release();
    throw error;
  }
}

/** A kubeconfig for the extra token user `name` (see `startKubeApiServer({ users })`). */
export function kubeconfigFor(server: KubeApiServer, name: string): string {
  const userToken = server.tokens[name];
  if (!userToken) throw new Error(`no token user ${name} on this API server`);
  return kubeconfig(server.url, server.caCert, userToken);
}

/**
 * Binds the provisioner's ClusterRole (provisioner/rbac.ts, as `woolly cluster rbac` prints it)
 * to the token user `name`, as an operator would apply it on a real cluster.
 */
export async function bindProvisionerRole(server: KubeApiServer, name: string): Promise<void> {
  for (const object of provisionerRbac({ kind: 'User', name })) {
    const plural = object.kind === 'ClusterRole' ? 'clusterroles' : 'clusterrolebindings';
    const created = await kubeRequest(server, 'POST', `/apis/rbac.authorization.k8s.io/v1/${plural}`, object);
    assert.equal(created.status, 201, JSON.stringify(created.body));
  }
}

/** A raw call to the test API server as its admin (no client library in between). */
export function kubeRequest(
  server: KubeApiServer,
  method: string,
  path: string,
  body?: unknown,
  contentType = 'application/json',
): Promise<{ status: number; body: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const outgoing = https.request(
      `${server.url}${path}`,
      {
        method,
        ca: server.caCert,
        headers: {
          authorization: `Bearer ${server.adminToken}`,
          accept: 'application/json',
          ...(body === undefined ? {} : { 'content-type': contentType }),
        },
      },
      (response) => {
        let text = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => {
          text += chunk;
        });
        response.on('end', () => {
          // Discovery of an unserved group answers a plain-text 404.
          const json = response.headers['content-type']?.startsWith('application/json');
          resolve({ status: response.statusCode ?? 0, body: json ? JSON.parse(text) : { text } });
        });
      },
    );
    outgoing.on('error', reject);
    outgoing.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

/**
 * Installs a minimal cert-manager CRD (any fields accepted), as a cluster with cert-manager
 * has, and waits until kube-apiserver's establishing controller serves it.
 */
async function installCertManagerCrd(
  server: KubeApiServer,
  kind: 'Certificate' | 'ClusterIssuer',
  scope: 'Namespaced' | 'Cluster',
): Promise<void> {
  const plural = `${kind.toLowerCase()}s`;
  const created = await kubeRequest(
    server,
    'POST',
    '/apis/apiextensions.k8s.io/v1/customresourcedefinitions',
    {
      apiVersion: 'apiextensions.k8s.io/v1',
      kind: 'CustomResourceDefinition',
      metadata: { name: `${plural}.cert-manager.io` },
      spec: {
        group: 'cert-manager.io',
        scope,
        names: { plural, singular: kind.toLowerCase(), kind, listKind: `${kind}List` },
        versions: [
          {
            name: 'v1',
            served: true,
            storage: true,
            schema: { openAPIV3Schema: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } },
          },
        ],
      },
    },
  );
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const deadline = Date.now() + 30_000;
  while ((await kubeRequest(server, 'GET', `/apis/cert-manager.io/v1/${plural}`)).status !== 200) {
    assert.ok(Date.now() < deadline, `${plural}.cert-manager.io served within 30 s`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** cert-manager's namespaced `Certificate` CRD. */
export const installCertificateCrd = (server: KubeApiServer) =>
  installCertManagerCrd(server, 'Certificate', 'Namespaced');

/** cert-manager's cluster-wide `ClusterIssuer` CRD. */
export const installClusterIssuerCrd = (server: KubeApiServer) =>
  installCertManagerCrd(server, 'ClusterIssuer', 'Cluster');

// ---------------------------------------------------------------------------------------------
// Stand-ins for the controllers and kubelets that do not run beside the test API server: they
// write the status a real cluster's controllers would report. Tests that use them say so.

/** The Job controller's report that the Job `name` in `namespace` ended. */
export async function finishJob(
  server: KubeApiServer,
  namespace: string,
  name: string,
  outcome: 'Complete' | 'Failed',
): Promise<void> {
  const now = new Date().toISOString();
  const reason = 'BackoffLimitExceeded';
  const message = 'Job has reached the specified backoff limit';
  const conditions =
    outcome === 'Complete'
      ? [
          { type: 'SuccessCriteriaMet', status: 'True', lastTransitionTime: now },
          { type: 'Complete', status: 'True', lastTransitionTime: now },
        ]
      : [
          { type: 'FailureTarget', status: 'True', reason, message, lastTransitionTime: now },
          { type: 'Failed', status: 'True', reason, message, lastTransitionTime: now },
        ];
  const patched = await kubeRequest(
    server,
    'PATCH',
    `/apis/batch/v1/namespaces/${namespace}/jobs/${name}/status`,
    {
      status: {
        startTime: now,
        ...(outcome === 'Complete' ? { completionTime: now, succeeded: 1 } : { failed: 4 }),
        conditions,
      },
    },
    'application/merge-patch+json',
  );
  assert.equal(patched.status, 200, JSON.stringify(patched.body));
}

/** The names of the Jobs in `namespace` whose component label is `component`, oldest first. */
export async function jobsOf(server: KubeApiServer, namespace: string, component: string): Promise<string[]> {
  const list = await kubeRequest(
    server,
    'GET',
    `/apis/batch/v1/namespaces/${namespace}/jobs?labelSelector=${encodeURIComponent(`app.kubernetes.io/component=${component}`)}`,
  );
  assert.equal(list.status, 200, JSON.stringify(list.body));
  return (list.body.items as { metadata: { name: string; creationTimestamp: string } }[])
    .sort((a, b) => a.metadata.creationTimestamp.localeCompare(b.metadata.creationTimestamp))
    .map((item) => item.metadata.name);
}

/** The Deployment controller's and kubelets' report that every Deployment in `namespace` rolled out. */
export async function finishRollouts(server: KubeApiServer, namespace: string): Promise<void> {
  const list = await kubeRequest(server, 'GET', `/apis/apps/v1/namespaces/${namespace}/deployments`);
  for (const item of list.body.items as {
    metadata: { name: string; generation: number };
    spec: { replicas: number };
  }[]) {
    const replicas = item.spec.replicas;
    const patched = await kubeRequest(
      server,
      'PATCH',
      `/apis/apps/v1/namespaces/${namespace}/deployments/${item.metadata.name}/status`,
      {
        status: {
          observedGeneration: item.metadata.generation,
          replicas,
          updatedReplicas: replicas,
          readyReplicas: replicas,
          availableReplicas: replicas,
        },
      },
      'application/merge-patch+json',
    );
    assert.equal(patched.status, 200, JSON.stringify(patched.body));
  }
}
