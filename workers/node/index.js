'use strict';
// wsgw worker library for Node.js: serve a wsgw gateway's WebSocket connections over its
// ZeroMQ ("zmq") transport. docs/PROTOCOL.md in the wsgw tree is the wire format.
//
//   const { Worker } = require('wsgw-worker');
//   const w = await Worker.attach('ipc:///run/wsgw/control', 'chat');
//   for await (const ev of w) if (ev.type === 'message') w.send(ev.conn, ev.data);
//
// Heartbeats run on a timer, so they go out as long as the event loop is not blocked for
// a whole heartbeat interval (a worker silent for three intervals is dead to the gateway).
//
// Delivery is at least once. An event counts as handled when the consumer asks for the
// next one (calls recv() again, or the for-await loop comes round); the worker then
// acknowledges it to the gateway (ACK, in batches of 32, and before it waits for input).
// If the worker dies, the gateway gives every event it had not acknowledged to the
// connection's next worker: events this one handled but had not acknowledged yet may be
// handled twice, and none is lost.
//
// A live upgrade of the gateway (`wsgw ctl upgrade`) moves the worker to the new gateway
// process without a re-attach: the old one sends MOVE; once the consumer has handled
// every event before it, the worker acknowledges them, answers MOVED and keeps every
// command (send(), publish(), ...) until RESUME, from the new process (or from the old
// one if the upgrade failed), then sends them in order. The socket's routing id is the
// worker's own ("wsgw1-PID-RANDOM"), so the new process knows it when its DEALER
// reconnects, which it does every 10 ms.

const crypto = require('crypto');
const zmq = require('zeromq');

const PROTOCOL_VERSION = 2;
const QUEUE_MAX = 4096; // events read ahead of the application
const TOPIC_MAX = 255; // bytes of a topic
const TOPIC_LIST_MAX = 1024; // a TOPIC answer lists the subscribers when at most this many
// The gateway counts these from WELCOME on; ACK N says the first N are handled.
const COUNTED = new Set(['OPEN', 'MESSAGE', 'CLOSE', 'GONE']);
const ACK_BATCH = 32;

class WorkerError extends Error {}

// Connection ids are 64-bit: BigInt, so none is ever rounded into another.
function idFrame(conn) {
  const b = Buffer.allocUnsafe(8);
  b.writeBigUInt64BE(BigInt(conn));
  return b;
}

const str = (b) => b.toString('utf8');

// A topic as bytes: a string is UTF-8; 1 to TOPIC_MAX bytes or a RangeError.
function topicFrame(t) {
  const b = typeof t === 'string' ? Buffer.from(t, 'utf8') : Buffer.from(t);
  if (b.length < 1 || b.length > TOPIC_MAX)
    throw new RangeError(`a topic is 1 to ${TOPIC_MAX} bytes, not ${b.length}`);
  return b;
}

// [kind, payload] frames: a string is a text message, anything else binary.
const payload = (data) => (typeof data === 'string' ? ['text', data] : ['binary', Buffer.from(data)]);

const isDecimal = (b) => b.length > 0 && b.length <= 20 && /^[0-9]+$/.test(str(b));

