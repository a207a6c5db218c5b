/**
 * Every route × every kind of caller × own or foreign organization. The expected outcome
 * of each cell is written out here, independently of the policy code, and the test asserts
 * that nothing leaks: a foreign or unreachable resource answers 404 (never 403 or 200), and
 * lists hold only what the caller may see.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { findOperation, openApiDocument } from '../../api/openapi.ts';
import { hashToken, makeMasterKey, makeSecretBox } from '../../core/crypto.ts';
import { registerCluster } from '../../provisioner/clusters.ts';
import { backupLocation } from '../../provisioner/manifests/render-backup.ts';
import { call, startTestApp, type TestApp } from '../support/app.ts';
import { makeTestDatabase, type TestDatabase } from '../support/db.ts';
import { createOrganization, createUserWithToken } from '../support/factories.ts';

type Caller =
  | 'anonymous'
  | 'outsider'
  | 'viewer'
  | 'billing'
  | 'admin'
  | 'owner'
  | 'staff-ops'
  | 'staff-admin';
const CALLERS: Caller[] = [
  'anonymous',
  'outsider',
  'viewer',
  'billing',
  'admin',
  'owner',
  'staff-ops',
  'staff-admin',
];
const MEMBERS: Caller[] = ['viewer', 'billing', 'admin', 'owner'];
const STAFF: Caller[] = ['staff-ops', 'staff-admin'];

let database: TestDatabase;
let app: TestApp;
const tokens = new Map<Caller, string>();
let org: string;
let foreignOrg: string;
let instanceId: string;
let orderId: string;
let foreignInstanceId: string;
/** Custom domains: a verified one of the organization, one of the foreign organization, one per caller to remove. */
let verifiedDomainId: string;
let foreignDomainId: string;
const removableDomainIds = new Map<Caller, string>();
/** What the member and invitation routes act on, made in `before`. */
const people = { viewerId: '', removableByOwner: '', removableByStaff: '' };
const invitations = { revocable: '', foreign: '' };
const MISADDRESSED_INVITATION_TOKEN = 'matrix-invitation-sent-to-someone-else';
/** Servers changed by the instance routes: one per route and caller, so no caller's change meets another's. */
const servers = new Map<string, string>();
const serverOf = (route: string, caller: Caller) => servers.get(`${route}:${caller}`) as string;
let operationId: string;
let othersTokenId: string;
const unpaidOrders = new Map<Caller, string>();
/** A running fleet upgrade, made in `before`, that the staff rows read and stop. */
let fleetUpgradeId: string;
/** A completed backup in a cluster's backup bucket (never fetched: the rows stop at the redirect). */
const completedBackup = { instanceId: '', backupId: '' };
const masterKey = makeMasterKey('matrix');

