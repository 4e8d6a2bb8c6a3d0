import { existsSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';

/** Debian's Chromium: never a downloaded browser. */
export const CHROMIUM = process.env.CHROMIUM_BIN ?? '/usr/bin/chromium';

/**
 * Headless Chromium with the flags this machine needs (its closed network refuses Chromium's
 * background connections).
 */
export async function launchChromium(): Promise<{ browser: Browser; close(): Promise<void> }> {
  if (!existsSync(CHROMIUM)) throw new Error(`Chromium is required for the browser tests: apt-get install -y chromium (or set CHROMIUM_BIN)`);
  // playwright gives the browser a fresh temporary profile of its own and removes it on close
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  return {
    browser,
    async close() {
      await browser.close();
    },
  };
}

/**
 * Where a test's screenshot goes: a temp dir normally; `docs/screenshots/` when
 * UPDATE_SCREENSHOTS=1 (to refresh the README's pictures on purpose, not on every run).
 */
export function screenshotPath(name: string): string {
  const dir = process.env.UPDATE_SCREENSHOTS === '1' ? new URL('../../docs/screenshots/', import.meta.url).pathname : join(tmpdir(), 'wsgw-screenshots');
  mkdirSync(dir, { recursive: true });
  return join(dir, name);
}
