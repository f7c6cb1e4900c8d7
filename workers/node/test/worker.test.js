'use strict';
// The Node worker library and its examples against a real gateway.
const test = require('node:test');
const assert = require('node:assert');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { Worker, WorkerError, curveKeyPair } = require('..');
const { Gateway, bench, client, waitFor, sleep, freeTcpPort, WSGW_ECHO } = require('../test-helpers/gateway');

// nClients each send nMsgs (text and binary alternating), interleaved with the others, and
// must get each back exactly once and in order.
async function echoClients(url, nClients, nMsgs) {
  const one = async (k) => {
    const ws = await client(url);
    const sent = [];
    for (let i = 0; i < nMsgs; i++) {
      const m = i % 2 === 0 ? `c${k}-m${i}` : Buffer.from(`c${k}-b${i}`);
      sent.push(m);
      ws.send(m);
      if (i % 7 === 0) await new Promise((r) => setImmediate(r));
    }
    const got = [];
    for (let i = 0; i < nMsgs; i++) got.push(await ws.recv(10000));
    await sleep(200);
    const extra = ws.got.length;
    ws.close();
    return { sent, got, extra };
  };
  return Promise.all([...Array(nClients).keys()].map(one));
}

function assertEchoed(results) {
  for (const { sent, got, extra } of results) {
    assert.deepStrictEqual(got, sent);
    assert.strictEqual(extra, 0, 'a message came back twice');
  }
}

test('echo exactly once and in order', { timeout: 30000 }, async (t) => {
  const gw = await Gateway.start(['/=js']);
  t.after(() => gw.stop());
  await gw.startExample('echo.js', 'js', 'echo');
  assertEchoed(await echoClients(gw.url('/e'), 8, 250));
});

// wsgw-bench keeps 100 x 16 messages in flight and checks every echo's content and order
// (mismatches) and that none is missing (stranded).
test('echo exactly once under load', { timeout: 40000 }, async (t) => {
  const gw = await Gateway.start(['/=js']);
  t.after(() => gw.stop());
  await gw.startExample('echo.js', 'js', 'echo');
  const r = await bench(gw.port, '/load', { secs: 2 });
  console.log(`  load: ${r.msgs_per_s} msgs/s, sent ${r.msgs_sent}, echoed ${r.msgs_rcvd}, ` +
    `mismatched ${r.mismatches}, never echoed ${r.stranded}`);
  assert.strictEqual(r.conns_open, 100);
  assert.ok(r.msgs_sent > 0);
  assert.deepStrictEqual([r.mismatches, r.stranded], [0, 0],
    'echoes lost or out of order between the gateway and the worker');
  assert.strictEqual(r.msgs_rcvd, r.msgs_sent);
});