before(async () => {
  database = await makeTestDatabase();
  app = await startTestApp(database, {
    WOOLLY_MASTER_KEYS: `${masterKey.id}:${masterKey.key.toString('base64')}`,
  });
  const owner = await createUserWithToken(database.db);
  org = await createOrganization(database.db, owner.userId, 'owner');
  tokens.set('owner', owner.token);
  for (const role of ['viewer', 'billing', 'admin'] as const) {
    const user = await createUserWithToken(database.db);
    await database.db.membership.create({ data: { organizationId: org, userId: user.userId, role } });
    tokens.set(role, user.token);
    if (role === 'viewer') people.viewerId = user.userId;
  }
  for (const key of ['removableByOwner', 'removableByStaff'] as const) {
    const user = await createUserWithToken(database.db);
    await database.db.membership.create({
      data: { organizationId: org, userId: user.userId, role: 'viewer' },
    });
    people[key] = user.userId;
  }
  const outsider = await createUserWithToken(database.db);
  foreignOrg = await createOrganization(database.db, outsider.userId, 'owner');
  tokens.set('outsider', outsider.token);
  tokens.set('staff-ops', (await createUserWithToken(database.db, { staffRole: 'ops' })).token);
  tokens.set('staff-admin', (await createUserWithToken(database.db, { staffRole: 'admin' })).token);
  const invite = (organizationId: string, email: string, token: string) =>
    database.db.invitation.create({
      data: {
        organizationId,
        email,
        role: 'viewer',
        tokenHash: hashToken(token),
        expiresAt: new Date(Date.now() + 86_400_000),
      },
    });
  await invite(org, 'someone-else@example.test', MISADDRESSED_INVITATION_TOKEN);
  invitations.revocable = (await invite(org, 'revocable@example.test', randomUUID())).id;
  invitations.foreign = (await invite(foreignOrg, 'foreign@example.test', randomUUID())).id;

  const placed = await call(`${app.url}/v1/orders`, {
    token: owner.token,
    body: { organizationId: org, plan: 'starter', domain: 'matrix-own.woolly.test' },
  });
  instanceId = placed.body.instanceId;
  orderId = placed.body.id;
  const foreign = await call(`${app.url}/v1/orders`, {
    token: outsider.token,
    body: { organizationId: foreignOrg, plan: 'starter', domain: 'matrix-foreign.woolly.test' },
  });
  foreignInstanceId = foreign.body.instanceId;

  const claim = (organizationId: string, hostname: string, verifiedAt: Date | null = null) =>
    database.db.customDomain.create({
      data: { organizationId, hostname, verificationToken: 't', verifiedAt },
    });
  verifiedDomainId = (await claim(org, 'matrix-own.example', new Date())).id;
  foreignDomainId = (await claim(foreignOrg, 'matrix-foreign.example')).id;
  for (const caller of CALLERS) {
    removableDomainIds.set(caller, (await claim(org, `remove-${caller}.matrix.example`)).id);
  }

  const starter = await database.db.plan.findUniqueOrThrow({ where: { code: 'starter' } });
  const storage = await database.db.addonType.findUniqueOrThrow({ where: { code: 'object_storage' } });
  const server = (
    route: string,
    status: 'running' | 'suspended' | 'deleting' | 'failed',
    options: { addon?: boolean; organizationId?: string } = {},
  ) =>
    Promise.all(
      CALLERS.map(async (caller) => {
        const instance = await database.db.instance.create({
          data: {
            organizationId: options.organizationId ?? org,
            planId: starter.id,
            domain: `${route}-${caller}-${randomUUID().slice(0, 6)}.woolly.test`,
            mastodonVersion: 'v4.5.11',
            status,
            spec: { addons: options.addon ? ['object_storage'] : [] },
            deleteAfter: status === 'deleting' ? new Date(Date.now() + 86_400_000) : null,
            ...(options.addon ? { addons: { create: { addonTypeId: storage.id } } } : {}),
          },
        });
        servers.set(`${route}:${caller}`, instance.id);
      }),
    );
  await server('plan', 'running');
  await server('upgrade', 'running');
  await server('add-addon', 'running');
  await server('remove-addon', 'running', { addon: true });
  await server('suspend', 'running');
  await server('resume', 'suspended');
  await server('delete', 'running');
  await server('restore', 'deleting');
  await server('backup', 'running');
  await server('retry', 'failed');
  await server('foreign', 'running', { organizationId: foreignOrg });
  const backups = {
    bucket: 'matrix-backups',
    endpoint: 'https://s3.example.test',
    region: 'eu-central-1',
    prefix: 'woolly-backups',
  };
  const backupCluster = await registerCluster(database.db, makeSecretBox([masterKey]), {
    name: 'matrix-backups',
    region: 'eu-central',
    capacity: 10,
    kubeconfig: `current-context: c
contexts: [{ name: c, context: { cluster: k, user: u } }]
clusters: [{ name: k, cluster: { server: "https://10.0.0.1:6443" } }]
`,
    databaseAdminUrl: 'postgresql://admin:pw@10.0.0.5:5432/postgres',
    settings: { backups },
    backupCredentials: { accessKeyId: 'AKIAMATRIXEXAMPLE', secretAccessKey: 'matrix-secret' },
  });
  completedBackup.instanceId = (
    await database.db.instance.create({
      data: {
        organizationId: org,
        planId: starter.id,
        clusterId: backupCluster.id,
        domain: `download-${randomUUID().slice(0, 6)}.woolly.test`,
        mastodonVersion: 'v4.5.11',
        status: 'running',
        spec: {},
      },
    })
  ).id;
  completedBackup.backupId = randomUUID();
  await database.db.backup.create({
    data: {
      id: completedBackup.backupId,
      instanceId: completedBackup.instanceId,
      status: 'completed',
      location: backupLocation(backups, completedBackup.instanceId, completedBackup.backupId),
      completedAt: new Date(),
    },
  });
  const bystander = await createUserWithToken(database.db);
  othersTokenId = (await database.db.apiToken.findFirstOrThrow({ where: { userId: bystander.userId } })).id;
  operationId = (
    await database.db.operation.create({
      data: { instanceId, kind: 'provision', status: 'succeeded', generation: 1 },
    })
  ).id;
  for (const caller of CALLERS) {
    const placed = await call(`${app.url}/v1/orders`, {
      token: owner.token,
      body: { organizationId: org, plan: 'starter', domain: `unpaid-${caller}.woolly.test` },
    });
    unpaidOrders.set(caller, placed.body.id);
  }
  const ops = await database.db.user.findFirstOrThrow({ where: { staffRole: 'ops' } });
  fleetUpgradeId = (
    await database.db.fleetUpgrade.create({
      data: { targetVersion: 'v4.5.12', waveSize: 10, status: 'running', createdById: ops.id },
    })
  ).id;
});

