import { access } from 'node:fs/promises';
import type { TestContext } from 'node:test';
import { type Browser, chromium } from 'playwright-core';

const CHROMIUM = '/usr/bin/chromium';

/**
 * Debian's Chromium driven by playwright-core (never a downloaded browser). Missing Chromium
 * fails the test under CI=true (`.ci/run` installs it) and skips it, saying why, elsewhere.
 */
export async function launchChromium(t: TestContext): Promise<Browser | null> {
  const present = await access(CHROMIUM).then(
    () => true,
    () => false,
  );
  if (!present) {
    if (process.env.CI === 'true')
      throw new Error(`${CHROMIUM} is missing: install Debian's chromium package`);
    t.skip(`${CHROMIUM} is missing: apt-get install chromium to run the browser test`);
    return null;
  }
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}
