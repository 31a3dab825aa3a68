/**
 * The website at `/` against `npm start` (scripts/start.ts on free ports, embedded defaults), in a
 * real browser (playwright-core with Debian's chromium): sign in (a wrong password shows the error
 * and keeps no token), a conversation streaming token by token, tool calls approved, edited and
 * rejected, a read-only call answered by hand, cancel, the network cut mid-turn (the transcript
 * complete and in order after the reconnect), the operations view for an admin and not for a user,
 * the docs with a runbook anchor, and no token in storage or the URL. Screenshots go to
 * test-results/web/ (looked at, not compared).
 */
import { execFile } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '@codelab/service-kit/testing';
import { appeared, axeViolations, launchChromium, noChromium, signIn } from '../helpers/browser.ts';
import { REPO_ROOT, runProcess } from '../helpers/processes.ts';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.ts';

const SHOTS = path.join(REPO_ROOT, 'test-results', 'web');

describe.skipIf(noChromium)('the web console (npm start, headless Chromium)', { timeout: 120_000 }, () => {
  let dataDir: string;
  let launcher: ReturnType<typeof runProcess>;
  let browser: Browser;
  let web: string;
  let auth: string;
  let gatewayProxy: TcpProxy;
  let adminPassword: string;
  const user = { username: 'webuser', password: 'web-user-password-1' };

  beforeAll(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'codelab-web-'));
    const ports = {
      gateway: await freePort(),
      auth: await freePort(),
      runtime: await freePort(),
      llm: await freePort(),
      web: await freePort(),
    };
    // the browser reaches the gateway through a TCP front the test can cut (a network drop)
    gatewayProxy = await startTcpProxy([`http://127.0.0.1:${ports.gateway}`]);
    web = `http://127.0.0.1:${ports.web}`;
    auth = `http://127.0.0.1:${ports.auth}`;
    launcher = runProcess(['scripts/start.ts'], {
      CODELAB_DATA_DIR: dataDir,
      GATEWAY__PORT: String(ports.gateway),
      AUTH_SERVICE__PORT: String(ports.auth),
      AGENT_RUNTIME__PORT: String(ports.runtime),
      LLM_PROXY__PORT: String(ports.llm),
      WEB__PORT: String(ports.web),
      WEB__GATEWAY_URL: gatewayProxy.url,
      // tokens one by one, slowly enough to see them stream and to cut a turn in the middle
      LLM_PROXY__MOCK_TTFT_MS: '50',
      LLM_PROXY__MOCK_TOKEN_DELAY_MS: '40',
    });
    const started = Date.now();
    while (!/CodeLab Platform is up/.test(launcher.output())) {
      if (launcher.child.exitCode !== null) throw new Error(`launcher exited ${launcher.child.exitCode}:\n${launcher.output()}`);
      if (Date.now() - started > 180_000) throw new Error(`not up in 180 s:\n${launcher.output()}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    adminPassword = (await readFile(path.join(dataDir, 'auth', 'admin-password'), 'utf8')).trim();
    await new Promise<void>((resolve, reject) =>
      execFile(
        process.execPath,
        [
          'services/auth/src/cli.ts',
          'create-user',
          '--username',
          user.username,
          '--email',
          'webuser@example.com',
          '--password',
          user.password,
        ],
        { cwd: REPO_ROOT, env: { ...process.env, CODELAB_DATA_DIR: dataDir } },
        (err, _out, stderr) => (err ? reject(new Error(`create-user: ${stderr}`)) : resolve()),
      ),
    );
    browser = await launchChromium();
    mkdirSync(SHOTS, { recursive: true });
  }, 240_000);

  afterAll(async () => {
    await browser?.close();
    if (launcher && launcher.child.exitCode === null) {
      launcher.child.kill('SIGTERM');
      await launcher.exited();
    }
    await gatewayProxy?.close();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  const signedIn = (username: string, password: string): Promise<Page> => signIn(browser, web, username, password);

  /** Everything a script on the page could read that would hold a token. */
  const storage = (page: Page) =>
    page.evaluate(() => ({
      local: JSON.stringify(localStorage),
      session: JSON.stringify(sessionStorage),
      url: location.href,
      cookie: document.cookie,
    }));

  it('refuses a wrong password with the error shown and no token kept', async () => {
    const page = await browser.newPage();
    await page.goto(web);
    await page.getByTestId('signin-username').fill('admin');
    await page.getByTestId('signin-password').fill('not the password');
    await page.getByTestId('signin-submit').click();
    await expect.poll(async () => page.getByTestId('signin-error').textContent()).toMatch(/invalid|password|credentials/i);
    expect(await storage(page)).toMatchObject({ local: '{}', session: '{}', cookie: '' });
    expect(await page.getByTestId('new-conversation').count()).toBe(0);
    await page.close();
  });

  it('streams an answer token by token, keeps no token in storage or the URL', async () => {
    const page = await signedIn('admin', adminPassword);
    await page.getByTestId('new-conversation').click();
    await page.getByTestId('message-input').waitFor();
    // every text the last assistant message shows while it streams
    await page.evaluate(() => {
      const seen: string[] = [];
      const w = window as unknown as { __seen: string[]; __firstTokenMs?: number };
      w.__seen = seen;
      new MutationObserver(() => {
        const all = document.querySelectorAll('[data-testid="assistant-message"]');
        const text = all[all.length - 1]?.textContent ?? '';
        // milliseconds since the page was opened (navigation start), at the first streamed text
        if (text && w.__firstTokenMs === undefined) w.__firstTokenMs = performance.now();
        if (text && seen.at(-1) !== text) seen.push(text);
      }).observe(document.body, { subtree: true, childList: true, characterData: true });
    });
    const sentAt = Date.now();
    await page.getByTestId('message-input').fill('hello [[mock:words 30]]');
    await page.getByTestId('send').click();
    await expect
      .poll(async () => page.getByTestId('assistant-message').last().textContent(), { timeout: 30_000 })
      .toBe(Array.from({ length: 30 }, (_, i) => `w${i}`).join(' '));
    const wholeMs = Date.now() - sentAt;
    const { seen, fromOpen } = await page.evaluate(() => {
      const w = window as unknown as { __seen: string[]; __firstTokenMs?: number };
      return { seen: w.__seen, fromOpen: w.__firstTokenMs };
    });
    expect(seen.length, `updates seen: ${seen.length}`).toBeGreaterThanOrEqual(5);
    process.stderr.write(
      `web: ${seen.length} streamed updates; first token ${Math.round(fromOpen ?? -1)} ms after the page was opened (sign-in and a new conversation included); whole answer ${wholeMs} ms after send\n`,
    );
    await page.screenshot({ path: path.join(SHOTS, 'conversation.png'), fullPage: true });
    const s = await storage(page);
    expect(s.local).toBe('{}');
    expect(s.session).toBe('{}');
    expect(s.cookie).toBe('');
    expect(s.url).not.toMatch(/token|eyJ/);
    await page.close();
  });

  it('approves, edits and rejects tool calls, answers a read-only call by hand, and cancels a turn', async () => {
    const page = await signedIn('admin', adminPassword);
    await page.getByTestId('new-conversation').click();
    const send = async (text: string) => {
      await page.getByTestId('message-input').fill(text);
      await page.getByTestId('send').click();
    };
    const card = () => page.getByTestId('tool-card').last();

    const answers = () => page.getByTestId('assistant-message').count();
    /** Waits until the turn started by the last action ended in a new answer. */
    const answered = async (before: number) => expect.poll(answers, { timeout: 30_000 }).toBeGreaterThan(before);

    // approve: the call comes back to be run, answered by hand, then the answer
    let before = await answers();
    await send('write it [[mock:tool_call write_file {"path":"a.txt","content":"one"}]]');
    await card().getByTestId('approve').click();
    await card().getByTestId('tool-result-input').waitFor();
    await card().getByTestId('tool-result-input').fill('written');
    await card().getByTestId('tool-result-submit').click();
    await answered(before);

    // edit: new arguments
    before = await answers();
    await send('write again [[mock:tool_call write_file {"path":"b.txt","content":"two"}]]');
    await card().getByTestId('edit').click();
    await card().getByTestId('edit-arguments').fill('{"path":"b.txt","content":"edited"}');
    await card().getByTestId('decision-submit').click();
    await card().getByTestId('tool-result-input').waitFor();
    expect(await card().textContent()).toContain('edited');
    await card().getByTestId('tool-result-input').fill('written');
    await card().getByTestId('tool-result-submit').click();
    await answered(before);

    // reject with feedback: the turn goes on to an answer
    before = await answers();
    const cards = await page.getByTestId('tool-card').count();
    await send('run it [[mock:tool_call execute_command {"command":"rm c.txt"}]]');
    await expect.poll(async () => page.getByTestId('tool-card').count(), { timeout: 30_000 }).toBeGreaterThan(cards);
    await card().getByTestId('reject').click();
    await card().getByTestId('reject-feedback').fill('not that file');
    await card().getByTestId('decision-submit').click();
    await answered(before).catch(async (err) => {
      await page.screenshot({ path: path.join(SHOTS, 'reject-failed.png'), fullPage: true });
      throw err;
    });

    // a read-only call (no approval): the IDE's part, answered by hand
    before = await answers();
    await send('read it [[mock:tool_call read_file {"path":"a.py"}]]');
    await expect.poll(async () => page.getByTestId('tool-card').count(), { timeout: 30_000 }).toBeGreaterThan(cards + 1);
    expect(await card().getByTestId('approve').count()).toBe(0);
    await card().getByTestId('tool-result-input').fill('print("hi")');
    await card().getByTestId('tool-result-submit').click();
    await answered(before);

    // cancel a long answer
    await send('long [[mock:words 400]]');
    await expect.poll(async () => (await page.getByTestId('assistant-message').last().textContent())?.length ?? 0).toBeGreaterThan(5);
    await page.getByTestId('cancel').click();
    await expect.poll(async () => page.getByTestId('cancel').isVisible(), { timeout: 15_000 }).toBe(false);
    const cut = (await page.getByTestId('assistant-message').last().textContent()) ?? '';
    expect(cut.split(' ').length).toBeLessThan(400);
    await page.close();
  });

  it('reconnects by itself after the network drops mid-turn, the transcript complete and in order', async () => {
    const page = await signedIn('admin', adminPassword);
    await page.getByTestId('new-conversation').click();
    await page.getByTestId('message-input').fill('through a drop [[mock:words 60]]');
    await page.getByTestId('send').click();
    await expect
      .poll(async () => (await page.getByTestId('assistant-message').last().textContent())?.split(' ').length ?? 0)
      .toBeGreaterThan(5);
    gatewayProxy.cut();
    const expected = Array.from({ length: 60 }, (_, i) => `w${i}`).join(' ');
    await expect.poll(async () => page.getByTestId('assistant-message').last().textContent(), { timeout: 60_000 }).toBe(expected);
    expect(await page.getByTestId('assistant-message').count()).toBe(1);
    await page.close();
  });

  it('refreshes the access token before it expires, and signing out revokes the refresh token at auth', async () => {
    const answers: { grant: string | null; access?: string; refresh?: string }[] = [];
    const revoked: (string | null)[] = [];
    const page = await signIn(browser, web, 'admin', adminPassword, {
      prepare: async (tab) => {
        // the page's timers on a clock the test moves (time otherwise flows as usual)
        await tab.clock.install();
        tab.on('response', async (r) => {
          if (!r.url().endsWith('/oauth/token') || r.request().method() !== 'POST') return;
          const body = (await r.json().catch(() => ({}))) as { access_token?: string; refresh_token?: string };
          const grant = new URLSearchParams(r.request().postData() ?? '').get('grant_type');
          answers.push({ grant, access: body.access_token, refresh: body.refresh_token });
        });
        tab.on('request', (r) => {
          if (r.url().endsWith('/oauth/revoke')) revoked.push(new URLSearchParams(r.postData() ?? '').get('token'));
        });
      },
    });
    await expect.poll(() => answers.length).toBe(1);
    expect(answers[0]).toMatchObject({ grant: 'password', access: expect.any(String), refresh: expect.any(String) });
    // 20 minutes on: past the refresh point of the 15-minute access token, not past the next one
    await page.clock.fastForward('20:00');
    await expect.poll(() => answers.length, { timeout: 30_000 }).toBe(2);
    expect(answers[1]).toMatchObject({ grant: 'refresh_token', access: expect.any(String), refresh: expect.any(String) });
    expect(answers[1]!.access).not.toBe(answers[0]!.access);
    // the refreshed token is the one in use: a conversation works on it
    await page.getByTestId('new-conversation').click();
    await page.getByTestId('message-input').fill('after a refresh [[mock:words 3]]');
    await page.getByTestId('send').click();
    await expect.poll(async () => page.getByTestId('assistant-message').last().textContent(), { timeout: 30_000 }).toBe('w0 w1 w2');

    await page.getByTestId('nav-signout').click();
    await page.getByTestId('signin-username').waitFor();
    await expect.poll(() => revoked).toEqual([answers[1]!.refresh]);
    // auth refuses both refresh tokens now: the rotated one and the revoked one
    for (const token of [answers[0]!.refresh!, answers[1]!.refresh!]) {
      const res = await fetch(`${auth}/oauth/token`, {
        method: 'POST',
        body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: token, client_id: 'codelab-flutter-app' }),
      });
      expect(res.status).toBe(400);
      expect(((await res.json()) as { error: string }).error).toBe('invalid_grant');
    }
    expect(await storage(page)).toMatchObject({ local: '{}', session: '{}', cookie: '' });
    await page.close();
  });

  it('shows the operations view to an admin and not to a user', async () => {
    const admin = await signedIn('admin', adminPassword);
    await admin.getByTestId('nav-ops').click();
    await expect
      .poll(async () => admin.getByTestId('ops-services').textContent(), { timeout: 20_000 })
      .toMatch(/gateway[\s\S]*runtime|runtime[\s\S]*gateway/);
    await admin.getByTestId('ops-metrics').waitFor();
    await admin.screenshot({ path: path.join(SHOTS, 'operations.png'), fullPage: true });
    await admin.close();

    const plain = await signedIn(user.username, user.password);
    expect(await plain.getByTestId('nav-ops').count()).toBe(0);
    // typed in by hand, without a reload (which would sign out: tokens live in memory only)
    await plain.evaluate(() => {
      history.pushState(null, '', '/ops');
      dispatchEvent(new PopStateEvent('popstate'));
    });
    expect(await plain.getByTestId('ops-services').count()).toBe(0);
    await plain.close();
  });

  it('renders the docs, landing on a runbook from its anchor (as an alert links it), and fits a narrow screen', async () => {
    const page = await browser.newPage({ viewport: { width: 380, height: 800 } });
    await page.goto(`${web}/docs/runbooks#codelabtargetdown`);
    // a fresh page is signed out: signing in keeps the page asked for
    await page.getByTestId('signin-username').fill('admin');
    await page.getByTestId('signin-password').fill(adminPassword);
    await page.getByTestId('signin-submit').click();
    await appeared(page, 'docs-content');
    await expect.poll(async () => page.locator('#codelabtargetdown').count()).toBe(1);
    // scrolled to it: the runbook's heading at the top of the screen
    await expect
      .poll(async () => page.locator('#codelabtargetdown').evaluate((e) => Math.abs(e.getBoundingClientRect().top)))
      .toBeLessThan(200);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    expect(overflow, 'no horizontal scrolling on a narrow screen').toBeLessThanOrEqual(1);
    await page.screenshot({ path: path.join(SHOTS, 'docs-narrow.png') });
    await page.close();
  });

  it('is usable by keyboard alone, and every view passes the axe-core WCAG 2.1 A/AA checks (labels, names, contrast)', async () => {
    const page = await browser.newPage({ viewport: { width: 1200, height: 850 } });
    await page.goto(web);
    await page.getByTestId('signin-username').waitFor();
    const checked: Record<string, Awaited<ReturnType<typeof axeViolations>>> = {};
    checked['sign-in'] = await axeViolations(page);
    // keyboard only: the first field has focus or is reached by Tab, Tab to the password, Enter submits
    for (let i = 0; i < 10 && !(await page.getByTestId('signin-username').evaluate((e) => e === document.activeElement)); i++)
      await page.keyboard.press('Tab');
    await page.keyboard.type('admin');
    await page.keyboard.press('Tab');
    expect(await page.getByTestId('signin-password').evaluate((e) => e === document.activeElement)).toBe(true);
    await page.keyboard.type(adminPassword);
    await page.keyboard.press('Enter');
    await page.getByTestId('new-conversation').waitFor();
    checked.conversations = await axeViolations(page);

    await page.getByTestId('new-conversation').focus();
    await page.keyboard.press('Enter');
    await page.getByTestId('message-input').waitFor();
    await page.getByTestId('message-input').focus();
    await page.keyboard.type('check [[mock:tool_call write_file {"path":"k.txt","content":"x"}]]');
    await page.keyboard.press('Enter');
    await page.getByTestId('tool-card').last().getByTestId('approve').waitFor({ timeout: 30_000 });
    checked['conversation with a tool call'] = await axeViolations(page);
    // the decision by keyboard too
    await page.getByTestId('tool-card').last().getByTestId('reject').focus();
    await page.keyboard.press('Enter');
    await page.getByTestId('tool-card').last().getByTestId('reject-feedback').focus();
    await page.keyboard.type('no');
    await page.getByTestId('tool-card').last().getByTestId('decision-submit').focus();
    await page.keyboard.press('Enter');
    await expect.poll(async () => page.getByTestId('assistant-message').count(), { timeout: 30_000 }).toBeGreaterThan(0);

    await page.getByTestId('nav-ops').focus();
    await page.keyboard.press('Enter');
    await page.getByTestId('ops-services').waitFor({ timeout: 20_000 });
    await page.getByTestId('ops-metrics').waitFor();
    checked.operations = await axeViolations(page);
    await page.getByRole('link', { name: 'Docs' }).focus();
    await page.keyboard.press('Enter');
    await page.getByTestId('docs-content').waitFor();
    checked.docs = await axeViolations(page);

    const failing = Object.entries(checked).filter(([, v]) => v.length > 0);
    expect(failing, JSON.stringify(Object.fromEntries(failing), null, 2)).toEqual([]);
    await page.close();
  });
});