// chat.js over two workers: a room's members are pinned to both; a message reaches the
// room's other members (the sender gets its own copy), not other rooms.
test('chat rooms are topics', { timeout: 30000 }, async (t) => {
  const gw = await Gateway.start(['/=jschat']);
  t.after(() => gw.stop());
  await gw.startExample('chat.js', 'jschat', 'chat1');
  await gw.startExample('chat.js', 'jschat', 'chat2');
  const next = async (ws) => {
    const m = JSON.parse(await ws.recv(5000));
    delete m.time;
    return m;
  };
  const quiet = async (ws) => {
    await sleep(300);
    assert.strictEqual(ws.got.length, 0, `unexpected: ${ws.got[0]}`);
  };
  const [a1, a2, b1] = [await client(gw.url('/chat')), await client(gw.url('/chat')),
    await client(gw.url('/chat'))];
  a1.send(JSON.stringify({ type: 'join', room: 'a', name: 'ann' }));
  assert.deepStrictEqual(await next(a1), { type: 'joined', room: 'a', name: 'ann' });
  assert.deepStrictEqual(await next(a1), { type: 'count', room: 'a', members: 1 });
  a2.send(JSON.stringify({ type: 'join', room: 'a', name: 'b\u00f6b' }));
  for (const ws of [a1, a2]) {
    assert.deepStrictEqual(await next(ws), { type: 'joined', room: 'a', name: 'b\u00f6b' });
    assert.deepStrictEqual(await next(ws), { type: 'count', room: 'a', members: 2 });
  }
  b1.send(JSON.stringify({ type: 'join', room: 'b', name: 'cy' }));
  await next(b1);
  await next(b1);
  a1.send(JSON.stringify({ type: 'say', room: 'a', text: 'hello a' }));
  const msg = { type: 'message', room: 'a', name: 'ann', text: 'hello a' };
  assert.deepStrictEqual(await next(a2), msg);
  assert.deepStrictEqual(await next(a1), { ...msg, self: true });
  await quiet(b1);
  b1.send(JSON.stringify({ type: 'count', room: 'a' }));
  assert.deepStrictEqual(await next(b1), { type: 'count', room: 'a', members: 2 });
  b1.send('{not json');
  assert.deepStrictEqual(await next(b1), { type: 'error', error: 'bad JSON' });
  // Dropped without a close handshake: after one, the gateway tells the worker CLOSE
  // before it ends the connection's subscriptions (at TCP close), so a count taken at
  // once may still include it.
  a2.terminate();
  assert.deepStrictEqual(await next(a1), { type: 'left', room: 'a', name: 'b\u00f6b' });
  assert.deepStrictEqual(await next(a1), { type: 'count', room: 'a', members: 1 });
  a1.close();
  b1.close();
});

// SIGKILL of a worker under load, with a backlog queued to it for sure (it is stopped while
// every client sends a burst of 100, then killed): every message comes back (the gateway
// hands what the dead worker never acknowledged to the other); a message may come back
// twice, at most the window's worth in all.
test('kill -9 of one of two workers under load loses nothing', { timeout: 40000 }, async (t) => {
  const gw = await Gateway.start(['/=js']);
  t.after(() => gw.stop());
  const w1 = await gw.startExample('echo.js', 'js', 'w1');
  await gw.startExample('echo.js', 'js', 'w2');
  const nClients = 20;
  const inFlight = 64;
  const burst = 100;
  let killed = false;
  let burstNow = false;
  let bursts = 0;
  const socks = [];
  for (let k = 0; k < nClients; k++) socks.push(await client(gw.url(`/c${k}`)));
  const state = socks.map(() => ({ sent: 0, got: [], seen: new Set(), boundary: null, closed: false }));
  socks.forEach((ws, k) => {
    ws.removeAllListeners('message');
    ws.on('message', (d) => {
      const i = Number(d.toString());
      state[k].got.push(i);
      state[k].seen.add(i);
    });
    ws.on('close', () => { state[k].closed = true; });
  });
  const run = async (k) => {
    const st = state[k];
    const ws = socks[k];
    while (st.boundary === null || st.sent < st.boundary + 150) {
      if (killed && st.boundary === null) st.boundary = st.sent;
      if (burstNow && !st.burst) {
        // Back to back: queued in the gateway and ZeroMQ when the kill comes.
        st.burst = true;
        for (let i = 0; i < burst; i++) ws.send(String(st.sent++));
        bursts++;
      }
      ws.send(String(st.sent++));
      await sleep(st.sent - st.seen.size > inFlight ? 2 : 0);
    }
    const deadline = Date.now() + 10000;
    while (st.seen.size < st.sent && Date.now() < deadline) await sleep(20);
    await sleep(200); // a late duplicate is counted too
  };
  const killer = async () => {
    await sleep(600);
    w1.kill('SIGSTOP');
    burstNow = true;
    await waitFor(() => bursts === nClients, 5000, 'every client to send its burst');
    await sleep(100); // the bursts reach the gateway, and ZeroMQ's queue to w1
    w1.kill('SIGKILL'); // by PID
    await waitFor(() => w1.exited, 5000, 'w1 to die');
    killed = true;
  };
  await Promise.all([killer(), ...socks.map((_, k) => run(k))]);
  assert.match(gw.log(), /process exited/);
  let lost = 0;
  let dups = 0;
  let total = 0;
  state.forEach((st, k) => {
    assert.strictEqual(st.closed, false, `client ${k} was dropped`);
    const first = [...new Set(st.got)]; // each message where it first came back
    assert.deepStrictEqual(first, [...first].sort((a, b) => a - b), `client ${k}: echoes out of order`);
    dups += st.got.length - first.length;
    for (let i = 0; i < st.sent; i++) if (!st.seen.has(i)) lost++;
    total += st.sent;
  });
  console.log(`  crash: ${lost} messages lost, ${dups} came back twice (of ${total})`);
  assert.strictEqual(lost, 0, 'messages queued to the killed worker were lost');
  assert.ok(dups <= 1024, `${dups} duplicates: more than the dead worker's window`);
  for (const s of socks) s.close();
});