after(async () => {
  await app.release();
  await database.release();
});

const tokenOf = (caller: Caller) => (caller === 'anonymous' ? undefined : tokens.get(caller));
const expect = (caller: Caller, table: Partial<Record<Caller | 'member' | 'staff', number>>): number =>
  table[caller] ??
  (MEMBERS.includes(caller) ? table.member : undefined) ??
  (STAFF.includes(caller) ? table.staff : undefined) ??
  -1;

interface Route {
  name: string;
  request: (caller: Caller) => {
    path: string;
    method?: string;
    body?: unknown;
    headers?: Record<string, string>;
    /** `manual` for a route that answers with a redirect: the row checks the status only. */
    redirect?: RequestRedirect;
  };
  expected: Partial<Record<Caller | 'member' | 'staff', number>>;
}

const ROUTES: Route[] = [
  {
    name: 'GET an instance of the organization',
    request: () => ({ path: `/v1/instances/${instanceId}` }),
    expected: { anonymous: 401, outsider: 404, member: 200, staff: 200 },
  },
  {
    name: 'GET an order of the organization',
    request: () => ({ path: `/v1/orders/${orderId}` }),
    expected: { anonymous: 401, outsider: 404, member: 200, staff: 200 },
  },
  {
    name: 'GET an instance that does not exist',
    request: () => ({ path: `/v1/instances/${randomUUID()}` }),
    expected: { anonymous: 401, outsider: 404, member: 404, staff: 404 },
  },
  {
    name: 'POST an order for the organization',
    request: (caller) => ({
      path: '/v1/orders',
      body: {
        organizationId: org,
        plan: 'starter',
        domain: `m-${caller}-${randomUUID().slice(0, 6)}.woolly.test`,
      },
    }),
    expected: {
      anonymous: 401,
      outsider: 404,
      viewer: 404,
      billing: 201,
      admin: 201,
      owner: 201,
      staff: 201,
    },
  },
  {
    name: 'POST an order for an organization that does not exist',
    request: (caller) => ({
      path: '/v1/orders',
      body: {
        organizationId: randomUUID(),
        plan: 'starter',
        domain: `n-${caller}-${randomUUID().slice(0, 6)}.woolly.test`,
      },
    }),
    expected: { anonymous: 401, outsider: 404, member: 404, staff: 404 },
  },
  {
    name: 'check a domain for an order of the organization (owners, admins, billing)',
    request: () => ({ path: `/v1/domains/check?organizationId=${org}&domain=matrix-check.woolly.test` }),
    expected: {
      anonymous: 401,
      outsider: 404,
      viewer: 404,
      billing: 200,
      admin: 200,
      owner: 200,
      staff: 200,
    },
  },
  {
    name: 'approve payment of the order (staff only)',
    request: () => ({ path: `/v1/orders/${orderId}/approve-payment`, method: 'POST' }),
    // Customers' tokens lack the admin scope: 403 whatever the order, so nothing leaks. Staff
    // run in CALLERS order: ops approves (200), then admin finds the order paid (409).
    expected: { anonymous: 401, outsider: 403, member: 403, 'staff-ops': 200, 'staff-admin': 409 },
  },
  {
    name: "the organization's members",
    request: () => ({ path: `/v1/organizations/${org}/members` }),
    expected: { anonymous: 401, outsider: 404, member: 200, staff: 200 },
  },
  {
    name: "change a member's role (owners)",
    // The role the member has already: allowed callers get 200 and nothing changes.
    request: () => ({
      path: `/v1/organizations/${org}/members/${people.viewerId}`,
      method: 'PATCH',
      body: { role: 'viewer' },
    }),
    expected: {
      anonymous: 401,
      outsider: 404,
      viewer: 404,
      billing: 404,
      admin: 404,
      owner: 200,
      staff: 200,
    },
  },
  {
    name: 'remove another member (owners)',
    // Runs in CALLERS order: the owner removes one member, staff-ops another; staff-admin then
    // finds that one gone (404).
    request: (caller) => ({
      path: `/v1/organizations/${org}/members/${STAFF.includes(caller) ? people.removableByStaff : people.removableByOwner}`,
      method: 'DELETE',
    }),
    expected: {
      anonymous: 401,
      outsider: 404,
      viewer: 404,
      billing: 404,
      admin: 404,
      owner: 204,
      'staff-ops': 204,
      'staff-admin': 404,
    },
  },
  {
    name: 'invite someone to the organization (owners, admins)',
    request: (caller) => ({
      path: `/v1/organizations/${org}/invitations`,
      body: { email: `invitee-${caller}-${randomUUID().slice(0, 6)}@example.test`, role: 'viewer' },
    }),
    expected: {
      anonymous: 401,
      outsider: 404,
      viewer: 404,
      billing: 404,
      admin: 201,
      owner: 201,
      staff: 201,
    },
  },
  {
    name: 'invite an owner (owners; an admin is refused the role)',
    request: (caller) => ({
      path: `/v1/organizations/${org}/invitations`,
      body: { email: `owner-${caller}-${randomUUID().slice(0, 6)}@example.test`, role: 'owner' },
    }),
    expected: {
      anonymous: 401,
      outsider: 404,
      viewer: 404,
      billing: 404,
      admin: 422,
      owner: 201,
      staff: 201,
    },
  },
  {
    name: "the organization's invitations (owners, admins)",
    request: () => ({ path: `/v1/organizations/${org}/invitations` }),
    expected: {
      anonymous: 401,
      outsider: 404,
      viewer: 404,
      billing: 404,
      admin: 200,
      owner: 200,
      staff: 200,
    },
  },
  {
    name: 'revoke an invitation of the organization (owners, admins)',
    // Revoking a revoked invitation changes nothing, so every allowed caller gets 204.
    request: () => ({
      path: `/v1/organizations/${org}/invitations/${invitations.revocable}`,
      method: 'DELETE',
    }),
    expected: {
      anonymous: 401,
      outsider: 404,
      viewer: 404,
      billing: 404,
      admin: 204,
      owner: 204,
      staff: 204,
    },
  },
  {
    name: "revoke another organization's invitation through this one",
    request: () => ({
      path: `/v1/organizations/${org}/invitations/${invitations.foreign}`,
      method: 'DELETE',
    }),
    expected: { anonymous: 401, outsider: 404, member: 404, staff: 404 },
  },
  {
    name: 'accept an invitation sent to another address',
    request: () => ({ path: '/v1/invitations/accept', body: { token: MISADDRESSED_INVITATION_TOKEN } }),
    expected: { anonymous: 401, outsider: 403, member: 403, staff: 403 },
  },
  {
    name: "the organization's audit log (owners)",
    request: () => ({ path: `/v1/organizations/${org}/audit-log` }),
    expected: {
      anonymous: 401,
      outsider: 404,
      viewer: 404,
      billing: 404,
      admin: 404,
      owner: 200,
      staff: 200,
    },
  },
  {
    name: 'the fleet audit log (staff)',
    request: () => ({ path: '/v1/audit-log' }),
    expected: { anonymous: 401, outsider: 403, member: 403, staff: 200 },
  },
  {
    name: 'list organizations',
    request: () => ({ path: '/v1/organizations' }),
    expected: { anonymous: 401, outsider: 200, member: 200, staff: 200 },
  },
  {
    name: 'list tokens (own only)',
    request: () => ({ path: '/v1/tokens' }),
    expected: { anonymous: 401, outsider: 200, member: 200, staff: 200 },
  },
  {
    name: "the organization's custom domains",
    request: () => ({ path: `/v1/organizations/${org}/domains` }),
    expected: { anonymous: 401, outsider: 404, member: 200, staff: 200 },
  },
  {
    name: 'custom domains of an organization that does not exist',
    request: () => ({ path: `/v1/organizations/${randomUUID()}/domains` }),
    expected: { anonymous: 401, outsider: 404, member: 404, staff: 404 },
  },
  {
    name: 'claim a custom domain for the organization (owners, admins)',
    request: (caller) => ({
      path: `/v1/organizations/${org}/domains`,
      body: { hostname: `claim-${caller}-${randomUUID().slice(0, 6)}.example` },
    }),
    expected: {
      anonymous: 401,
      outsider: 404,
      viewer: 404,
      billing: 404,
      admin: 201,
      owner: 201,
      staff: 201,
    },
  },
  {
    // Verified already, so it answers without a DNS lookup.
    name: 'verify a custom domain of the organization (owners, admins)',
    request: () => ({ path: `/v1/organizations/${org}/domains/${verifiedDomainId}/verify`, method: 'POST' }),
    expected: {
      anonymous: 401,
      outsider: 404,
      viewer: 404,
      billing: 404,
      admin: 200,
      owner: 200,
      staff: 200,
    },
  },
  {
    name: "verify another organization's custom domain through the organization",
    request: () => ({ path: `/v1/organizations/${org}/domains/${foreignDomainId}/verify`, method: 'POST' }),
    expected: { anonymous: 401, outsider: 404, member: 404, staff: 404 },
  },
  {
    name: 'remove a custom domain of the organization (owners, admins)',
    request: (caller) => ({
      path: `/v1/organizations/${org}/domains/${removableDomainIds.get(caller)}`,
      method: 'DELETE',
    }),
    expected: {
      anonymous: 401,
      outsider: 404,
      viewer: 404,
      billing: 404,
      admin: 204,
      owner: 204,
      staff: 204,
    },
  },
  {
    name: "remove another organization's custom domain through the organization",
    request: () => ({ path: `/v1/organizations/${org}/domains/${foreignDomainId}`, method: 'DELETE' }),
    expected: { anonymous: 401, outsider: 404, member: 404, staff: 404 },
  },
  {
    name: "the instance's operations, manifests, add-on stack and backups (members)",
    request: (caller) => ({
      path: `/v1/instances/${instanceId}/${['operations', 'manifests', 'addon-stack', 'backups'][CALLERS.indexOf(caller) % 4]}`,
    }),
    expected: { anonymous: 401, outsider: 404, member: 200, staff: 200 },
  },
  {
    name: 'an operation of the instance',
    request: () => ({ path: `/v1/operations/${operationId}` }),
    expected: { anonymous: 401, outsider: 404, member: 200, staff: 200 },
  },
  {
    name: 'change the plan (owner, admin, billing)',
    request: (caller) => ({
      path: `/v1/instances/${serverOf('plan', caller)}`,
      method: 'PATCH',
      headers: { 'if-match': '"1"' },
      body: { plan: 'community' },
    }),
    expected: {
      anonymous: 401,
      outsider: 404,
      viewer: 403,
      billing: 202,
      admin: 202,
      owner: 202,
      staff: 202,
    },
  },
  {
    name: 'upgrade Mastodon (owner, admin)',
    request: (caller) => ({
      path: `/v1/instances/${serverOf('upgrade', caller)}`,
      method: 'PATCH',
      headers: { 'if-match': '"1"' },
      body: { mastodonVersion: 'v4.5.12' },
    }),
    expected: {
      anonymous: 401,
      outsider: 404,
      viewer: 403,
      billing: 403,
      admin: 202,
      owner: 202,
      staff: 202,
    },
  },
  {
    name: "change another organization's server",
    request: (caller) => ({
      path: `/v1/instances/${serverOf('foreign', caller)}`,
      method: 'PATCH',
      headers: { 'if-match': '"1"' },
      body: { plan: 'community' },
    }),
    expected: { anonymous: 401, outsider: 202, member: 404, staff: 202 },
  },
  {
    name: 'add an add-on (owner, admin, billing)',
    request: (caller) => ({
      path: `/v1/instances/${serverOf('add-addon', caller)}/addons`,
      body: { code: 'object_storage' },
    }),
    expected: {
      anonymous: 401,
      outsider: 404,
      viewer: 403,
      billing: 202,
      admin: 202,
      owner: 202,
      staff: 202,
    },
  },
  {
    name: 'remove an add-on (owner, admin, billing)',
    request: (caller) => ({
      path: `/v1/instances/${serverOf('remove-addon', caller)}/addons/object_storage`,
      method: 'DELETE',
    }),
    expected: {
      anonymous: 401,
      outsider: 404,
      viewer: 403,
      billing: 202,
      admin: 202,
      owner: 202,
      staff: 202,
    },
  },
  {
    name: 'suspend a server (staff; customers lack the admin scope)',
    request: (caller) => ({ path: `/v1/instances/${serverOf('suspend', caller)}/suspend`, method: 'POST' }),
    expected: { anonymous: 401, outsider: 403, member: 403, staff: 202 },
  },
  {
    name: 'resume a server (staff)',
    request: (caller) => ({ path: `/v1/instances/${serverOf('resume', caller)}/resume`, method: 'POST' }),
    expected: { anonymous: 401, outsider: 403, member: 403, staff: 202 },
  },
  {
    name: 'retry a failed server (staff)',
    request: (caller) => ({ path: `/v1/instances/${serverOf('retry', caller)}/retry`, method: 'POST' }),
    expected: { anonymous: 401, outsider: 403, member: 403, staff: 202 },
  },
  {
    name: 'delete a server (owner, admin)',
    request: (caller) => ({ path: `/v1/instances/${serverOf('delete', caller)}`, method: 'DELETE' }),
    expected: {
      anonymous: 401,
      outsider: 404,
      viewer: 403,
      billing: 403,
      admin: 202,
      owner: 202,
      staff: 202,
    },
  },
  {
    name: 'restore a deleted server (owner, admin)',
    request: (caller) => ({ path: `/v1/instances/${serverOf('restore', caller)}/restore`, method: 'POST' }),
    expected: {
      anonymous: 401,
      outsider: 404,
      viewer: 403,
      billing: 403,
      admin: 202,
      owner: 202,
      staff: 202,
    },
  },
  {
    name: 'request a backup (owner, admin)',
    request: (caller) => ({ path: `/v1/instances/${serverOf('backup', caller)}/backups`, method: 'POST' }),
    expected: {
      anonymous: 401,
      outsider: 404,
      viewer: 403,
      billing: 403,
      admin: 202,
      owner: 202,
      staff: 202,
    },
  },
  {
    name: 'download a completed backup (owner, admin)',
    request: () => ({
      path: `/v1/instances/${completedBackup.instanceId}/backups/${completedBackup.backupId}/download`,
      redirect: 'manual',
    }),
    expected: {
      anonymous: 401,
      outsider: 404,
      viewer: 403,
      billing: 403,
      admin: 302,
      owner: 302,
      staff: 302,
    },
  },
  {
    name: 'create an organization (anyone signed in becomes its owner)',
    request: (caller) => ({
      path: '/v1/organizations',
      body: { name: 'Matrix', slug: `matrix-${caller}-${randomUUID().slice(0, 6)}` },
    }),
    expected: { anonymous: 401, outsider: 201, member: 201, staff: 201 },
  },
  {
    name: 'list servers (each sees their own; see below)',
    request: () => ({ path: '/v1/instances' }),
    expected: { anonymous: 401, outsider: 200, member: 200, staff: 200 },
  },
  {
    name: 'create an API token (own)',
    request: () => ({ path: '/v1/tokens', body: { name: 'matrix', scopes: ['instances:read'] } }),
    expected: { anonymous: 401, outsider: 201, member: 201, staff: 201 },
  },
  {
    name: "revoke someone else's API token",
    request: () => ({ path: `/v1/tokens/${othersTokenId}`, method: 'DELETE' }),
    expected: { anonymous: 401, outsider: 404, member: 404, staff: 404 },
  },
  {
    name: 'the session (a token is not a session)',
    request: () => ({ path: '/v1/session' }),
    expected: { anonymous: 401, outsider: 401, member: 401, staff: 401 },
  },
  {
    name: 'cancel an unpaid order (owner, admin, billing)',
    request: (caller) => ({ path: `/v1/orders/${unpaidOrders.get(caller)}/cancel`, method: 'POST' }),
    expected: {
      anonymous: 401,
      outsider: 404,
      viewer: 404,
      billing: 200,
      admin: 200,
      owner: 200,
      staff: 200,
    },
  },
  {
    name: 'the fleet summary (each counts what they may see: test/api/fleet-summary.test.ts)',
    request: () => ({ path: '/v1/fleet/summary' }),
    expected: { anonymous: 401, outsider: 200, member: 200, staff: 200 },
  },
  {
    name: 'list clusters (staff)',
    request: () => ({ path: '/v1/clusters' }),
    expected: { anonymous: 401, outsider: 403, member: 403, staff: 200 },
  },
  {
    name: 'list orders (each sees their organizations’: test/api/orders-list.test.ts)',
    request: () => ({ path: '/v1/orders' }),
    expected: { anonymous: 401, outsider: 200, member: 200, staff: 200 },
  },
  {
    name: "the server's usage (billing:read; members with it: test/api/usage.test.ts)",
    request: () => ({ path: `/v1/instances/${instanceId}/usage` }),
    expected: { anonymous: 401, outsider: 403, member: 403, staff: 200 },
  },
  {
    name: 'fleet-wide usage (staff)',
    request: () => ({ path: '/v1/billing/usage' }),
    expected: { anonymous: 401, outsider: 403, member: 403, staff: 200 },
  },
  {
    name: 'list fleet upgrades (staff)',
    request: () => ({ path: '/v1/fleet-upgrades' }),
    expected: { anonymous: 401, outsider: 403, member: 403, staff: 200 },
  },
  {
    name: 'a fleet upgrade (staff)',
    request: () => ({ path: `/v1/fleet-upgrades/${fleetUpgradeId}` }),
    expected: { anonymous: 401, outsider: 403, member: 403, staff: 200 },
  },
  {
    name: 'stop a fleet upgrade (staff)',
    // Staff run in CALLERS order: ops stops it (200), then admin finds it stopped (409).
    request: () => ({ path: `/v1/fleet-upgrades/${fleetUpgradeId}/stop`, method: 'POST' }),
    expected: { anonymous: 401, outsider: 403, member: 403, 'staff-ops': 200, 'staff-admin': 409 },
  },
  {
    name: 'start a fleet upgrade (staff)',
    // After the stop above, ops starts one (201); admin then finds one running (409).
    request: () => ({ path: '/v1/fleet-upgrades', body: { mastodonVersion: 'v4.5.13', waveSize: 50 } }),
    expected: { anonymous: 401, outsider: 403, member: 403, 'staff-ops': 201, 'staff-admin': 409 },
  },
  {
    // Members' tokens here carry no `billing:read`: 403 whatever the organization, so nothing
    // leaks. Members with the scope, and outsiders with it (404), are in test/api/invoices.test.ts.
    name: "the organization's invoices (members with billing:read)",
    request: () => ({ path: `/v1/organizations/${org}/invoices` }),
    expected: { anonymous: 401, outsider: 403, member: 403, staff: 200 },
  },
  {
    name: 'an invoice that does not exist',
    request: () => ({ path: `/v1/invoices/${randomUUID()}` }),
    expected: { anonymous: 401, outsider: 403, member: 403, staff: 404 },
  },
  {
    name: 'mark an invoice paid (staff)',
    request: () => ({ path: `/v1/invoices/${randomUUID()}/mark-paid`, method: 'POST' }),
    expected: { anonymous: 401, outsider: 403, member: 403, staff: 404 },
  },
  {
    name: 'the billing report (staff)',
    request: () => ({ path: '/v1/billing/report' }),
    expected: { anonymous: 401, outsider: 403, member: 403, staff: 200 },
  },
  {
    name: "open the server's sponsor page (owner, admin, billing)",
    request: () => ({
      path: `/v1/instances/${instanceId}/sponsor-page`,
      method: 'PUT',
      body: { enabled: true },
    }),
    expected: {
      anonymous: 401,
      outsider: 404,
      viewer: 403,
      billing: 200,
      admin: 200,
      owner: 200,
      staff: 200,
    },
  },
  {
    name: "the server's sponsorships (billing:read; members with it: test/api/sponsors.test.ts)",
    // The matrix's customer tokens lack billing:read, so they are refused before any lookup.
    request: () => ({ path: `/v1/instances/${instanceId}/sponsorships` }),
    expected: { anonymous: 401, outsider: 403, member: 403, staff: 200 },
  },
  {
    // Billing provider none here: those who may pay are told Checkout is not how this works.
    name: 'open Checkout for an order (owner, admin, billing)',
    request: () => ({ path: `/v1/orders/${orderId}/checkout`, method: 'POST' }),
    expected: {
      anonymous: 401,
      outsider: 404,
      viewer: 404,
      billing: 409,
      admin: 409,
      owner: 409,
      staff: 409,
    },
  },
  {
    name: "the server's subscription (billing:read)",
    request: () => ({ path: `/v1/instances/${instanceId}/subscription` }),
    expected: { anonymous: 401, outsider: 403, member: 403, staff: 200 },
  },
  {
    name: "keep the server's subscription renewing (owner, admin, billing)",
    request: () => ({
      path: `/v1/instances/${instanceId}/subscription`,
      method: 'PUT',
      body: { cancelAtPeriodEnd: false },
    }),
    expected: {
      anonymous: 401,
      outsider: 404,
      viewer: 403,
      billing: 200,
      admin: 200,
      owner: 200,
      staff: 200,
    },
  },
];

