#!/usr/bin/env node
'use strict';
// Chat worker: each message goes to every connection this worker holds (its sender too).
// usage: chat.js --control ENDPOINT --pool NAME
const { parseArgs } = require('util');
const { Worker } = require('..');

async function main() {
  const { values: a } = parseArgs({ options: {
    control: { type: 'string' }, pool: { type: 'string' },
  } });
  if (!a.control || !a.pool) {
    console.error('usage: chat.js --control ENDPOINT --pool NAME');
    process.exit(2);
  }
  const w = await Worker.attach(a.control, a.pool);
  console.error(`chat.js: worker ${w.workerId} serving pool ${a.pool}`);
  const stop = () => w.detach().then(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  for await (const ev of w) {
    if (ev.type === 'message') {
      // w.connections follows OPEN/CLOSE/GONE, so it is exactly who is here.
      for (const c of w.connections) w.send(c, ev.data);
    } else if (ev.type === 'open' && ev.authorize) {
      w.accept(ev.conn);
    }
  }
}

main().catch((e) => {
  console.error(`chat.js: ${e.message}`);
  process.exit(1);
});