// What the library acknowledges, seen by a gateway played by hand (a ROUTER).
test('ACK: what was handled, in batches and before waiting', { timeout: 20000 }, async (t) => {
  const zmq = require('zeromq');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wsgw-ack-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const ep = `ipc://${dir}/control`;
  const r = new zmq.Router({ linger: 0 });
  await r.bind(ep);
  t.after(() => r.close());
  const heard = [];
  const gateway = (async () => {
    const [ident, hello] = await r.receive();
    assert.strictEqual(hello.toString(), 'HELLO');
    await r.send([ident, 'WELCOME', '7', '1000', '', '0', '0', '']);
    const cid = Buffer.alloc(8);
    cid.writeBigUInt64BE(5n);
    await r.send([ident, 'OPEN', cid, '']);
    for (let i = 0; i < 39; i++) await r.send([ident, 'MESSAGE', cid, 'text', `m${i}`]);
    await r.send([ident, 'ERROR', 'not counted']);
    for (;;) {
      const [, ...f] = await r.receive();
      heard.push(f.map((x) => x.toString()));
      if (f[0].toString() === 'BYE') return;
    }
  })();
  gateway.catch(() => {});
  const w = await Worker.attach(ep, 'p', { attachTimeout: 5000 });
  const acks = () => heard.filter((f) => f[0] === 'ACK').map((f) => Number(f[1]));
  // Wait until all 41 are queued, so that no recv() below has to wait.
  await waitFor(() => w._events.length >= 41, 5000, 'the 41 events to arrive');
  const evs = [];
  for (let i = 0; i < 33; i++) evs.push(await w.recv(2000));
  assert.deepStrictEqual(evs.slice(0, 2).map((e) => e.type), ['open', 'message']);
  // The 33rd recv() said the first 32 are handled; the 33rd is not yet.
  await waitFor(() => acks().length > 0, 2000, 'the first ACK');
  assert.deepStrictEqual(acks(), [32]);
  for (let i = 0; i < 8; i++) evs.push(await w.recv(2000));
  assert.strictEqual(evs[evs.length - 1].type, 'error');
  await sleep(100);
  assert.deepStrictEqual(acks(), [32], 'acknowledged before the consumer came back');
  // Nothing left: what is handled (all 40 counted; ERROR is not) is acknowledged before
  // waiting.
  assert.strictEqual(await w.recv(200), null);
  await waitFor(() => acks().length === 2, 2000, 'ACK 40 before waiting');
  assert.deepStrictEqual(acks(), [32, 40]);
  await w.detach();
  await Promise.race([gateway, sleep(3000)]);
  assert.deepStrictEqual(heard[heard.length - 1], ['BYE']);
  assert.deepStrictEqual(acks(), [32, 40]);
});