class Worker {
  // control: the gateway's control endpoint; pool: the pool to serve.
  // opts.curveServerKey: the gateway's Z85 public key (turns CURVE on);
  // opts.curveKeypair: {publicKey, secretKey} of this worker (generated when absent);
  // opts.attachTimeout: ms to wait for WELCOME before `ready` rejects (default: forever);
  // opts.hwm: ZeroMQ high-water marks, in messages (default 100000).
  constructor(control, pool, opts = {}) {
    this.control = control;
    this.pool = pool;
    this.workerId = null;
    this.heartbeat = 1000;
    this.connections = new Set(); // BigInt ids of the connections this worker holds
    this.dropped = 0;             // commands dropped while not attached
    this.reattaches = 0;
    this._queries = 0;
    this._hwm = opts.hwm || 100000;
    this._curve = null;
    if (opts.curveServerKey) {
      const kp = opts.curveKeypair || zmq.curveKeyPair();
      this._curve = { curveServerKey: opts.curveServerKey, curvePublicKey: kp.publicKey,
        curveSecretKey: kp.secretKey };
    }
    this._events = [];
    this._moveAt = null; // a live upgrade: MOVE came after this many counted messages
    this._held = null;   // commands kept between MOVED and RESUME
    this.moves = 0;      // live upgrades followed
    this._waiters = [];
    this._out = [];
    this._writing = false;
    this._attached = false;
    this._closed = false;
    this._sock = null;
    // Acknowledgements, per attachment (_gen): counted messages received, handled by the
    // consumer, acknowledged; _ret: the queue item of the event handed out last; _ackOut:
    // an ACK still last in _out, which a later count may overwrite.
    this._gen = 0;
    this._rcvd = this._handled = this._acked = 0;
    this._ret = null;
    this._ackOut = null;
    this.ready = new Promise((resolve, reject) => {
      this._ready = { resolve, reject };
    });
    this.ready.catch(() => {}); // whoever awaits it sees the error; no unhandled rejection
    if (opts.attachTimeout != null) {
      this._attachTimer = setTimeout(() => {
        if (this._attached || this._closed) return;
        this._fail(new WorkerError(`no WELCOME from ${control} within ${opts.attachTimeout} ms`));
      }, opts.attachTimeout);
    }
    this._hello();
    this._timer = setInterval(() => this._tick(), 50);
  }

  // Creates a worker and waits for its WELCOME; rejects with WorkerError on ERROR/timeout.
  static async attach(control, pool, opts) {
    const w = new Worker(control, pool, opts);
    await w.ready;
    return w;
  }

  // True between WELCOME and a detach (false while re-attaching).
  get attached() {
    return this._attached;
  }

  _fail(err) {
    this._shutdown();
    this._sock.close();
    this._ready.reject(err);
  }

  // ---------------------------------------------------------------- attachment

  _hello() {
    // A fresh socket each time: whatever was queued for the old gateway is stale.
    if (this._sock) this._sock.close();
    this._out = [];
    this._writing = false;
    this._attached = false;
    // Counting starts again at WELCOME; events still queued from before are not
    // acknowledged to the new attachment.
    this._gen++;
    this._rcvd = this._handled = this._acked = 0;
    this._ret = null;
    this._ackOut = null;
    if (this._held) this.dropped += this._held.length; // the attachment they were for ended
    this._held = null;
    this._moveAt = null;
    // A routing id of our own: a gateway that takes this worker over in a live upgrade
    // knows it by that id when the DEALER reconnects ("wsgw1-" says this library follows
    // such a hand-over), and it reconnects within 10 ms, not ZeroMQ's 100.
    const routingId = `wsgw1-${process.pid}-${crypto.randomBytes(8).toString('hex')}`;
    const s = new zmq.Dealer({ linger: 0, sendHighWaterMark: this._hwm,
      receiveHighWaterMark: this._hwm, routingId, reconnectInterval: 10, ...(this._curve || {}) });
    s.connect(this.control);
    this._sock = s;
    const now = Date.now();
    this._helloAt = this._lastHeard = this._lastSent = now;
    this._out.push(['HELLO', String(PROTOCOL_VERSION), this.pool, 'zmq', String(process.pid)]);
    this._flush();
    this._readLoop(s);
  }

  _welcome(f) {
    this.workerId = Number(str(f[1]));
    this.heartbeat = Math.max(Number(str(f[2])) || 1000, 1);
    this._sock.sendTimeout = 3 * this.heartbeat;
    this._attached = true;
    if (this._attachTimer) clearTimeout(this._attachTimer);
    this._ready.resolve(this);
  }

  // The gateway no longer knows us: forget our connections, say HELLO again.
  _detached() {
    for (const c of [...this.connections].sort((a, b) => (a < b ? -1 : 1)))
      this._emit({ type: 'close', conn: c, code: 1006, reason: 'worker detached' });
    this.connections.clear();
    this.reattaches++;
    this._hello();
  }

  _tick() {
    if (this._closed) return;
    const now = Date.now();
    const hb = this.heartbeat;
    if (!this._attached) {
      if (this.workerId !== null && now - this._helloAt >= 3 * hb) this._hello();
      return;
    }
    // Not reading (the application is behind) is no sign of a dead gateway.
    if (this._resume) this._lastHeard = now;
    if (now - this._lastHeard >= 3 * hb) {
      this._detached();
      return;
    }
    if (now - this._lastSent >= hb) {
      if (this._handled > this._acked && this._held === null) this._ack(); // a heartbeat too
      else this._push(['HEARTBEAT']);
    }
  }

