/**
 * Driving the dashboard in Debian's Chromium: signed-in pages, screenshots kept as test
 * artifacts (and checked not to be blank), and axe-core's accessibility rules run in the page.
 */
import { randomUUID } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { hashPassword } from '../../core/crypto.ts';
import type { Db } from '../../core/db.ts';
import type { TestApp } from './app.ts';

export const ARTIFACTS = path.resolve(import.meta.dirname, '..', '..', 'test-artifacts', 'dashboard');

export interface PasswordUser {
  userId: string;
  email: string;
  password: string;
}

/** A verified user who signs in with a password; staff when `staffRole` is set. */
export async function createPasswordUser(
  db: Db,
  options: { staffRole?: 'ops' | 'admin'; email?: string; name?: string } = {},
): Promise<PasswordUser> {
  const email = options.email ?? `person-${randomUUID().slice(0, 8)}@example.test`;
  const password = `pw-${randomUUID()}`;
  const user = await db.user.create({
    data: {
      email,
      name: options.name ?? 'Test Person',
      passwordHash: await hashPassword(password),
      emailVerifiedAt: new Date(),
      staffRole: options.staffRole ?? null,
    },
  });
  return { userId: user.id, email, password };
}

/** A browser context signed in as `user` through the sign-in form, on the page it lands on. */
export async function signedInPage(
  browser: Browser,
  app: TestApp,
  user: PasswordUser,
  viewport = { width: 1280, height: 860 },
): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser.newContext({ viewport, baseURL: app.url });
  const page = await context.newPage();
  failOnPageErrors(page);
  await page.goto('/dashboard/sign-in');
  await page.getByLabel('E-mail').fill(user.email);
  await page.getByLabel('Password').fill(user.password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL((url) => !url.pathname.endsWith('/sign-in'));
  return { context, page };
}

const pageErrors = new WeakMap<Page, string[]>();

/** Records the page's uncaught errors, for `assertNoPageErrors`. */
export function failOnPageErrors(page: Page): void {
  const errors: string[] = [];
  pageErrors.set(page, errors);
  page.on('pageerror', (error) => errors.push(error.message));
}

/** Fails when the page threw anything since `failOnPageErrors`. */
export function assertNoPageErrors(page: Page): void {
  const errors = pageErrors.get(page) ?? [];
  if (errors.length > 0) throw new Error(`the page threw: ${errors.join('; ')}`);
}

/**
 * Saves a full-page screenshot as test-artifacts/dashboard/<name>.png and checks it is not
 * blank: the picture, decoded in the browser, must have many distinct colours.
 */
export async function screenshot(page: Page, name: string): Promise<string> {
  await mkdir(ARTIFACTS, { recursive: true });
  const file = path.join(ARTIFACTS, `${name}.png`);
  const png = await page.screenshot({ path: file, fullPage: true });
  const colours = await page.evaluate(async (base64) => {
    const image = new Image();
    image.src = `data:image/png;base64,${base64}`;
    await image.decode();
    const canvas = document.createElement('canvas');
    canvas.width = image.width;
    canvas.height = image.height;
    const context = canvas.getContext('2d');
    if (!context) return 0;
    context.drawImage(image, 0, 0);
    const pixels = context.getImageData(0, 0, image.width, image.height).data;
    const seen = new Set<number>();
    for (let i = 0; i < pixels.length && seen.size < 1000; i += 4 * 7) {
      seen.add(((pixels[i] ?? 0) << 16) | ((pixels[i + 1] ?? 0) << 8) | (pixels[i + 2] ?? 0));
    }
    return seen.size;
  }, png.toString('base64'));
  if (colours < 20) throw new Error(`screenshot ${name} looks blank (${colours} colours)`);
  return file;
}

export interface AxeViolation {
  id: string;
  impact: string | null;
  help: string;
  nodes: { target: string[] }[];
}

const axeSource = readFile(
  path.resolve(import.meta.dirname, '..', '..', 'node_modules', 'axe-core', 'axe.min.js'),
  'utf8',
);

/** axe-core's WCAG A/AA rules in the page; the serious and critical violations. */
export async function seriousAccessibilityViolations(page: Page): Promise<AxeViolation[]> {
  await page.addScriptTag({ content: await axeSource });
  const violations = await page.evaluate(async () => {
    const axe = (
      window as unknown as {
        axe: { run: (context: Document, options: object) => Promise<{ violations: AxeViolation[] }> };
      }
    ).axe;
    const result = await axe.run(document, {
      runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] },
    });
    return result.violations.map((v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      nodes: v.nodes.map((n) => ({ target: n.target })),
    }));
  });
  return violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
}