test('MOVE: ACK of what was handled, MOVED, commands held until RESUME', { timeout: 20000 }, async (t) => {
  const zmq = require('zeromq');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wsgw-move-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const ep = `ipc://${dir}/control`;
  const r = new zmq.Router({ linger: 0 });
  await r.bind(ep);
  t.after(() => r.close());
  const heard = [];
  let ident = null;
  const cid = Buffer.alloc(8);
  cid.writeBigUInt64BE(5n);
  const gateway = (async () => {
    const [id, hello] = await r.receive();
    ident = id;
    assert.strictEqual(hello.toString(), 'HELLO');
    await r.send([ident, 'WELCOME', '7', '1000', '', '0', '0', '']);
    await r.send([ident, 'OPEN', cid, '']);
    for (let i = 0; i < 3; i++) await r.send([ident, 'MESSAGE', cid, 'text', `m${i}`]);
    await r.send([ident, 'MOVE']);
    for (;;) {
      const [, ...f] = await r.receive();
      if (f[0].toString() !== 'HEARTBEAT') heard.push(f.map((x) => x.toString()));
      if (f[0].toString() === 'BYE') return;
    }
  })();
  gateway.catch(() => {});
  const w = await Worker.attach(ep, 'p', { attachTimeout: 5000 });
  await waitFor(() => ident !== null, 2000, 'HELLO');
  // Its own routing id, which a new gateway process knows it by after a reconnect.
  assert.match(ident.toString(), new RegExp(`^wsgw1-${process.pid}-[0-9a-f]+$`));
  await waitFor(() => w._events.length >= 4, 5000, 'the 4 events to arrive');
  await sleep(100);
  // Read ahead, not yet handled: no MOVED before the consumer has handled all four.
  assert.deepStrictEqual(heard, []);
  for (let i = 0; i < 4; i++) {
    const ev = await w.recv(2000);
    if (ev.type === 'message') w.send(ev.conn, ev.data);
  }
  assert.strictEqual(await w.recv(200), null); // the fourth is handled now
  await waitFor(() => heard.some((f) => f[0] === 'MOVED'), 2000, 'MOVED');
  // (An ACK may come between the SENDs: the library acknowledges before it waits.)
  assert.deepStrictEqual(heard.filter((f) => f[0] !== 'ACK').map((f) => f[0]), ['SEND', 'SEND', 'SEND', 'MOVED']);
  assert.deepStrictEqual(heard.slice(-2), [['ACK', '4'], ['MOVED']]);
  const n = heard.length;
  // Held from now on, in order, until RESUME.
  assert.strictEqual(w.send(5n, 'held-1'), true);
  assert.strictEqual(w.publish('t', 'held-2'), true);
  await sleep(200);
  assert.strictEqual(heard.length, n, 'nothing was sent between MOVED and RESUME');
  await r.send([ident, 'RESUME']);
  await w.recv(200);
  await waitFor(() => heard.length >= n + 2, 2000, 'the held commands after RESUME');
  assert.deepStrictEqual(heard.slice(n).map((f) => f[0]), ['SEND', 'PUBLISH']);
  assert.strictEqual(heard[n][3], 'held-1');
  assert.strictEqual(heard[n + 1][3], 'held-2');
  assert.strictEqual(w.moves, 1);
  assert.strictEqual(w.reattaches, 0);
  // Counting went on: a message after RESUME is the 5th.
  await r.send([ident, 'MESSAGE', cid, 'text', 'after']);
  const ev = await w.recv(2000);
  assert.strictEqual(ev.data, 'after');
  assert.strictEqual(await w.recv(200), null);
  await waitFor(() => heard.some((f) => f[0] === 'ACK' && f[1] === '5'), 2000, 'ACK 5');
  await w.detach();
  await Promise.race([gateway, sleep(3000)]);
});

test('mixed pool: the C shm worker and a Node worker share it', { timeout: 30000 }, async (t) => {
  const gw = await Gateway.start(['/=mixed']);
  t.after(() => gw.stop());
  const before = gw.attached('mixed');
  gw.spawn(WSGW_ECHO, ['--control', gw.control, '--pool', 'mixed'], 'cecho');
  await waitFor(() => gw.attached('mixed') > before, 10000, 'wsgw-echo to attach');
  await gw.startExample('echo.js', 'mixed', 'jsecho', ['--verbose']);
  assertEchoed(await echoClients(gw.url('/m'), 10, 50));
  const js = (gw.workerLog('jsecho').match(/echo\.js: open /g) || []).length;
  console.log(`  mixed pool: node worker served ${js} of 10 connections, wsgw-echo ${10 - js}`);
  assert.ok(js > 0, 'the Node worker served nobody');
  assert.ok(js < 10, 'the C shm worker served nobody');
  assert.match(gw.log(), /shm transport/);
  assert.match(gw.log(), /zmq transport/);
});