  // ---------------------------------------------------------------- acknowledgements

  // The consumer came back for more: the event handed out last is handled.
  _took() {
    const r = this._ret;
    if (r) {
      this._ret = null;
      if (r.gen === this._gen) this._handled = r.seq;
    }
    if (this._handled - this._acked >= ACK_BATCH) this._ack();
    this._maybeMove();
  }

  // MOVE came: once every counted message before it is handled (their commands sent),
  // acknowledge them, answer MOVED, and keep every command until RESUME.
  _maybeMove() {
    if (this._moveAt === null || this._handled < this._moveAt) return;
    this._moveAt = null;
    this._ack();
    if (this._push(['MOVED'])) this._held = [];
  }

  // RESUME: whichever gateway serves us now takes what was kept, in order.
  _resumeSends() {
    this._moveAt = null;
    if (this._held === null) return;
    const held = this._held;
    this._held = null;
    this.moves++;
    for (const f of held) this._push(f);
  }

  // ACK goes after the commands the handled events caused: a count may only be raised in
  // an ACK that is still the last thing queued, never moved ahead of later commands.
  _ack() {
    if (!this._attached || this._held !== null || this._handled <= this._acked) return;
    this._acked = this._handled;
    const out = this._out;
    if (this._ackOut && out.length && out[out.length - 1] === this._ackOut) {
      this._ackOut[1] = String(this._acked);
      return;
    }
    this._ackOut = ['ACK', String(this._acked)];
    this._push(this._ackOut);
  }

  // ---------------------------------------------------------------- receiving

  async _readLoop(s) {
    while (!this._closed && s === this._sock) {
      let f;
      try {
        f = await s.receive();
      } catch (e) {
        return; // the socket was closed: a newer one has its own loop
      }
      if (s !== this._sock) return;
      this._lastHeard = Date.now();
      const ev = this._dispatch(f);
      if (ev) this._emit(ev, this._rcvd);
      // An application slower than the gateway: stop reading, so ZeroMQ's queues (and then
      // the gateway's TCP backpressure on the clients) hold the rest, not this process.
      if (this._events.length >= QUEUE_MAX)
        await new Promise((r) => { this._resume = r; });
    }
  }

  _dispatch(f) {
    const verb = str(f[0]);
    const n = f.length;
    if (this._attached && COUNTED.has(verb)) this._rcvd++;
    switch (verb) {
      case 'MESSAGE':
        if (n !== 4) break;
        if (str(f[2]) === 'binary')
          return { type: 'message', conn: f[1].readBigUInt64BE(), data: f[3], binary: true };
        return { type: 'message', conn: f[1].readBigUInt64BE(), data: str(f[3]), binary: false };
      case 'HEARTBEAT':
        return null;
      case 'MOVE':
        if (!this._attached || this._held !== null) return null;
        this._moveAt = this._rcvd;
        this._maybeMove(); // at once when the consumer has handled everything
        return null;
      case 'RESUME':
        if (this._attached) this._resumeSends();
        return null;
      case 'OPEN': {
        if (n < 3) break;
        const conn = f[1].readBigUInt64BE();
        const flags = str(f[2]).split(',');
        const fields = {};
        for (let i = 3; i + 1 < n; i += 2) fields[str(f[i])] = str(f[i + 1]);
        this.connections.add(conn);
        return { type: 'open', conn, fields, resumed: flags.includes('resumed'),
          authorize: flags.includes('authorize') };
      }
      case 'CLOSE': {
        if (n < 3) break;
        const conn = f[1].readBigUInt64BE();
        this.connections.delete(conn);
        return { type: 'close', conn, code: Number(str(f[2])), reason: n > 3 ? str(f[3]) : '' };
      }
      case 'TOPIC': {
        if (n !== 5 || f[1].length !== 8 || f[4].length % 8 !== 0 || !isDecimal(f[3])) break;
        const count = Number(str(f[3]));
        const ids = [];
        for (let i = 0; i < f[4].length; i += 8) ids.push(f[4].readBigUInt64BE(i));
        if (ids.length !== 0 && ids.length !== count) break;
        return { type: 'topic', conn: f[1].readBigUInt64BE(), topic: str(f[2]), topicBytes: f[2],
          subscribers: count, conns: ids.length || count === 0 ? ids : null };
      }
      case 'STAT':
        if (n !== 4 || f[1].length !== 8 || !isDecimal(f[2]) || !isDecimal(f[3])) break;
        return { type: 'stat', conn: f[1].readBigUInt64BE(), queued: Number(str(f[2])),
          ageMs: Number(str(f[3])) };
      case 'GONE': {
        if (n < 2) break;
        const conn = f[1].readBigUInt64BE();
        this.connections.delete(conn);
        return { type: 'gone', conn };
      }
      case 'ERROR': {
        const reason = n > 1 ? str(f[1]) : '';
        if (!this._attached && this.workerId === null) {
          this._fail(new WorkerError(reason)); // refused at the first HELLO
          return null;
        }
        if (reason === 'not attached') this._detached();
        return { type: 'error', conn: null, reason };
      }
      case 'WELCOME':
        if (!this._attached && n >= 3) {
          this._welcome(f);
          return null;
        }
        break;
    }
    return { type: 'error', conn: null,
      reason: `unexpected message from the gateway: ${f.slice(0, 3).map(str).join(' ')}` };
  }

