/**
 * The dashboard's main story in Debian's Chromium, against the real API, PostgreSQL and a
 * real job runner provisioning to the dry-run target (billing provider `none`): a customer
 * signs up and orders a server, staff approve the payment, the customer watches it provision
 * to `running` in the live timeline, ops suspend and resume it, and a viewer of the
 * organization sees the server without any action. Each main page is saved as a screenshot
 * (test-artifacts/dashboard/) and checked for blankness and for serious axe violations.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { makeOutboxMailer, type OutboxMailer } from '../../api/auth/mailer.ts';
import { makeMasterKey, makeSecretBox } from '../../core/crypto.ts';
import { makeLogger } from '../../core/log.ts';
import { startWorker } from '../../core/worker.ts';
import { provisionerTasks } from '../../provisioner/tasks.ts';
import { startTestApp, type TestApp } from '../support/app.ts';
import { launchChromium } from '../support/browser.ts';
import {
  assertNoPageErrors,
  createPasswordUser,
  failOnPageErrors,
  type PasswordUser,
  screenshot,
  seriousAccessibilityViolations,
  signedInPage,
} from '../support/dashboard.ts';
import { makeTestDatabase, type TestDatabase } from '../support/db.ts';

const log = makeLogger({ log: { level: 'error', format: 'json' } });
const box = makeSecretBox([makeMasterKey('test')]);

let database: TestDatabase;
let app: TestApp;
let outbox: OutboxMailer;
let worker: Awaited<ReturnType<typeof startWorker>>;

before(async () => {
  database = await makeTestDatabase();
  outbox = makeOutboxMailer({ from: 'test@woolly.test', log });
  app = await startTestApp(database, {}, { mailer: outbox });
  worker = await startWorker({
    databaseUrl: database.url,
    concurrency: 2,
    log,
    tasks: provisionerTasks({ db: database.db, box, log, waitPollMs: 100 }),
    crontab: '',
    pollIntervalMs: 50,
  });
});

after(async () => {
  await worker?.release();
  await app?.release();
  await database?.release();
});

async function assertAccessible(page: Page, name: string): Promise<void> {
  const violations = await seriousAccessibilityViolations(page);
  assert.deepEqual(
    violations.map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(' ')).join(', ')})`),
    [],
    `${name} has serious accessibility violations`,
  );
}

/** The link of the last mail sent to `to`, pointed at this test's server. */
function mailedLink(to: string): string {
  const mail = outbox.sent.findLast((sent) => sent.to === to);
  assert.ok(mail, `a mail to ${to}`);
  const match = /https?:\/\/\S+(\/dashboard\/#[a-z-]+=[A-Za-z0-9_-]+)/.exec(mail.text);
  assert.ok(match, mail.text);
  return `${app.url}${match[1]}`;
}

test('a customer orders a server and watches it provision; ops suspend and resume it; a viewer sees no action', async (t) => {
  const browser = (await launchChromium(t)) as Browser | null;
  if (!browser) return;
  try {
    const ops = await createPasswordUser(database.db, { staffRole: 'ops' });
    const customer: PasswordUser = {
      userId: '',
      email: 'organizer@example.test',
      password: 'a long enough password',
    };

    // Sign up, confirm the address through the mailed link, sign in.
    const visitor = await browser.newContext({ baseURL: app.url, viewport: { width: 1280, height: 860 } });
    const page = await visitor.newPage();
    failOnPageErrors(page);
    await page.goto('/dashboard/sign-up');
    await page.getByLabel('Your name').fill('Ada Organizer');
    await page.getByLabel('E-mail').fill(customer.email);
    await page.getByLabel('Password').fill(customer.password);
    await page.getByRole('button', { name: 'Create account' }).click();
    await page.getByRole('heading', { name: 'Check your mail' }).waitFor();
    await page.goto(mailedLink(customer.email));
    await page.getByText('Your e-mail address is confirmed').waitFor();
    await page.goto('/dashboard/sign-in');
    await page.getByLabel('E-mail').fill(customer.email);
    await page.getByLabel('Password').fill(customer.password);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL((url) => !url.pathname.endsWith('/sign-in'));

    // Order: first an organization, then the plan, an add-on and the domain.
    await page.goto('/dashboard/order');
    await page.getByLabel('Name', { exact: true }).fill('Chess Club');
    await page.getByLabel('Short name (for addresses)').fill('chess-club');
    await page.getByRole('button', { name: 'Create organization' }).click();
    await page.getByRole('radio', { name: /community/i }).check();
    await page.getByLabel('Domain', { exact: true }).fill('chess.woolly.test');
    await page.getByText('The domain can never be changed.').waitFor();
    await page.getByRole('button', { name: 'Order server' }).click();
    await page.getByRole('link', { name: 'Follow chess.woolly.test' }).click();
    await page.waitForURL(/\/dashboard\/instances\/[0-9a-f-]{36}$/);
    const instanceId = page.url().split('/').at(-1) ?? '';
    await page.getByRole('heading', { name: /chess\.woolly\.test/ }).waitFor();
    await page.getByText('pending payment').first().waitFor();
    await page.locator('.live-live').waitFor();

    // Staff approve the payment on the orders page; the customer's open page follows live.
    const staff = await signedInPage(browser, app, ops);
    await staff.page.goto('/dashboard/orders');
    await staff.page.getByRole('button', { name: 'Approve payment for chess.woolly.test' }).click();

    await page
      .getByRole('heading', { name: /chess\.woolly\.test/ })
      .getByText('running')
      .waitFor({ timeout: 30_000 });
    const provision = page.getByRole('article', { name: 'provision operation' });
    await provision.getByText('succeeded').first().waitFor();
    assert.match((await provision.textContent()) ?? '', /apply-workloads: succeeded/);
    assert.match((await provision.textContent()) ?? '', /\d+(\.\d)? (ms|s)/, 'steps show their durations');
    const events = await page.locator('ol.events li').allTextContents();
    assert.ok(
      events.some((line) => line.includes('instance.running')),
      events.join('\n'),
    );
    await screenshot(page, 'portal-server');
    await assertAccessible(page, 'the server page');
    assertNoPageErrors(page);

    // Ops: the fleet, then suspend and resume the server from its page.
    await staff.page.goto('/dashboard/fleet');
    await staff.page.getByRole('link', { name: 'chess.woolly.test' }).waitFor();
    await screenshot(staff.page, 'ops-fleet');
    await assertAccessible(staff.page, 'the fleet page');
    await staff.page.getByRole('link', { name: 'chess.woolly.test' }).click();
    await staff.page.getByRole('button', { name: 'Suspend' }).click();
    await staff.page.getByLabel('Reason (optional)').fill('Spam wave under review');
    await staff.page.getByRole('dialog').getByRole('button', { name: 'Suspend' }).click();
    await staff.page
      .getByRole('heading', { name: /chess\.woolly\.test/ })
      .getByText('suspended')
      .waitFor({ timeout: 30_000 });
    assert.equal(
      (await database.db.instance.findUniqueOrThrow({ where: { id: instanceId } })).status,
      'suspended',
    );
    await staff.page.locator('p.warning', { hasText: 'Spam wave under review' }).waitFor();
    await screenshot(staff.page, 'ops-server');
    await assertAccessible(staff.page, 'the server page for ops');
    await staff.page.getByRole('button', { name: 'Resume' }).click();
    await staff.page
      .getByRole('heading', { name: /chess\.woolly\.test/ })
      .getByText('running')
      .waitFor({ timeout: 30_000 });
    assert.equal(
      (await database.db.instance.findUniqueOrThrow({ where: { id: instanceId } })).status,
      'running',
    );
    assertNoPageErrors(staff.page);

    // A viewer of the organization sees the server and its timeline, and no action.
    const viewer = await createPasswordUser(database.db);
    const instance = await database.db.instance.findUniqueOrThrow({ where: { id: instanceId } });
    await database.db.membership.create({
      data: { organizationId: instance.organizationId, userId: viewer.userId, role: 'viewer' },
    });
    const seen = await signedInPage(browser, app, viewer);
    await seen.page.goto(`/dashboard/instances/${instanceId}`);
    await seen.page.getByRole('heading', { name: /chess\.woolly\.test/ }).waitFor();
    await seen.page.getByRole('article', { name: 'provision operation' }).waitFor();
    assert.equal(await seen.page.getByRole('group', { name: 'Actions' }).getByRole('button').count(), 0);
    assert.equal(await seen.page.getByRole('checkbox').and(seen.page.locator(':enabled')).count(), 0);
    assertNoPageErrors(seen.page);
  } finally {
    await browser.close();
  }
});