async function nextOf(w, types, ms = 3000) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const ev = await w.recv(deadline - Date.now());
    if (ev && types.includes(ev.type)) return ev;
  }
  throw new Error(`no ${types} event within ${ms} ms`);
}

test('malformed commands get ERROR and a log line; all continues', { timeout: 30000 }, async (t) => {
  const gw = await Gateway.start(['/bad=bad', '/=js'], ['--max-message', '1024']);
  t.after(() => gw.stop());
  await gw.startExample('echo.js', 'js', 'echo');
  const w = await Worker.attach(gw.control, 'bad', { attachTimeout: 5000 });
  t.after(() => w.detach());
  const id = Buffer.alloc(8);
  id.writeBigUInt64BE(12345n);
  const cases = [
    ['wrong frame count', ['SEND', id, 'text']],
    ['unknown verb', ['FROB', id, 'x']],
    ['3-byte connection id', ['SEND', Buffer.from([0, 0, 1]), 'text', 'x']],
    ['oversize payload', ['SEND', id, 'binary', Buffer.alloc(2000)]],
    ['close code too small', ['CLOSE', id, '999', '']],
    ['close code too large', ['CLOSE', id, '5000', '']],
    ['reject status out of range', ['REJECT', id, '200', 'ok']],
    ['verb alone', ['SEND']],
  ];
  const tag = `control: worker ${w.workerId}:`;
  const count = () => gw.log().split(tag).length - 1;
  for (const [what, frames] of cases) {
    const n = count();
    w.sendFrames(frames);
    const ev = await nextOf(w, ['error', 'gone']);
    assert.strictEqual(ev.type, 'error', what);
    assert.notStrictEqual(ev.reason, 'not attached', what);
    await waitFor(() => count() > n, 3000, `a gateway log line for ${what}`);
  }
  // Still attached: a well-formed command for an unknown connection gets GONE.
  w.send(12345n, 'anyone?');
  const gone = await nextOf(w, ['error', 'gone']);
  assert.deepStrictEqual([gone.type, gone.conn], ['gone', 12345n]);
  assert.strictEqual(w.reattaches, 0);
  const bad = await client(gw.url('/bad'));
  const open = await nextOf(w, ['open']);
  w.send(open.conn, 'served');
  assert.strictEqual(await bad.recv(5000), 'served');
  bad.close();
  const ws = await client(gw.url('/e'));
  ws.send('still echoing');
  assert.strictEqual(await ws.recv(5000), 'still echoing');
  ws.close();
  assert.strictEqual(gw.proc.exitCode, null, 'the gateway died');
});

test('authorize: ACCEPT with a subprotocol, REJECT with a status', { timeout: 20000 }, async (t) => {
  const gw = await Gateway.start(['/auth=gate,authorize']);
  t.after(() => gw.stop());
  const w = await Worker.attach(gw.control, 'gate', { attachTimeout: 5000 });
  t.after(() => w.detach());
  const WebSocket = require('ws');

  const ws = new WebSocket(gw.url('/auth/x?q=1'), ['chat.v0', 'chat.v1']);
  const upgraded = new Promise((resolve, reject) => {
    ws.once('upgrade', (res) => resolve(res));
    ws.once('error', reject);
  });
  const ev = await nextOf(w, ['open'], 5000);
  assert.strictEqual(ev.authorize, true);
  assert.strictEqual(ev.fields[':path'], '/auth/x');
  assert.strictEqual(ev.fields[':query'], 'q=1');
  assert.match(ev.fields[':protocols'], /chat\.v1/);
  w.accept(ev.conn, 'chat.v1', [['X-Worker', 'yes']]);
  const res = await upgraded;
  assert.strictEqual(res.headers['x-worker'], 'yes');
  await new Promise((r) => (ws.readyState === WebSocket.OPEN ? r() : ws.once('open', r)));
  assert.strictEqual(ws.protocol, 'chat.v1');
  ws.send('after accept');
  const msg = await nextOf(w, ['message'], 5000);
  assert.deepStrictEqual([msg.conn, msg.data], [ev.conn, 'after accept']);
  ws.close();

  const no = new WebSocket(gw.url('/auth/y'));
  const refused = new Promise((resolve) => {
    no.once('unexpected-response', (req, r) => resolve(r.statusCode));
    no.once('error', () => {});
  });
  const ev2 = await nextOf(w, ['open'], 5000);
  w.reject(ev2.conn, 403, 'not you');
  assert.strictEqual(await refused, 403);
});

