'use strict';
// What both browser tests need: numbered "ok N" steps, bounded waits, the processes they
// start (stopped by their PIDs at the end), and Debian's chromium launched headless.
const { spawn } = require('child_process');
const fs = require('fs');
const path = require('path');
const { chromium } = require('playwright-core');

const ROOT = path.resolve(__dirname, '..', '..');
const BUILD = process.env.WSGW_BUILD || path.join(ROOT, 'build');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const STEP_MS = 15000;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let step = 0;
const ok = (what) => console.log(`ok ${++step} - ${what}`);

async function waitFor(pred, ms, what) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await pred();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(50);
  }
}

// Starts cmd with stdout and stderr appended to log; stopAll ends it.
const procs = [];
function start(cmd, args, log) {
  const fd = fs.openSync(log, 'a');
  const p = spawn(cmd, args, { stdio: ['ignore', fd, fd] });
  fs.closeSync(fd);
  p.exited = false;
  p.on('exit', () => { p.exited = true; });
  procs.push(p);
  return p;
}

async function stopAll() {
  for (const p of procs) if (!p.exited) p.kill('SIGTERM');
  await sleep(300);
  for (const p of procs) if (!p.exited) p.kill('SIGKILL');
}

// A headless chromium with a profile of its own, nothing fetched but from the gateway;
// opts: env (a HOME with the test CA), viewport.
async function launch(profile, opts = {}) {
  const browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    timeout: STEP_MS,
    ...opts,
  });
  browser.setDefaultTimeout(STEP_MS);
  return browser;
}

// Runs main, printing the plan at the end, or "not ok" and the stack on the first failure.
function run(main) {
  main().then(() => console.log(`1..${step}`), (e) => {
    console.log(`not ok ${++step} - ${e.message.split('\n')[0]}`);
    console.error(e.stack);
    process.exitCode = 1;
  });
}

module.exports = { ROOT, BUILD, STEP_MS, sleep, ok, waitFor, start, stopAll, launch, run };
