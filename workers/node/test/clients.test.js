'use strict';
// What a real client meets: Node's ws with permessage-deflate on, over ws:// and wss://,
// echoed by the Node worker; thousands of messages of random sizes, both types.
const test = require('node:test');
const assert = require('node:assert');
const fs = require('fs');
const path = require('path');
const WebSocket = require('ws');
const { Gateway, waitFor } = require('../test-helpers/gateway');

const TLS = path.join(process.env.WSGW_BUILD || path.resolve(__dirname, '..', '..', '..', 'build'), 'tls');
const tlsArgs = ['--listen', '127.0.0.1:0,tls', '--tls-cert', path.join(TLS, 'cert.pem'),
  '--tls-key', path.join(TLS, 'key.pem')];

// A small deterministic generator: the same run every time.
function rng(seed) {
  let s = seed >>> 0;
  return () => { s = (s * 1664525 + 1013904223) >>> 0; return s / 4294967296; };
}

// JSON-like text (compresses) or random bytes (does not), 0 to 64 KiB.
function payload(r, i) {
  const sizes = [0, 1, 10, 100, 1000, 5000, 20000, 65536];
  const n = sizes[Math.floor(r() * sizes.length)] + Math.floor(r() * 64);
  if (i % 2 === 0) {
    const row = `{"id":${i},"user":"u${i % 97}","text":"hello world","tags":["a","b"]},`;
    return ('[' + row.repeat(Math.ceil(n / row.length) + 1)).slice(0, n);
  }
  const b = Buffer.alloc(n);
  for (let k = 0; k < n; k++) b[k] = Math.floor(r() * 256);
  return b;
}

async function echoCompressed(url, nClients, nMsgs, opts = {}) {
  const one = (k) => new Promise((resolve, reject) => {
    const ws = new WebSocket(url, ['chat.v1'], { perMessageDeflate: true, ...opts });
    const r = rng(k + 1);
    let i = 0;
    let sent;
    const next = () => {
      if (i === nMsgs) {
        const agreed = ws.extensions;
        const proto = ws.protocol;
        ws.close();
        resolve({ agreed, proto });
        return;
      }
      sent = payload(r, i);
      ws.send(sent);
    };
    ws.on('open', next);
    ws.on('message', (data, isBinary) => {
      const got = isBinary ? data : data.toString('utf8');
      if (isBinary !== Buffer.isBuffer(sent) || !(isBinary ? sent.equals(got) : got === sent)) {
        reject(new Error(`client ${k} message ${i}: ${got.length} bytes back for ${sent.length}`));
        ws.terminate();
        return;
      }
      i++;
      next();
    });
    ws.on('error', reject);
  });
  return Promise.all([...Array(nClients).keys()].map(one));
}

function check(results) {
  for (const { agreed, proto } of results) {
    assert.match(agreed, /^permessage-deflate/, 'permessage-deflate was declined');
    assert.strictEqual(proto, 'chat.v1');
  }
}

async function start(t) {
  const gw = await Gateway.start(['/=js,protocols=chat.v1'], tlsArgs);
  t.after(() => gw.stop());
  await gw.startExample('echo.js', 'js', 'echo');
  const m = await waitFor(() => /listening on 127\.0\.0\.1:(\d+) \(TLS\)/.exec(gw.log()), 5000,
    'the TLS listener');
  gw.tlsPort = Number(m[1]);
  return gw;
}

test('ws with permessage-deflate over ws://', { timeout: 120000 }, async (t) => {
  const gw = await start(t);
  check(await echoCompressed(gw.url('/'), 4, 750));
});

test('ws with permessage-deflate over wss://', { timeout: 120000 }, async (t) => {
  const gw = await start(t);
  const ca = fs.readFileSync(path.join(TLS, 'ca.pem'));
  check(await echoCompressed(`wss://127.0.0.1:${gw.tlsPort}/`, 4, 750, { ca }));
  // Without the test CA the certificate is refused: it is checked for real.
  await assert.rejects(echoCompressed(`wss://127.0.0.1:${gw.tlsPort}/`, 1, 1),
    /self[- ]signed|unable to (get|verify)|certificate/);
});
