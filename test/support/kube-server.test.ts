import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { kubeSkipReason, startKubeApiServer } from './kube-server.ts';

// Without the binaries, skip locally (naming build.sh); under CI=true, fail.
const skip = kubeSkipReason();

function kubectl(kubeconfig: string, args: string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      'kubectl',
      [`--kubeconfig=${kubeconfig}`, `--cache-dir=${path.dirname(kubeconfig)}/cache`, ...args],
      { timeout: 60_000 },
      (error, stdout, stderr) => {
        if (error) reject(new Error(`kubectl ${args.join(' ')} failed: ${stderr || error.message}`));
        else resolve(stdout);
      },
    );
    if (input !== undefined) child.stdin?.end(input);
  });
}

function getJson(url: string, token: string, ca: string): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    https
      .get(url, { ca, headers: { authorization: `Bearer ${token}` } }, (response) => {
        let body = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => {
          body += chunk;
        });
        response.on('end', () => resolve({ status: response.statusCode ?? 0, body: JSON.parse(body) }));
      })
      .on('error', reject);
  });
}

interface ManagedFieldsEntry {
  manager: string;
  operation: string;
  fieldsV1?: Record<string, unknown>;
}

test('kubectl server-side apply with field manager woolly creates a Namespace and ConfigMap whose applied fields woolly owns', {
  skip,
  timeout: 180_000,
}, async () => {
  const server = await startKubeApiServer();
  const dir = await mkdtemp(path.join(os.tmpdir(), 'woolly-kubectl-'));
  try {
    const kubeconfig = path.join(dir, 'kubeconfig');
    await writeFile(kubeconfig, server.kubeconfigYaml, { mode: 0o600 });
    assert.doesNotMatch(server.kubeconfigYaml, /insecure-skip-tls-verify/);

    const namespace = `smoke-${randomBytes(4).toString('hex')}`;
    const manifest = [
      'apiVersion: v1',
      'kind: Namespace',
      'metadata:',
      `  name: ${namespace}`,
      '  labels:',
      '    app.kubernetes.io/managed-by: woolly',
      '---',
      'apiVersion: v1',
      'kind: ConfigMap',
      'metadata:',
      '  name: settings',
      `  namespace: ${namespace}`,
      '  labels:',
      '    app.kubernetes.io/managed-by: woolly',
      'data:',
      '  LOCAL_DOMAIN: example.social',
      '',
    ].join('\n');
    const applied = await kubectl(
      kubeconfig,
      ['apply', '--server-side', '--field-manager=woolly', '-f', '-'],
      manifest,
    );
    assert.match(applied, new RegExp(`namespace/${namespace} serverside-applied`));
    assert.match(applied, /configmap\/settings serverside-applied/);

    const configMap = JSON.parse(
      await kubectl(kubeconfig, [
        'get',
        'configmap',
        'settings',
        `--namespace=${namespace}`,
        '--show-managed-fields',
        '-o',
        'json',
      ]),
    ) as { data: Record<string, string>; metadata: { managedFields: ManagedFieldsEntry[] } };
    assert.deepEqual(configMap.data, { LOCAL_DOMAIN: 'example.social' });
    const owners = configMap.metadata.managedFields.filter((entry) => entry.manager === 'woolly');
    assert.equal(owners.length, 1, JSON.stringify(configMap.metadata.managedFields));
    assert.equal(owners[0]?.operation, 'Apply');
    const fields = owners[0]?.fieldsV1 as {
      'f:data'?: Record<string, unknown>;
      'f:metadata'?: { 'f:labels'?: Record<string, unknown> };
    };
    assert.ok(fields['f:data']?.['f:LOCAL_DOMAIN'], JSON.stringify(fields));
    assert.ok(fields['f:metadata']?.['f:labels']?.['f:app.kubernetes.io/managed-by'], JSON.stringify(fields));

    // Node's own HTTPS client trusts the server through the returned CA and admin token.
    const read = await getJson(
      `${server.url}/api/v1/namespaces/${namespace}`,
      server.adminToken,
      server.caCert,
    );
    assert.equal(read.status, 200);
    const managers = (read.body as { metadata: { managedFields?: ManagedFieldsEntry[] } }).metadata
      .managedFields;
    assert.ok(
      managers?.some((entry) => entry.manager === 'woolly' && entry.operation === 'Apply'),
      JSON.stringify(read.body),
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
    await server.release();
  }
});
