// The Node.js `ws` echo server as people write it: one process, every message echoed
// with its type. Usage: node server.js PORT  (binds 127.0.0.1 only).
'use strict';
const { WebSocketServer } = require('ws');

const port = Number(process.argv[2] || 0);
const wss = new WebSocketServer({ host: '127.0.0.1', port, perMessageDeflate: false,
                                  maxPayload: 16 << 20, backlog: 4096 });
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on('error', () => {});
});
wss.on('listening', () => {
  process.stderr.write(`listening on 127.0.0.1:${wss.address().port}\n`);
});
process.on('SIGTERM', () => process.exit(0));
