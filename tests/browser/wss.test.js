'use strict';
// What a browser's first connection meets: Debian's chromium, headless, opens
// `new WebSocket(url, ['chat.v1'])` on a route that speaks chat.v1, over ws:// and over
// wss://. The browser trusts the test CA (build/tls/ca.pem, put in the NSS database of a
// HOME of its own with certutil), so the certificate is verified for real. Each side must
// agree the subprotocol and permessage-deflate, and echo JSON-like text and binary
// messages of many sizes; the gateway's /metrics must show compressed bytes both ways and
// the TLS handshake.
//
// Run by tests/browser/run.sh; prints one "ok N - ..." line per step.
const { execFileSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const http = require('http');
const { BUILD, ok, waitFor, start, stopAll, launch, run } = require('./lib');

const TLS = path.join(BUILD, 'tls');

function get(port, p) {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: p }, (res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve(body));
    }).on('error', reject);
  });
}

const metric = (text, series) => {
  const m = new RegExp(`^${series.replace(/[{}"]/g, '\\$&')} (\\d+)$`, 'm').exec(text);
  return m ? Number(m[1]) : -1;
};

// In the page: opens url with the subprotocol offered, echoes messages of every size
// (text that compresses, binary that does not), and says what was agreed.
async function echoInPage(page, url) {
  return page.evaluate(async (u) => {
    const ws = new WebSocket(u, ['chat.v1']);
    ws.binaryType = 'arraybuffer';
    await new Promise((res, rej) => { ws.onopen = res; ws.onerror = () => rej(new Error(`cannot open ${u}`)); });
    const got = [];
    let wake = null;
    ws.onmessage = (e) => { got.push(e.data); if (wake) wake(); };
    const next = () => (got.length ? Promise.resolve(got.shift())
      : new Promise((res) => { wake = () => { wake = null; res(got.shift()); }; }));
    let n = 0;
    for (const size of [0, 1, 100, 1000, 10000, 65536, 200000]) {
      const row = `{"id":${size},"user":"ada","text":"hello world"},`;
      const text = row.repeat(Math.ceil(size / row.length) + 1).slice(0, size);
      ws.send(text);
      if ((await next()) !== text) throw new Error(`text of ${size} bytes came back different`);
      const bin = new Uint8Array(size);
      for (let i = 0; i < size; i++) bin[i] = (i * 2654435761) >>> 24;
      ws.send(bin);
      const back = new Uint8Array(await next());
      if (back.length !== size || back.some((b, i) => b !== bin[i]))
        throw new Error(`binary of ${size} bytes came back different`);
      n += 2;
    }
    const agreed = { protocol: ws.protocol, extensions: ws.extensions, echoed: n };
    ws.close(1000);
    return agreed;
  }, url);
}

async function main() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wsgw-browser-wss-'));
  const home = path.join(dir, 'home');
  const gwLog = path.join(dir, 'wsgw.log');
  const log = () => fs.readFileSync(gwLog, 'utf8');
  let browser = null;
  try {
    // The browser's trust store: a HOME of its own whose NSS database holds the test CA.
    fs.mkdirSync(path.join(home, '.pki', 'nssdb'), { recursive: true });
    const db = `sql:${path.join(home, '.pki', 'nssdb')}`;
    execFileSync('certutil', ['-N', '-d', db, '--empty-password']);
    execFileSync('certutil', ['-A', '-d', db, '-n', 'wsgw test CA', '-t', 'C,,', '-i',
      path.join(TLS, 'ca.pem')]);
    start(path.join(BUILD, 'wsgw'), ['--listen', '127.0.0.1:0',
      '--listen', '127.0.0.1:0,tls', '--tls-cert', path.join(TLS, 'cert.pem'),
      '--tls-key', path.join(TLS, 'key.pem'), '--route', '/=echo,protocols=chat.v1',
      '--runtime-dir', path.join(dir, 'rt'), '--admin', '127.0.0.1:0'], gwLog);
    const port = Number((await waitFor(() => /listening on 127\.0\.0\.1:(\d+)"?\n/.exec(log()), 5000, 'ws://'))[1]);
    const tlsPort = Number((await waitFor(() => /listening on 127\.0\.0\.1:(\d+) \(TLS\)/.exec(log()), 5000, 'wss://'))[1]);
    const admin = Number((await waitFor(() => /admin endpoint on port (\d+)/.exec(log()), 5000, 'admin'))[1]);
    ok(`gateway on ws://127.0.0.1:${port} and wss://127.0.0.1:${tlsPort}; the browser trusts the test CA`);

    browser = await launch(path.join(dir, 'profile'), { env: { ...process.env, HOME: home } });
    const page = browser.pages()[0] || await browser.newPage();
    for (const url of [`ws://127.0.0.1:${port}/`, `wss://127.0.0.1:${tlsPort}/`]) {
      const a = await echoInPage(page, url);
      if (a.protocol !== 'chat.v1') throw new Error(`${url}: subprotocol ${JSON.stringify(a.protocol)}`);
      if (!/^permessage-deflate/.test(a.extensions)) throw new Error(`${url}: extensions ${JSON.stringify(a.extensions)}`);
      ok(`${url}: chat.v1 and "${a.extensions}" agreed; ${a.echoed} messages of 0 to 200000 bytes echoed`);
    }
    await browser.close();
    // The same browser without the test CA refuses the certificate: it is checked.
    fs.mkdirSync(path.join(dir, 'bare', '.pki', 'nssdb'), { recursive: true });
    browser = await launch(path.join(dir, 'profile2'), { env: { ...process.env, HOME: path.join(dir, 'bare') } });
    const bare = browser.pages()[0] || await browser.newPage();
    const refused = await echoInPage(bare, `wss://127.0.0.1:${tlsPort}/`).then(() => false, () => true);
    if (!refused) throw new Error('a browser without the test CA accepted the certificate');
    ok('without the test CA the browser refuses the certificate');
    const m = await get(admin, '/metrics');
    const wireIn = metric(m, 'wsgw_deflate_bytes_total{direction="in",form="wire"}');
    const plainIn = metric(m, 'wsgw_deflate_bytes_total{direction="in",form="plain"}');
    const wireOut = metric(m, 'wsgw_deflate_bytes_total{direction="out",form="wire"}');
    const plainOut = metric(m, 'wsgw_deflate_bytes_total{direction="out",form="plain"}');
    if (!(wireIn > 0 && plainIn > wireIn && wireOut > 0 && plainOut > wireOut))
      throw new Error(`deflate bytes: in ${wireIn}/${plainIn}, out ${wireOut}/${plainOut}`);
    if (metric(m, 'wsgw_tls_handshakes_total') < 1) throw new Error('no TLS handshake counted');
    ok(`/metrics: compressed both ways (in ${wireIn} of ${plainIn} bytes, out ${wireOut} of ${plainOut}), ` +
      `${metric(m, 'wsgw_tls_handshakes_total')} TLS handshake(s)`);
  } finally {
    if (browser) await browser.close().catch(() => {});
    await stopAll();
    if (process.env.WSGW_KEEP_LOGS) console.error(`logs kept in ${dir}`);
    else fs.rmSync(dir, { recursive: true, force: true });
  }
}

run(main);
