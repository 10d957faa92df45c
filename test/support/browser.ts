// Debian's chromium driven by playwright-core (never a downloaded browser), headless, with a fresh
// profile (playwright makes and removes it) and no background networking (this machine has no network beyond loopback).
import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';
import { skipUnless } from './skip.js';

export const CHROMIUM = '/usr/bin/chromium';

export function browserSkipReason(): string | false {
  return skipUnless(existsSync(CHROMIUM) ? null : 'chromium is not installed (Debian package chromium, .ci/apt-web.txt)');
}

export interface TestBrowser {
  browser: Browser;
  close(): Promise<void>;
}

export async function launchChromium(): Promise<TestBrowser> {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync',
    ],
  });
  return {
    browser,
    async close() {
      await browser.close().catch(() => {});
    },
  };
}
