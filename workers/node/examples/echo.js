#!/usr/bin/env node
'use strict';
// Echo worker: every message goes back to its sender, as text or binary as it came.
// usage: echo.js --control ENDPOINT --pool NAME [--verbose]
//        [--curve-server-key=Z85 --curve-keypair FILE (public and secret key, one per line)]
// (the key with '=': a Z85 key may start with '-', which would read as an option)
const fs = require('fs');
const { parseArgs } = require('util');
const { Worker } = require('..');

async function main() {
  const { values: a } = parseArgs({ options: {
    control: { type: 'string' }, pool: { type: 'string' },
    verbose: { type: 'boolean', short: 'v' },
    'curve-server-key': { type: 'string' }, 'curve-keypair': { type: 'string' },
  } });
  if (!a.control || !a.pool) {
    console.error('usage: echo.js --control ENDPOINT --pool NAME');
    process.exit(2);
  }
  const opts = {};
  if (a['curve-server-key']) {
    opts.curveServerKey = a['curve-server-key'];
    if (a['curve-keypair']) {
      const [publicKey, secretKey] = fs.readFileSync(a['curve-keypair'], 'utf8').split(/\s+/);
      opts.curveKeypair = { publicKey, secretKey };
    }
  }
  const w = await Worker.attach(a.control, a.pool, opts);
  console.error(`echo.js: worker ${w.workerId} serving pool ${a.pool}`);
  const stop = () => w.detach().then(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  for await (const ev of w) {
    if (ev.type === 'message') {
      w.send(ev.conn, ev.data);
    } else if (ev.type === 'open') {
      if (a.verbose) console.error(`echo.js: open ${ev.conn}${ev.resumed ? ' resumed' : ''}`);
      if (ev.authorize) w.accept(ev.conn);
    } else if (ev.type === 'error') {
      console.error(`echo.js: gateway says: ${ev.reason}`);
    }
  }
}

main().catch((e) => {
  console.error(`echo.js: ${e.message}`);
  process.exit(1);
});