test('CURVE: the right key attaches, a wrong key is refused', { timeout: 30000 }, async (t) => {
  // A gateway key that starts with '-' (one in 85 does: Z85 has the dash), which an option
  // parser takes for an option unless it is given as --curve-server-key=KEY.
  let server;
  do server = curveKeyPair(); while (!server.publicKey.startsWith('-'));
  const worker = curveKeyPair();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wsgw-curve-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.writeFileSync(`${dir}/server.key`, `${server.secretKey}\n`);
  fs.writeFileSync(`${dir}/clients`, `# the one worker allowed\n${worker.publicKey}\n`);
  fs.writeFileSync(`${dir}/worker.keys`, `${worker.publicKey}\n${worker.secretKey}\n`);
  const control = `tcp://127.0.0.1:${await freeTcpPort()}`;
  const gw = await Gateway.start(['/=js'], ['--control', control,
    '--curve-secret-key', `${dir}/server.key`, '--curve-clients', `${dir}/clients`]);
  t.after(() => gw.stop());
  assert.ok(gw.log().includes(server.publicKey), 'the gateway logs its public key');
  await gw.startExample('echo.js', 'js', 'echo',
    [`--curve-server-key=${server.publicKey}`, '--curve-keypair', `${dir}/worker.keys`]);
  const ws = await client(gw.url('/'));
  ws.send('over curve');
  assert.strictEqual(await ws.recv(5000), 'over curve');
  ws.close();

  const wrong = curveKeyPair();
  const t0 = Date.now();
  await assert.rejects(Worker.attach(control, 'js', { curveServerKey: server.publicKey,
    curveKeypair: wrong, attachTimeout: 1500 }), WorkerError);
  assert.ok(Date.now() - t0 < 3000);
  await waitFor(() => gw.log().includes(`refused a worker with CURVE key ${wrong.publicKey}`),
    3000, 'the refusal log line');
  // The right worker key, but a wrong idea of the gateway's key: no WELCOME either.
  await assert.rejects(Worker.attach(control, 'js', { curveServerKey: curveKeyPair().publicKey,
    curveKeypair: worker, attachTimeout: 1000 }), WorkerError);
  assert.strictEqual(gw.attached('js'), 1);
});

test('the worker says HELLO again after a gateway restart', { timeout: 30000 }, async (t) => {
  const gw = await Gateway.start(['/=js'], ['--heartbeat', '1']);
  t.after(() => gw.stop());
  const w = await Worker.attach(gw.control, 'js', { attachTimeout: 5000 });
  t.after(() => w.detach());
  gw.proc.kill('SIGKILL');
  await waitFor(() => gw.proc.signalCode !== null, 3000, 'the gateway to die');
  const gw2 = await Gateway.start(['/=js'], ['--heartbeat', '1', '--control', gw.control]);
  t.after(() => gw2.stop());
  await waitFor(() => w.reattaches > 0 && w.attached, 8000, 're-attach');
  assert.strictEqual(gw2.attached('js'), 1);
  const ws = await client(gw2.url('/'));
  const open = await nextOf(w, ['open']);
  ws.send('after restart');
  const msg = await nextOf(w, ['message']);
  assert.strictEqual(msg.conn, open.conn);
  w.send(msg.conn, msg.data);
  assert.strictEqual(await ws.recv(5000), 'after restart');
  ws.close();
});
