'use strict';
// Helpers for the worker tests: a real build/wsgw on a port it picked, the real example
// workers, every wait bounded, every process killed by its PID. (Kept out of test/ so the
// test runner does not run it as a test file.)
const { spawn } = require('child_process');
const fs = require('fs');
const net = require('net');
const os = require('os');
const path = require('path');
const WebSocket = require('ws');

const PKG = path.resolve(__dirname, '..');
const ROOT = path.resolve(PKG, '..', '..');
const BUILD = process.env.WSGW_BUILD || path.join(ROOT, 'build');
const WSGW = path.join(BUILD, 'wsgw');
const WSGW_ECHO = path.join(BUILD, 'wsgw-echo');
const WSGW_BENCH = path.join(BUILD, 'wsgw-bench');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(pred, ms, what) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = pred();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(20);
  }
}

function freeTcpPort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

class Gateway {
  static async start(routes, extra = []) {
    const g = new Gateway();
    g.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wsgw-nodetest-'));
    const i = extra.indexOf('--control');
    g.control = i >= 0 ? extra[i + 1] : `ipc://${g.dir}/rt/control`;
    const args = ['--listen', '127.0.0.1:0', '--runtime-dir', `${g.dir}/rt`];
    for (const r of routes) args.push('--route', r);
    args.push(...extra);
    g.logPath = `${g.dir}/wsgw.log`;
    const fd = fs.openSync(g.logPath, 'w');
    g.procs = [];
    g.proc = spawn(WSGW, args, { stdio: ['ignore', fd, fd] });
    fs.closeSync(fd);
    const m = await waitFor(() => /listening on 127\.0\.0\.1:(\d+)/.exec(g.log()), 5000,
      'the gateway to listen');
    g.port = Number(m[1]);
    await waitFor(() => g.log().includes('control channel on'), 5000, 'the control channel');
    return g;
  }

  log() { return fs.readFileSync(this.logPath, 'utf8'); }

  url(p = '/') { return `ws://127.0.0.1:${this.port}${p}`; }

  attached(pool) {
    const re = new RegExp(`attached to pool ${pool} \\(`, 'g');
    return (this.log().match(re) || []).length;
  }

  spawn(cmd, args, name) {
    const fd = fs.openSync(`${this.dir}/${name}.log`, 'w');
    const p = spawn(cmd, args, { stdio: ['ignore', fd, fd] });
    fs.closeSync(fd);
    p.exited = false;
    p.on('exit', () => { p.exited = true; });
    this.procs.push(p);
    return p;
  }

  workerLog(name) { return fs.readFileSync(`${this.dir}/${name}.log`, 'utf8'); }

  async startExample(example, pool, name, extra = []) {
    const before = this.attached(pool);
    const p = this.spawn(process.execPath,
      [path.join(PKG, 'examples', example), '--control', this.control, '--pool', pool, ...extra],
      name);
    await waitFor(() => this.attached(pool) > before || p.exited, 10000, `${name} to attach`);
    if (p.exited) throw new Error(`${name} exited: ${this.workerLog(name)}`);
    return p;
  }

  async stop() {
    const all = [...this.procs, this.proc];
    for (const p of all) if (p.exitCode === null && p.signalCode === null) p.kill('SIGTERM');
    const deadline = Date.now() + 3000;
    for (const p of all) {
      while (p.exitCode === null && p.signalCode === null && Date.now() < deadline) await sleep(20);
      if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    }
    // A sanitizer build (make SANITIZE=1) reports into the log; that is a failure.
    const bad = /(ERROR: \w+Sanitizer|runtime error:).*/.exec(this.log());
    if (process.env.WSGW_KEEP_LOGS || bad) console.error(`logs kept in ${this.dir}`);
    else fs.rmSync(this.dir, { recursive: true, force: true });
    if (bad) throw new Error(`the gateway says: ${bad[0]} (log in ${this.dir})`);
  }
}

// A client with a queue of received messages; text arrives as string, binary as Buffer.
function client(url) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.got = [];
    ws.waiters = [];
    ws.on('message', (data, isBinary) => {
      const m = isBinary ? data : data.toString('utf8');
      const w = ws.waiters.shift();
      if (w) w(m);
      else ws.got.push(m);
    });
    ws.recv = (ms = 5000) => {
      if (ws.got.length) return Promise.resolve(ws.got.shift());
      return new Promise((res, rej) => {
        const t = setTimeout(() => {
          ws.waiters.splice(ws.waiters.indexOf(w), 1);
          rej(new Error(`no message within ${ms} ms`));
        }, ms);
        const w = (m) => { clearTimeout(t); res(m); };
        ws.waiters.push(w);
      });
    };
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

// build/wsgw-bench in echo mode; its JSON result.
function bench(port, p, { secs = 2, conns = 100, inflight = 16, size = 32 } = {}) {
  const { execFile } = require('child_process');
  const args = ['--target', `127.0.0.1:${port}${p}`, '--mode', 'echo', '-c', String(conns),
    '-k', String(inflight), '-s', String(size), '-d', String(secs), '-q'];
  return new Promise((resolve, reject) => {
    execFile(WSGW_BENCH, args, { timeout: (secs + 30) * 1000 }, (err, stdout, stderr) => {
      try {
        resolve(JSON.parse(stdout));
      } catch (e) {
        reject(new Error(`wsgw-bench said: ${stdout.slice(-500)} ${stderr.slice(-500)} ${err || ''}`));
      }
    });
  });
}

module.exports = { bench, Gateway, client, waitFor, sleep, freeTcpPort, WSGW, WSGW_ECHO, BUILD };
