/**
 * The links the API mails, followed in a real browser (Debian's Chromium): the sign-up link
 * confirms the address, and the invitation link joins the organization once signed in with
 * e-mail and password.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { makeOutboxMailer, type OutboxMailer } from '../../api/auth/mailer.ts';
import { makeLogger } from '../../core/log.ts';
import { call, startTestApp, type TestApp } from '../support/app.ts';
import { launchChromium } from '../support/browser.ts';
import { createPasswordUser } from '../support/dashboard.ts';
import { makeTestDatabase, type TestDatabase } from '../support/db.ts';
import { createOrganization, createUserWithToken } from '../support/factories.ts';

let database: TestDatabase;
let app: TestApp;
let outbox: OutboxMailer;

before(async () => {
  database = await makeTestDatabase();
  outbox = makeOutboxMailer({
    from: 'test@woolly.test',
    log: makeLogger({ log: { level: 'error', format: 'json' } }),
  });
  app = await startTestApp(database, {}, { mailer: outbox });
});

after(async () => {
  await app.release();
  await database.release();
});

/** The dashboard link in the last mail to `to`, pointed at this test's server. */
function linkTo(to: string): string {
  const mail = outbox.sent.findLast((sent) => sent.to === to);
  assert.ok(mail, `a mail to ${to}`);
  const match = /https?:\/\/\S+(\/dashboard\/#[a-z-]+=[A-Za-z0-9_-]+)/.exec(mail.text);
  assert.ok(match, mail.text);
  return `${app.url}${match[1]}`;
}

test('the sign-up link confirms the address in the browser', async (t) => {
  const browser = await launchChromium(t);
  if (!browser) return;
  try {
    const email = 'link-reader@example.test';
    const signedUp = await call(`${app.url}/v1/signup`, {
      body: { email, password: 'a long enough password', name: 'Reader' },
    });
    assert.equal(signedUp.status, 202);
    const page = await browser.newPage();
    await page.goto(linkTo(email));
    await page.getByText('Your e-mail address is confirmed').waitFor({ timeout: 10_000 });
    assert.equal(new URL(page.url()).hash, '', 'the token leaves the address bar');
    const user = await database.db.user.findUniqueOrThrow({ where: { email } });
    assert.ok(user.emailVerifiedAt);

    await page.goto(linkTo(email));
    await page.getByRole('alert').waitFor({ timeout: 10_000 });
    assert.match((await page.getByRole('alert').textContent()) ?? '', /used|expired|unknown/);
  } finally {
    await browser.close();
  }
});

test('the invitation link waits for sign-in, then joins the organization', async (t) => {
  const browser = await launchChromium(t);
  if (!browser) return;
  try {
    const owner = await createUserWithToken(database.db);
    const organizationId = await createOrganization(database.db, owner.userId);
    const invitee = await createPasswordUser(database.db);
    const { email } = invitee;
    const invited = await call(`${app.url}/v1/organizations/${organizationId}/invitations`, {
      token: owner.token,
      body: { email, role: 'admin' },
    });
    assert.equal(invited.status, 201);

    const page = await browser.newPage();
    await page.goto(linkTo(email));
    await page.getByText('Sign in with the invited address').waitFor({ timeout: 10_000 });
    await page.getByLabel('E-mail').fill(invitee.email);
    await page.getByLabel('Password').fill(invitee.password);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByText('Invitation accepted: you joined as admin.').waitFor({ timeout: 10_000 });
    const membership = await database.db.membership.findUnique({
      where: { organizationId_userId: { organizationId, userId: invitee.userId } },
    });
    assert.equal(membership?.role, 'admin');
  } finally {
    await browser.close();
  }
});