  // seq: the count of the messages received up to this event; null for one the worker
  // made itself (a close after a detach), which acknowledges nothing.
  _emit(ev, seq = null) {
    const item = { ev, gen: this._gen, seq };
    const w = this._waiters.shift();
    if (w) w(item);
    else this._events.push(item);
  }

  _handOut(item) {
    if (item.seq !== null) this._ret = item;
    return item.ev;
  }

  // The next event, or null after timeoutMs (undefined: wait as long as it takes; null
  // too once the worker is detached). Calling it says the event it gave last is handled.
  recv(timeoutMs) {
    this._took();
    if (this._events.length) {
      const item = this._events.shift();
      if (this._resume && this._events.length < QUEUE_MAX / 2) {
        const r = this._resume;
        this._resume = null;
        r();
      }
      return Promise.resolve(this._handOut(item));
    }
    if (this._closed) return Promise.resolve(null);
    // Nothing to hand out: what is handled is acknowledged before waiting.
    this._ack();
    return new Promise((resolve) => {
      let t = null;
      const waiter = (item) => {
        if (t) clearTimeout(t);
        resolve(item ? this._handOut(item) : null);
      };
      this._waiters.push(waiter);
      if (timeoutMs !== undefined) {
        t = setTimeout(() => {
          const i = this._waiters.indexOf(waiter);
          if (i >= 0) this._waiters.splice(i, 1);
          resolve(null);
        }, timeoutMs);
      }
    });
  }

  [Symbol.asyncIterator]() {
    return {
      next: async () => {
        const ev = await this.recv();
        return ev ? { value: ev, done: false } : { value: undefined, done: true };
      },
      return: async () => ({ value: undefined, done: true }),
    };
  }

  // ---------------------------------------------------------------- commands

  _push(frames) {
    if (!this._attached) {
      this.dropped++;
      return false;
    }
    if (this._held !== null && frames[0] !== 'HEARTBEAT') {
      // Between MOVED and RESUME: kept, in order. A HEARTBEAT still goes (it is lost
      // harmlessly if the connection is changing gateways).
      this._held.push(frames);
      return true;
    }
    this._out.push(frames);
    this._lastSent = Date.now();
    if (!this._writing) this._flush();
    return true;
  }

  // zeromq 6 allows one send in flight per socket: commands wait their turn here. The
  // queue and the flag belong to the current socket; a loop left on an old one just ends.
  async _flush() {
    if (this._writing) return;
    this._writing = true;
    const s = this._sock;
    const out = this._out;
    while (out.length) {
      const frames = out.shift();
      if (frames === this._ackOut) this._ackOut = null; // on its way: no longer to raise
      try {
        await s.send(frames);
      } catch (e) {
        if (s !== this._sock || this._closed) return;
        // EAGAIN: the gateway took nothing for three heartbeat intervals; it is gone.
        this._writing = false;
        this.dropped++;
        this._detached();
        return;
      }
      if (s !== this._sock) return;
    }
    this._writing = false;
  }

