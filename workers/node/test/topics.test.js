'use strict';
// The library's topic and fan-out verbs against the real gateway: two Node workers in one
// pool, real WebSocket clients pinned to either.
const test = require('node:test');
const assert = require('node:assert');
const { Worker } = require('..');
const { Gateway, client, sleep } = require('../test-helpers/gateway');

// The next event of one of the types on w (others skipped), within ms.
async function nextOf(w, types, ms = 5000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const left = deadline - Date.now();
    assert.ok(left > 0, `no ${types} event within ${ms} ms`);
    const ev = await w.recv(left);
    if (ev && types.includes(ev.type)) return ev;
  }
}

test('subscribe, publish with exclude, sendMany, query, stat, unsubscribe', { timeout: 30000 }, async (t) => {
  const gw = await Gateway.start(['/=t']);
  t.after(() => gw.stop());
  const ws = [await Worker.attach(gw.control, 't'), await Worker.attach(gw.control, 't')];
  t.after(() => Promise.all(ws.map((w) => w.detach())));
  const clients = [];
  for (let i = 0; i < 6; i++) clients.push(await client(gw.url(`/c${i}`)));
  clients.forEach((c, k) => c.send(`who ${k}`));
  const owner = new Map(); // client index -> [worker, conn]
  for (const w of ws) {
    for (;;) {
      const ev = await w.recv(500);
      if (!ev) break;
      if (ev.type === 'message') owner.set(Number(ev.data.split(' ')[1]), [w, ev.conn]);
    }
  }
  assert.strictEqual(owner.size, 6);
  assert.strictEqual(new Set([...owner.values()].map(([w]) => w)).size, 2,
    'all six clients were pinned to one worker');
  for (const [w, c] of owner.values()) assert.strictEqual(w.subscribe(c, 'news'), true);
  // The two workers' commands travel on two sockets: wait until both sets took effect.
  for (let n = 0, i = 0; n !== 6; i++) {
    assert.ok(i < 100, `the topic has ${n} subscribers, not 6`);
    ws[0].query('news');
    n = (await nextOf(ws[0], ['topic'])).subscribers;
    if (n !== 6) await sleep(20);
  }

  const expect = async (ks, data) => {
    for (const k of ks) assert.deepStrictEqual(await clients[k].recv(5000), data, `client ${k}`);
  };
  const quiet = async (ks) => {
    await sleep(200);
    for (const k of ks) assert.strictEqual(clients[k].got.length, 0, `client ${k} got ${clients[k].got[0]}`);
  };

  // One worker publishes to subscribers of both; the sender left out.
  ws[0].publish('news', 'to all but 0', owner.get(0)[1]);
  await expect([1, 2, 3, 4, 5], 'to all but 0');
  await quiet([0]);
  ws[1].publish(Buffer.from('news'), Buffer.from([0, 0x62]));
  await expect([0, 1, 2, 3, 4, 5], Buffer.from([0, 0x62]));

  let qid = ws[1].query('news');
  let ev = await nextOf(ws[1], ['topic']);
  assert.deepStrictEqual([ev.conn, ev.topic, ev.subscribers], [qid, 'news', 6]);
  const sortBig = (a) => [...a].sort((x, y) => (x < y ? -1 : x > y ? 1 : 0));
  assert.deepStrictEqual(sortBig(ev.conns), sortBig([...owner.values()].map(([, c]) => c)));

  const mine = [...owner.keys()].filter((k) => owner.get(k)[0] === ws[0]);
  ws[0].sendMany(mine.map((k) => owner.get(k)[1]), 'many');
  await expect(mine, 'many');
  await quiet([...owner.keys()].filter((k) => !mine.includes(k)));

  const [w2, c2] = owner.get(2);
  w2.unsubscribe(c2, 'news');
  clients[3].close();
  await sleep(200);
  ws[0].publish('news', 'after');
  await expect([0, 1, 4, 5], 'after');
  await quiet([2]);
  qid = ws[0].query('news');
  ev = await nextOf(ws[0], ['topic']);
  assert.deepStrictEqual([ev.conn, ev.subscribers], [qid, 4]);

  const [w0, c0] = owner.get(0);
  w0.stat(c0);
  ev = await nextOf(w0, ['stat']);
  assert.strictEqual(ev.conn, c0);
  assert.ok(ev.queued >= 0 && ev.ageMs >= 0);
  const other = ws.find((x) => x !== w0);
  other.stat(c0);
  ev = await nextOf(other, ['gone']);
  assert.strictEqual(ev.conn, c0);
  clients.forEach((c, k) => k !== 3 && c.close());
});
