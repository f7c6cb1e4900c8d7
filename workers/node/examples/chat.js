#!/usr/bin/env node
'use strict';
// Chat worker: rooms are topics, so it keeps no member lists and any number of chat workers
// can serve one pool. It speaks the JSON of wsgw-chat (workers/chat/chat.c), so the demo
// page (demo/) works with it too:
//   client: {"type":"join","room":R,"name":N}  {"type":"leave","room":R}
//           {"type":"say","room":R,"text":T}   {"type":"count","room":R}
//   server: {"type":"joined"|"left","room":R,"name":N,"time":MS}
//           {"type":"message","room":R,"name":N,"text":T,"time":MS} ("self":true for the sender)
//           {"type":"count","room":R,"members":N}  {"type":"resync"}  {"type":"error","error":E}
// usage: chat.js --control ENDPOINT --pool NAME
const { parseArgs } = require('util');
const { Worker } = require('..');

const LIMITS = { room: 64, name: 32, text: 2000 }; // bytes of UTF-8, as wsgw-chat has them
// eslint-disable-next-line no-control-regex
const CONTROL = /[\x00-\x1f\x7f]/, TEXT_CONTROL = /[\x00-\x08\x0b-\x1f\x7f]/; // text: \t \n
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
const NEED = { join: ['room', 'name'], leave: ['room'], say: ['room', 'text'], count: ['room'] };

// The request in a client message, or throws an Error saying what is wrong.
function parse(data) {
  if (typeof data !== 'string' || data.length > 8192) throw new Error('messages are JSON text');
  let req;
  try {
    req = JSON.parse(data);
  } catch (e) {
    throw new Error('bad JSON');
  }
  if (!req || typeof req !== 'object' || Array.isArray(req) || !Object.hasOwn(NEED, req.type))
    throw new Error('unknown type');
  for (const k of NEED[req.type]) {
    const v = req[k];
    if (typeof v !== 'string' || !v) throw new Error(`no ${k}`);
    if (LONE_SURROGATE.test(v)) throw new Error('bad JSON'); // escaped in the JSON
    if (Buffer.byteLength(v) > LIMITS[k]) throw new Error(`${k} too long`);
    if ((k === 'text' ? TEXT_CONTROL : CONTROL).test(v))
      throw new Error('control characters');
  }
  return req;
}

const out = (msg) => JSON.stringify(msg);
const now = () => Date.now();

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

  const rooms = new Map();   // conn -> Map(room -> name)
  const pending = new Map(); // query id -> the connection that asked, or null: tell the room

  // joined/left to the room, then the member count (the gateway runs our commands in
  // order, so the count sees the change).
  const notice = (type, room, name) => {
    const t = `room:${room}`;
    w.publish(t, out({ type, room, name, time: now() }));
    pending.set(w.query(t), null);
  };

  const onMessage = (ev) => {
    let req;
    try {
      req = parse(ev.data);
    } catch (e) {
      w.send(ev.conn, out({ type: 'error', error: e.message }));
      return;
    }
    if (!rooms.has(ev.conn)) rooms.set(ev.conn, new Map());
    const mine = rooms.get(ev.conn);
    const { room } = req;
    const t = `room:${room}`;
    if (req.type === 'join') {
      const again = req.again === true;
      if (mine.get(room) === req.name && !again) return;
      mine.set(room, req.name);
      w.subscribe(ev.conn, t);
      if (!again) notice('joined', room, req.name);
    } else if (req.type === 'count') {
      pending.set(w.query(t), ev.conn);
    } else if (!mine.has(room)) {
      w.send(ev.conn, out({ type: 'error', error: 'not in that room' }));
    } else if (req.type === 'leave') {
      const name = mine.get(room);
      mine.delete(room);
      w.unsubscribe(ev.conn, t);
      notice('left', room, name);
    } else {
      const msg = { type: 'message', room, name: mine.get(room), text: req.text, time: now() };
      w.publish(t, out(msg), ev.conn);            // everyone else
      w.send(ev.conn, out({ ...msg, self: true })); // the sender's copy
    }
  };

  const onTopic = (ev) => {
    if (!pending.has(ev.conn) || !ev.topic.startsWith('room:')) return;
    const asker = pending.get(ev.conn);
    pending.delete(ev.conn);
    const msg = out({ type: 'count', room: ev.topic.slice(5), members: ev.subscribers });
    if (asker === null) w.publish(ev.topicBytes, msg);
    else w.send(asker, msg);
  };

  for await (const ev of w) {
    if (ev.type === 'message') {
      onMessage(ev);
    } else if (ev.type === 'topic') {
      onTopic(ev);
    } else if (ev.type === 'close' || ev.type === 'gone') {
      // The gateway ended its subscriptions; the rooms hear of it.
      for (const [room, name] of rooms.get(ev.conn) || []) notice('left', room, name);
      rooms.delete(ev.conn);
    } else if (ev.type === 'open') {
      if (ev.authorize) w.accept(ev.conn);
      // From a chat worker that died: this one does not know its names.
      if (ev.resumed) w.send(ev.conn, out({ type: 'resync' }));
    }
  }
}

if (require.main === module) {
  main().catch((e) => {
    console.error(`chat.js: ${e.message}`);
    process.exit(1);
  });
}

module.exports = { parse };
