'use strict';
// The topic and fan-out verbs, frame by frame, against a raw ZeroMQ ROUTER standing where
// the gateway stands (docs/PROTOCOL.md, "Messages (zmq transport)"). What the real gateway
// does with them is in topics.test.js.
const test = require('node:test');
const assert = require('node:assert');
const fs = require('fs');
const os = require('os');
const path = require('path');
const zmq = require('zeromq');
const { Worker, TOPIC_MAX } = require('..');

const id = (n) => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(n));
  return b;
};
const B = (s) => Buffer.from(s);

async function stand() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wsgw-nodeframes-'));
  const router = new zmq.Router({ linger: 0, receiveTimeout: 3000 });
  const endpoint = `ipc://${dir}/control`;
  await router.bind(endpoint);
  const w = new Worker(endpoint, 'p', { attachTimeout: 5000 });
  const hello = await router.receive();
  assert.deepStrictEqual(hello.slice(1, 5).map(String), ['HELLO', '2', 'p', 'zmq']);
  const peer = hello[0];
  await router.send([peer, 'WELCOME', '4', '60000', '', '0', '0', '']);
  await w.ready;
  assert.strictEqual(w.workerId, 4);
  const s = {
    w,
    // The next command the worker sent, without its routing id; heartbeats skipped.
    async got() {
      for (;;) {
        const f = await router.receive();
        assert.ok(f[0].equals(peer));
        if (!(f.length === 2 && String(f[1]) === 'HEARTBEAT')) return f.slice(1);
      }
    },
    answer: (...frames) => router.send([peer, ...frames]),
    async event() {
      const ev = await w.recv(3000);
      assert.ok(ev, 'no event within 3 s');
      return ev;
    },
    async close() {
      await w.detach();
      router.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  return s;
}

const same = (got, want) => assert.deepStrictEqual(got.map((b) => b.toString('hex')),
  want.map((b) => Buffer.from(b).toString('hex')));

test('subscribe and unsubscribe frames', { timeout: 10000 }, async (t) => {
  const s = await stand();
  t.after(() => s.close());
  assert.strictEqual(s.w.subscribe(42n, 'room:a'), true);
  same(await s.got(), [B('SUBSCRIBE'), id(42), B('room:a')]);
  s.w.unsubscribe(1n << 63n, Buffer.from([0, 0x62, 0xff]));
  same(await s.got(), [B('UNSUBSCRIBE'), id(1n << 63n), Buffer.from([0, 0x62, 0xff])]);
  s.w.subscribe(7, 'caf\u00e9');
  same(await s.got(), [B('SUBSCRIBE'), id(7), B('caf\u00e9')]);
});

test('topic limits', { timeout: 10000 }, async (t) => {
  const s = await stand();
  t.after(() => s.close());
  for (const bad of ['', Buffer.alloc(0), 'x'.repeat(TOPIC_MAX + 1), '\u00e9'.repeat(128)]) {
    assert.throws(() => s.w.subscribe(1n, bad), RangeError);
    assert.throws(() => s.w.publish(bad, 'm'), RangeError);
    assert.throws(() => s.w.query(bad), RangeError);
  }
  s.w.subscribe(1n, 'x'.repeat(TOPIC_MAX));
  same(await s.got(), [B('SUBSCRIBE'), id(1), B('x'.repeat(TOPIC_MAX))]);
});

test('publish frames', { timeout: 10000 }, async (t) => {
  const s = await stand();
  t.after(() => s.close());
  s.w.publish('news', 'hello');
  same(await s.got(), [B('PUBLISH'), B('news'), B('text'), B('hello')]);
  s.w.publish(B('news'), Buffer.from([0, 1]), 77n);
  same(await s.got(), [B('PUBLISH'), B('news'), B('binary'), Buffer.from([0, 1]), id(77)]);
  s.w.publish('news', new Uint8Array([0x62]), 0);
  same(await s.got(), [B('PUBLISH'), B('news'), B('binary'), B('b'), id(0)]);
  s.w.publish('n', '');
  same(await s.got(), [B('PUBLISH'), B('n'), B('text'), B('')]);
});

test('sendMany frames', { timeout: 10000 }, async (t) => {
  const s = await stand();
  t.after(() => s.close());
  const ids = [5n, 0x0102030405060708n, (1n << 64n) - 1n];
  s.w.sendMany(ids, 'hi all');
  same(await s.got(), [B('SENDMANY'), B('text'), B('hi all'), Buffer.concat(ids.map(id))]);
  assert.strictEqual(s.w.sendMany([], 'nobody'), true);
  const many = [...Array(3000).keys()].map(BigInt);
  s.w.sendMany(new Set(many), Buffer.from([0xff]));
  const f = await s.got();
  same(f.slice(0, 3), [B('SENDMANY'), B('binary'), Buffer.from([0xff])]);
  assert.strictEqual(f[3].length, 3000 * 8);
  for (let i = 0; i < 3000; i++) assert.strictEqual(f[3].readBigUInt64BE(8 * i), BigInt(i));
});

test('query frames and the topic answer', { timeout: 10000 }, async (t) => {
  const s = await stand();
  t.after(() => s.close());
  const q1 = s.w.query('lobby');
  const q2 = s.w.query('lobby', 0xabcdef);
  assert.strictEqual(q2, 0xabcdefn);
  assert.notStrictEqual(q1, s.w.query('other'));
  same(await s.got(), [B('QUERY'), id(q1), B('lobby')]);
  same(await s.got(), [B('QUERY'), id(0xabcdef), B('lobby')]);
  await s.got();
  await s.answer('TOPIC', id(q1), 'lobby', '3', Buffer.concat([id(11), id(1n << 40n), id(13)]));
  let ev = await s.event();
  assert.deepStrictEqual([ev.type, ev.conn, ev.topic, ev.subscribers, ev.conns],
    ['topic', q1, 'lobby', 3, [11n, 1n << 40n, 13n]]);
  await s.answer('TOPIC', id(q2), 'lobby', '5000', Buffer.alloc(0));
  ev = await s.event();
  assert.deepStrictEqual([ev.subscribers, ev.conns], [5000, null]);
  await s.answer('TOPIC', id(9), 'empty', '0', Buffer.alloc(0));
  ev = await s.event();
  assert.deepStrictEqual([ev.subscribers, ev.conns], [0, []]);
  // Bytes that are not UTF-8 come back as the same bytes through topicBytes.
  await s.answer('TOPIC', id(9), Buffer.from([0xff, 0xfe]), '0', Buffer.alloc(0));
  ev = await s.event();
  s.w.publish(ev.topicBytes, 'x');
  same(await s.got(), [B('PUBLISH'), Buffer.from([0xff, 0xfe]), B('text'), B('x')]);
  for (const bad of [
    ['TOPIC', id(1), 't', '1', Buffer.alloc(7)],
    ['TOPIC', Buffer.from([1]), 't', '0', Buffer.alloc(0)],
    ['TOPIC', id(1), 't', 'many', Buffer.alloc(0)],
    ['TOPIC', id(1), 't', '3', id(1)],
    ['TOPIC', id(1), 't'],
  ]) {
    await s.answer(...bad);
    assert.strictEqual((await s.event()).type, 'error');
  }
});

test('stat frames and the answer', { timeout: 10000 }, async (t) => {
  const s = await stand();
  t.after(() => s.close());
  s.w.stat(314n);
  same(await s.got(), [B('STAT'), id(314)]);
  await s.answer('STAT', id(314), '4886718345', '4321');
  let ev = await s.event();
  assert.deepStrictEqual([ev.type, ev.conn, ev.queued, ev.ageMs], ['stat', 314n, 4886718345, 4321]);
  await s.answer('GONE', id(315));
  ev = await s.event();
  assert.deepStrictEqual([ev.type, ev.conn], ['gone', 315n]);
  for (const bad of [['STAT', id(1), '9'], ['STAT', id(1), '-1', '0']]) {
    await s.answer(...bad);
    assert.strictEqual((await s.event()).type, 'error');
  }
});
