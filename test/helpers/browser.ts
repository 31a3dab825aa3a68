/**
 * The website's browser tests (against `npm start` and through nginx in the Compose stack): Debian's
 * chromium driven by playwright-core, and the console's sign-in as a person does it.
 */
import { existsSync } from 'node:fs';
import axe from 'axe-core';
import type { Browser, Page } from 'playwright-core';
import { missingProgram } from '@codelab/service-kit/testing';

const CHROMIUM = '/usr/bin/chromium';

/** True when the browser tests skip (missingProgram names what to install; under CI=true it throws). */
export const noChromium: boolean = !existsSync(CHROMIUM) && missingProgram('chromium', 'chromium');

export async function launchChromium(): Promise<Browser> {
  const { chromium } = await import('playwright-core');
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-sync'],
  });
}

/**
 * How long a view may take to appear after a click at most: an upper bound, not a pace (the suite
 * runs beside Docker stacks on two cores: a view that took 1.5 s alone once took over 30 s there).
 */
const APPEAR_TIMEOUT_MS = 90_000;

/**
 * Waits for the element `testId` to be visible; when it never is, fails with what the page showed
 * instead (its address and text: a sign-in error, say), not only that the wait ran out.
 */
export async function appeared(page: Page, testId: string, timeoutMs = APPEAR_TIMEOUT_MS): Promise<void> {
  try {
    await page.getByTestId(testId).waitFor({ timeout: timeoutMs });
  } catch (err) {
    const text = await page.evaluate(() => document.body.textContent ?? '').catch((e: unknown) => `(unreadable: ${(e as Error).message})`);
    throw new Error(`${testId} did not appear at ${page.url()}; the page showed: ${text.replace(/\s+/g, ' ').slice(0, 800)}`, {
      cause: err,
    });
  }
}

/**
 * Opens `url` in a new tab, signs in with the console's form and waits for the conversations list;
 * fails on a page error. `prepare` runs on the tab before it opens the page (a fake clock, listeners).
 */
export async function signIn(
  browser: Browser,
  url: string,
  username: string,
  password: string,
  options: { viewport?: { width: number; height: number }; prepare?: (page: Page) => Promise<void> } = {},
): Promise<Page> {
  const page = await browser.newPage({ viewport: options.viewport ?? { width: 1200, height: 850 } });
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await options.prepare?.(page);
  await page.goto(url);
  await page.getByTestId('signin-username').fill(username);
  await page.getByTestId('signin-password').fill(password);
  await page.getByTestId('signin-submit').click();
  await appeared(page, 'new-conversation');
  if (errors.length > 0) throw new Error(`errors on the page while signing in: ${errors.join('; ')}`);
  return page;
}

export interface AxeViolation {
  id: string;
  impact: string | null;
  help: string;
  /** The offending elements' selectors and axe's explanation, for the failure message. */
  nodes: string[];
}

/**
 * axe-core's WCAG 2.0/2.1 A and AA rules (labels, names, roles, contrast, landmarks…) run on the
 * page as it is now; the violations, empty when it passes.
 */
export async function axeViolations(page: Page): Promise<AxeViolation[]> {
  await page.addScriptTag({ content: axe.source });
  return page.evaluate(async () => {
    const axe = (window as unknown as { axe: { run: (ctx: Document, opts: unknown) => Promise<AxeResults> } }).axe;
    interface AxeResults {
      violations: { id: string; impact: string | null; help: string; nodes: { target: string[]; failureSummary?: string }[] }[];
    }
    const results = await axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } });
    return results.violations.map((v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      nodes: v.nodes.map((n) => `${n.target.join(' ')}: ${n.failureSummary ?? ''}`),
    }));
  });
}