  // Sends a message to the client: a string as text, a Buffer/Uint8Array as binary.
  // False if it was dropped because the worker is re-attaching.
  send(conn, data) {
    return this._push(['SEND', idFrame(conn), ...payload(data)]);
  }

  // Subscribes conn (one of this worker's connections) to topic (a string or Buffer, 1 to
  // 255 bytes, else a RangeError): it gets what is published there until unsubscribe() or
  // its close. A 'gone' event answers for a conn that is not (or no longer) this worker's.
  subscribe(conn, topic) {
    return this._push(['SUBSCRIBE', idFrame(conn), topicFrame(topic)]);
  }

  // Ends conn's subscription to topic.
  unsubscribe(conn, topic) {
    return this._push(['UNSUBSCRIBE', idFrame(conn), topicFrame(topic)]);
  }

  // Sends data (string: text, Buffer: binary) to every subscriber of topic, whichever worker
  // holds it, except the connection `exclude` (the sender, say; null: none). Each subscriber
  // gets a topic's messages in the order they were published.
  publish(topic, data, exclude = null) {
    const frames = ['PUBLISH', topicFrame(topic), ...payload(data)];
    if (exclude !== null && exclude !== undefined) frames.push(idFrame(exclude));
    return this._push(frames);
  }

  // Sends data to each connection of conns (an iterable of this worker's ids), in one
  // command. An empty list sends nothing (and returns true).
  sendMany(conns, data) {
    const list = [...conns];
    if (!list.length) return true;
    const ids = Buffer.allocUnsafe(8 * list.length);
    list.forEach((c, i) => ids.writeBigUInt64BE(BigInt(c), 8 * i));
    return this._push(['SENDMANY', ...payload(data), ids]);
  }

  // Asks how many connections subscribe to topic. A 'topic' event answers, its conn being
  // queryId (by default a number of this worker's counting). Returns the query's id (a
  // BigInt), or null when the command was dropped because the worker is re-attaching.
  query(topic, queryId = null) {
    const id = queryId === null || queryId === undefined ? BigInt(++this._queries) : BigInt(queryId);
    return this._push(['QUERY', idFrame(id), topicFrame(topic)]) ? id : null;
  }

  // Asks how much the gateway holds for conn: a 'stat' event answers (queued bytes, ageMs of
  // the oldest), or 'gone' when conn is not this worker's.
  stat(conn) {
    return this._push(['STAT', idFrame(conn)]);
  }

  // Closes the client (code 1000-4999, reason at most 123 bytes of UTF-8).
  close(conn, code = 1000, reason = '') {
    return this._push(['CLOSE', idFrame(conn), String(code), reason]);
  }

  // Lets an `authorize` client in, with a subprotocol it offered and extra response
  // headers ("Name: value" strings or [name, value] pairs).
  accept(conn, protocol = null, headers = []) {
    const h = headers.map((x) => (typeof x === 'string' ? x : `${x[0]}: ${x[1]}`));
    return this._push(['ACCEPT', idFrame(conn), protocol || '', ...h]);
  }

  // Answers an `authorize` client with an HTTP status (400-599) instead.
  reject(conn, status = 403, reason = '') {
    return this._push(['REJECT', idFrame(conn), String(status), reason]);
  }

  // Raw multipart frames, for protocol extensions and tests.
  sendFrames(frames) {
    return this._push(frames);
  }

  _shutdown() {
    this._closed = true;
    this._attached = false;
    clearInterval(this._timer);
    if (this._attachTimer) clearTimeout(this._attachTimer);
    for (const w of this._waiters.splice(0)) w(null);
    if (this._resume) this._resume();
  }

  // Says BYE (the gateway moves our connections to the rest of the pool) and closes.
  async detach() {
    if (this._closed) return;
    if (this._attached) {
      // What was handled is not handed to another worker again. The event given out last
      // is not known to be: it may be (at least once, never lost).
      this._ack();
      this._out.push(['BYE']);
      this._flush();
      const t0 = Date.now();
      while ((this._out.length || this._writing) && Date.now() - t0 < 1000)
        await new Promise((r) => setTimeout(r, 5));
    }
    const s = this._sock;
    this._shutdown();
    s.close();
  }
}

module.exports = { Worker, WorkerError, PROTOCOL_VERSION, TOPIC_MAX, TOPIC_LIST_MAX,
  curveKeyPair: zmq.curveKeyPair };