// Before the matrix, whose rows create organizations and tokens.
describe('lists hold only what the caller may see', () => {
  for (const caller of CALLERS.filter((c) => c !== 'anonymous')) {
    test(`${caller}: instances and organizations`, async () => {
      const instances = await call(`${app.url}/v1/instances?limit=200`, { token: tokenOf(caller) });
      const ids = instances.body.data.map((i: { id: string }) => i.id);
      const orgs = await call(`${app.url}/v1/organizations`, { token: tokenOf(caller) });
      const orgIds = orgs.body.data.map((o: { id: string }) => o.id);
      if (STAFF.includes(caller)) {
        assert.ok(ids.includes(instanceId) && ids.includes(foreignInstanceId));
        assert.ok(orgIds.includes(org) && orgIds.includes(foreignOrg));
      } else if (caller === 'outsider') {
        assert.ok(!ids.includes(instanceId) && ids.includes(foreignInstanceId));
        assert.deepEqual(orgIds, [foreignOrg]);
      } else {
        assert.ok(ids.includes(instanceId) && !ids.includes(foreignInstanceId));
        assert.deepEqual(orgIds, [org]);
      }
      const tokensList = await call(`${app.url}/v1/tokens`, { token: tokenOf(caller) });
      assert.equal(tokensList.body.data.length, 1, 'only the caller’s own token');
    });
  }
});

