'use strict';
// The demo page in a real browser: Debian's chromium, headless, driven by playwright-core.
// A real gateway (--static demo, --admin) and a real wsgw-chat; two pages join one room,
// a message typed in one appears in the other, the gateway's figures show; then the chat
// worker is killed (SIGKILL, by its PID) and another started: neither page's WebSocket
// closes, and they chat on. Screenshots go to $WSGW_BUILD/browser/.
//
// Run by tests/browser/run.sh (which installs chromium and playwright-core); prints one
// "ok N - ..." line per step and exits non-zero on the first failure.
const fs = require('fs');
const os = require('os');
const path = require('path');
const { ROOT, BUILD, STEP_MS, ok, sleep, waitFor, start, stopAll, launch, run } = require('./lib');

const SHOTS = path.join(BUILD, 'browser');

async function main() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wsgw-browser-'));
  fs.mkdirSync(SHOTS, { recursive: true });
  const gwLog = path.join(dir, 'wsgw.log');
  const control = `ipc://${dir}/rt/control`;
  const log = () => fs.readFileSync(gwLog, 'utf8');
  const browsers = [];
  const profiles = [];
  try {
    start(path.join(BUILD, 'wsgw'), ['--listen', '127.0.0.1:0', '--runtime-dir', `${dir}/rt`,
      '--route', '/chat=chat', '--route', '/=echo', '--static', path.join(ROOT, 'demo'),
      '--admin', '127.0.0.1:0', '--heartbeat', '1', '--orphan-timeout', '30'], gwLog);
    const port = Number((await waitFor(() => /listening on 127\.0\.0\.1:(\d+)/.exec(log()), 5000,
      'the gateway'))[1]);
    const attached = (pid) => new RegExp(`attached to pool chat \\(pid ${pid},`).test(log());
    let chat = start(path.join(BUILD, 'wsgw-chat'), ['--control', control, '--pool', 'chat'],
      path.join(dir, 'chat1.log'));
    await waitFor(() => attached(chat.pid), 5000, 'wsgw-chat to attach');
    ok(`gateway on port ${port} with --static demo/, wsgw-chat attached (pid ${chat.pid})`);

    // Each page in its own browser with a fresh profile (the page keeps its rooms and name
    // in localStorage), nothing fetched from anywhere but the gateway.
    const url = `http://127.0.0.1:${port}/`;
    const pages = [];
    for (const name of ['ada', 'bob']) {
      const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'wsgw-chromium-'));
      profiles.push(profile);
      const browser = await launch(profile, { viewport: { width: 1000, height: 640 } });
      browsers.push(browser);
      const page = browser.pages()[0] || await browser.newPage();
      page.sockets = [];
      page.closes = 0;
      page.errors = [];
      page.on('pageerror', (e) => page.errors.push(e.message));
      page.on('websocket', (ws) => {
        page.sockets.push(ws.url());
        ws.on('close', () => { page.closes++; });
      });
      await page.goto(url);
      await page.waitForSelector('#status.open');
      await page.fill('#name', name);
      await page.fill('#room', 'lobby');
      await page.click('#join');
      await page.waitForSelector(`#messages li.notice:has-text("${name} joined lobby")`);
      pages.push(page);
    }
    const [a, b] = pages;
    ok('two pages loaded from the gateway, connected to /chat and joined room "lobby"');
    await a.waitForSelector('#messages li.notice:has-text("bob joined lobby")');
    await a.waitForSelector('#rooms li.current .members:has-text("2 here")');
    ok('page 1 saw page 2 join, and the member count (from QUERY) says 2');

    await a.fill('#text', 'hello from ada <b>not bold</b>');
    await a.press('#text', 'Enter');
    await b.waitForSelector('#messages li.msg:has-text("hello from ada")');
    const seen = await b.$eval('#messages li.msg:last-child', (li) =>
      [li.querySelector('.who').textContent, li.querySelector('.text').textContent,
        li.querySelectorAll('b').length]);
    if (seen[0] !== 'ada' || seen[1] !== 'hello from ada <b>not bold</b>' || seen[2] !== 0)
      throw new Error(`page 2 shows ${JSON.stringify(seen)}`);
    await a.waitForSelector('#messages li.msg.self:has-text("hello from ada")');
    ok('a message typed in page 1 appears in page 2 (as text, not markup), and as its own in page 1');

    const fig = async (id) => Number((await a.textContent(id)).replace(/\D/g, ''));
    // Both joins and the message came in: at least three messages counted.
    await waitFor(async () => (await fig('#fig-conns')) >= 2 && (await fig('#fig-in')) >= 3,
      STEP_MS, 'the live figures');
    if (!(await a.isVisible('#figures'))) throw new Error('the figures are hidden');
    ok(`live figures from /metrics: ${await a.textContent('#fig-conns')} connections, ` +
      `${await a.textContent('#fig-in')} messages in`);
    await a.screenshot({ path: path.join(SHOTS, 'chat-page1.png') });
    await b.screenshot({ path: path.join(SHOTS, 'chat-page2.png') });

    // The chat worker dies; another takes its place. The pages stay connected.
    process.kill(chat.pid, 'SIGKILL');
    await waitFor(() => chat.exited, 5000, 'the chat worker to die');
    await waitFor(() => new RegExp(`pool chat, pid ${chat.pid}\\) gone`).test(log()), 5000,
      'the gateway to notice the death');
    ok(`wsgw-chat (pid ${chat.pid}) killed with SIGKILL; the gateway noticed`);
    await sleep(1000);
    chat = start(path.join(BUILD, 'wsgw-chat'), ['--control', control, '--pool', 'chat'],
      path.join(dir, 'chat2.log'));
    await waitFor(() => attached(chat.pid), 5000, 'the new wsgw-chat to attach');
    await a.waitForSelector('#messages li.notice:has-text("chat worker restarted")');
    await b.waitForSelector('#messages li.notice:has-text("chat worker restarted")');
    await b.fill('#text', 'after the restart');
    await b.press('#text', 'Enter');
    await a.waitForSelector('#messages li.msg:has-text("after the restart")');
    for (const [i, p] of pages.entries()) {
      if (p.closes !== 0 || p.sockets.length !== 1)
        throw new Error(`page ${i + 1}: ${p.sockets.length} WebSockets opened, ${p.closes} closed`);
      if (!(await p.isVisible('#status.open'))) throw new Error(`page ${i + 1} is not connected`);
      if (p.errors.length) throw new Error(`page ${i + 1}: script errors: ${p.errors.join('; ')}`);
    }
    ok(`another wsgw-chat (pid ${chat.pid}) took over: neither page's WebSocket closed, ` +
      'and a message from page 2 reached page 1');
    await a.screenshot({ path: path.join(SHOTS, 'chat-after-restart.png') });
    console.log(`screenshots in ${SHOTS}`);
  } finally {
    for (const b of browsers) await b.close().catch(() => {});
    await stopAll();
    if (process.env.WSGW_KEEP_LOGS) console.error(`logs kept in ${dir}`);
    else fs.rmSync(dir, { recursive: true, force: true });
    for (const p of profiles) fs.rmSync(p, { recursive: true, force: true });
  }
}

run(main);