describe('policy matrix', () => {
  for (const route of ROUTES) {
    for (const caller of CALLERS) {
      const status = expect(caller, route.expected);
      test(`${route.name}: ${caller} → ${status}`, async () => {
        const { path, method, body, headers, redirect } = route.request(caller);
        const response = await call(`${app.url}${path}`, {
          method,
          token: tokenOf(caller),
          body,
          headers,
          redirect,
        });
        assert.equal(response.status, status, JSON.stringify(response.body));
      });
    }
  }
});

test('the matrix covers every operation of the API that needs a caller', () => {
  const covered = new Set(
    ROUTES.flatMap((route) =>
      CALLERS.map((caller) => {
        const { path, method } = route.request(caller);
        return findOperation(
          method ?? (route.request(caller).body ? 'POST' : 'GET'),
          new URL(path, 'http://x').pathname,
        )?.operationId;
      }),
    ),
  );
  const needsCaller = Object.values(openApiDocument.paths).flatMap((item) =>
    (['get', 'post', 'put', 'patch', 'delete'] as const).flatMap((method) => {
      const operation = item[method];
      const publicOperation = operation?.security?.length === 0;
      return operation && !publicOperation ? [operation.operationId] : [];
    }),
  );
  // An event stream never ends on success, so its rows (401, 404 foreign, 200 member) are in
  // test/api/instance-events.test.ts.
  const elsewhere = new Set(['streamInstanceEvents']);
  assert.deepEqual(
    needsCaller.filter((operationId) => !covered.has(operationId) && !elsewhere.has(operationId)),
    [],
    'operations missing from ROUTES',
  );
});

test('members see who belongs to their organization and in which role, owners first', async () => {
  const response = await call(`${app.url}/v1/organizations/${org}/members`, { token: tokenOf('viewer') });
  assert.equal(response.status, 200);
  const roles = response.body.data.map((member: { role: string }) => member.role);
  assert.equal(roles[0], 'owner');
  assert.deepEqual([...roles].sort(), ['admin', 'billing', 'owner', 'viewer']);
  const emails = response.body.data.map((member: { email: string }) => member.email);
  assert.equal(new Set(emails).size, 4);
});
