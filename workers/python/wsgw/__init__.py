"""wsgw worker library for Python: serve a wsgw gateway's WebSocket connections over its
ZeroMQ ("zmq") transport.  docs/PROTOCOL.md in the wsgw tree is the wire format.

    from wsgw import Worker
    w = Worker("ipc:///run/wsgw/control", "chat")
    for ev in w:
        if ev.type == "message":
            w.send(ev.conn, ev.data)

One Worker is one DEALER socket and is not thread-safe: use it from one thread.  Heartbeats
are sent from inside the iteration (and recv()), so the application must come back to the
loop at least once per heartbeat interval (the gateway's --heartbeat, 1 s by default);
a worker silent for three intervals is dead to the gateway.

Delivery is at least once.  An event counts as handled when the application asks for the
next one (calls recv() again, or iterates on); the worker then acknowledges it to the
gateway (ACK, in batches of 32, and before it waits for input).  If the worker dies, the
gateway gives every event it had not acknowledged to the connection's next worker: events
this one handled but had not acknowledged yet may be handled twice, and none is lost.

A live upgrade of the gateway (`wsgw ctl upgrade`) moves the worker to the new gateway
process without a re-attach: the old one sends MOVE; the worker acknowledges what it
handled, answers MOVED and keeps every command it is given (send(), publish(), ...)
until RESUME, from the new process (or from the old one if the upgrade failed), then
sends them in order.  The socket's routing id is the worker's own ("wsgw1-PID-RANDOM"),
so the new process knows it when its DEALER reconnects, which it does every 10 ms.
"""

import os
import struct
import time

import zmq

__all__ = ["Worker", "Event", "WorkerError", "PROTOCOL_VERSION", "TOPIC_MAX",
           "TOPIC_LIST_MAX"]

PROTOCOL_VERSION = 2
TOPIC_MAX = 255          # bytes of a topic
TOPIC_LIST_MAX = 1024    # a TOPIC answer lists the subscribers when at most this many

_ID = struct.Struct(">Q")

# The gateway counts these from WELCOME on; ACK N says the first N are handled.
_COUNTED = frozenset((b"OPEN", b"MESSAGE", b"CLOSE", b"GONE"))
ACK_BATCH = 32


class WorkerError(Exception):
    """The gateway refused the worker (ERROR reason from HELLO), or it did not answer."""


class Event:
    """One thing that happened to a connection (or to the worker).

    type      'open' | 'message' | 'close' | 'gone' | 'error' | 'topic' | 'stat'
    conn      connection id (int); None for 'error'; 'topic': the query's id
    data      message payload: str for a text message, bytes for a binary one
    binary    True for a binary message
    fields    'open': dict of OPEN fields (':path', ':query', ':peer', ':protocols',
              lowercase forwarded headers) as str
    resumed   'open': the connection moved here from a worker that died
    authorize 'open': answer accept() or reject() before the client is let in
    code      'close': the WebSocket close code (int)
    reason    'close': the close reason; 'error': why the gateway refused a command
    topic     'topic': the topic asked about (str; bytes that are not UTF-8 survive
              as surrogates, so passing it back to publish() gives the same bytes)
    subscribers  'topic': how many connections subscribe to it
    conns     'topic': their ids (list of int) when at most TOPIC_LIST_MAX, else None
    queued    'stat': bytes queued for the client, not yet written to its socket
    age_ms    'stat': how long the oldest of them has waited, in ms
    """

    __slots__ = ("type", "conn", "data", "binary", "fields", "resumed", "authorize",
                 "code", "reason", "topic", "subscribers", "conns", "queued", "age_ms")

    def __init__(self, type, conn=None, data=None, binary=False, fields=None,
                 resumed=False, authorize=False, code=None, reason=None, topic=None,
                 subscribers=None, conns=None, queued=None, age_ms=None):
        self.type = type
        self.conn = conn
        self.data = data
        self.binary = binary
        self.fields = fields
        self.resumed = resumed
        self.authorize = authorize
        self.code = code
        self.reason = reason
        self.topic = topic
        self.subscribers = subscribers
        self.conns = conns
        self.queued = queued
        self.age_ms = age_ms

    def __repr__(self):
        parts = ["type=%r" % self.type]
        for k in ("conn", "data", "fields", "code", "reason", "topic", "subscribers",
                  "conns", "queued", "age_ms"):
            v = getattr(self, k)
            if v is not None:
                parts.append("%s=%r" % (k, v))
        for k in ("binary", "resumed", "authorize"):
            if getattr(self, k):
                parts.append(k)
        return "Event(%s)" % ", ".join(parts)


def _s(b):
    # Header bytes are not guaranteed UTF-8; surrogateescape keeps them losslessly.
    return b.decode("utf-8", "surrogateescape")


def _key(k):
    return k.encode() if isinstance(k, str) else bytes(k)


def _topic(t):
    b = t.encode("utf-8", "surrogateescape") if isinstance(t, str) else bytes(t)
    if not 1 <= len(b) <= TOPIC_MAX:
        raise ValueError("a topic is 1 to %d bytes, not %d" % (TOPIC_MAX, len(b)))
    return b


def _payload(data):
    """(kind frame, payload frame): str is a text message, anything else binary."""
    if isinstance(data, str):
        return b"text", data.encode()
    return b"binary", bytes(data)


class Worker:
    """A worker attached to one pool of a wsgw gateway.

    control           the gateway's control endpoint (ipc://..., tcp://HOST:PORT)
    pool              the pool name (a --route of the gateway names it)
    curve_server_key  the gateway's Z85 public key: turns CURVE on
    curve_keypair     (public, secret) Z85 keys of this worker; generated if CURVE is on
                      and none is given (then only a gateway without --curve-clients
                      admits it)
    attach_timeout    seconds to wait for WELCOME in the constructor (None: forever);
                      past it, WorkerError.  ERROR from the gateway raises WorkerError.

    After a gateway restart (ERROR "not attached", or three heartbeat intervals without a
    word from it) the worker says HELLO again by itself.  Its connections belonged to the
    old attachment: each one it held gets a 'close' event (code 1006, reason
    "worker detached") so the application can forget it.
    """

    def __init__(self, control, pool, curve_server_key=None, curve_keypair=None,
                 attach_timeout=None, context=None, hwm=100000):
        self.control = control
        self.pool = pool
        self.worker_id = None
        self.heartbeat = 1.0
        self.connections = set()  # ids of the connections this worker holds
        self.dropped = 0          # commands dropped because the worker was not attached
        self.reattaches = 0
        self._queries = 0
        self._ctx = context or zmq.Context.instance()
        self._hwm = hwm
        self._curve = None
        if curve_server_key is not None:
            if curve_keypair is None:
                curve_keypair = zmq.curve_keypair()
            self._curve = (_key(curve_server_key), _key(curve_keypair[0]),
                           _key(curve_keypair[1]))
        self._sock = None
        self._held = None         # a live upgrade: commands kept between MOVE and RESUME
        self.moves = 0            # live upgrades followed
        self._pending = []
        self._attached = False
        self._closed = False
        # Acknowledgements, per attachment (_gen): counted messages received, handled by
        # the application, and acknowledged; _ret: (gen, count) of the event last returned.
        self._gen = 0
        self._rcvd = self._handled = self._acked = 0
        self._ret = None
        self._attach(attach_timeout)

    @property
    def attached(self):
        """True between WELCOME and a detach (False while re-attaching)."""
        return self._attached

    # ---------------------------------------------------------------- attachment

    def _open_socket(self):
        if self._sock is not None:
            self._sock.close(0)
        s = self._ctx.socket(zmq.DEALER)
        # A routing id of our own: a gateway that takes this worker over in a live upgrade
        # knows it by that id when the DEALER reconnects ("wsgw1-" says this library
        # follows such a hand-over), and it reconnects within 10 ms, not ZeroMQ's 100.
        s.setsockopt(zmq.ROUTING_ID, b"wsgw1-%d-%s" % (os.getpid(), os.urandom(8).hex().encode()))
        s.setsockopt(zmq.RECONNECT_IVL, 10)
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.SNDHWM, self._hwm)
        s.setsockopt(zmq.RCVHWM, self._hwm)
        if self._curve:
            s.setsockopt(zmq.CURVE_SERVERKEY, self._curve[0])
            s.setsockopt(zmq.CURVE_PUBLICKEY, self._curve[1])
            s.setsockopt(zmq.CURVE_SECRETKEY, self._curve[2])
        s.connect(self.control)
        self._sock = s

    def _hello(self):
        # A fresh socket each time: whatever was queued for the old gateway is stale.
        self._open_socket()
        self._attached = False
        if self._held:
            self.dropped += len(self._held)  # for connections of the attachment that ended
        self._held = None
        self._sock.send_multipart([b"HELLO", str(PROTOCOL_VERSION).encode(),
                                   self.pool.encode(), b"zmq", str(os.getpid()).encode()])
        now = time.monotonic()
        self._hello_at = now
        self._last_heard = self._last_sent = now

    def _welcome(self, f):
        if len(f) < 3:
            raise WorkerError("malformed WELCOME: %r" % (f,))
        self.worker_id = int(f[1])
        self.heartbeat = max(int(f[2]), 1) / 1000.0
        self._sock.setsockopt(zmq.SNDTIMEO, int(self.heartbeat * 3000))
        self._attached = True
        # Counting starts again: nothing from an earlier attachment is acknowledged here.
        self._gen += 1
        self._rcvd = self._handled = self._acked = 0
        self._ret = None

    def _attach(self, timeout):
        self._hello()
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            wait = None if deadline is None else max(deadline - time.monotonic(), 0)
            if not self._sock.poll(None if wait is None else int(wait * 1000)):
                self._sock.close(0)
                self._sock = None
                raise WorkerError("no WELCOME from %s within %.3g s" % (self.control, timeout))
            f = self._sock.recv_multipart()
            if f[0] == b"WELCOME":
                self._welcome(f)
                self._last_heard = time.monotonic()
                return
            if f[0] == b"ERROR":
                self._sock.close(0)
                self._sock = None
                raise WorkerError(_s(f[1]) if len(f) > 1 else "refused")

    def _detached(self, why):
        """The gateway no longer knows us: forget our connections, say HELLO again."""
        for c in sorted(self.connections):
            self._pending.append(Event("close", c, code=1006, reason="worker detached"))
        self.connections.clear()
        self.reattaches += 1
        self._hello()

    # ---------------------------------------------------------------- receiving

    def __iter__(self):
        return self

    def __next__(self):
        while True:
            ev = self.recv(None)
            if ev is not None:
                return ev
            if self._closed:
                raise StopIteration

    def recv(self, timeout=None):
        """The next event, or None after `timeout` seconds (None: wait as long as it
        takes).  Sends heartbeats and re-attaches while it waits.  Calling it says the
        event it returned last is handled (see the module's doc on delivery)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        self._took()
        while not self._closed:
            if self._pending:
                return self._pending.pop(0)
            try:
                f = self._sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                f = None
            now = time.monotonic()
            if f is not None:
                self._last_heard = now
                ev = self._dispatch(f)
                if ev is not None:
                    self._ret = (self._gen, self._rcvd)
                    self._tick(now)
                    return ev
                continue
            # Nothing to read: what is handled is acknowledged before waiting.
            self._ack()
            if self._tick(now):
                continue
            wake = self._next_tick()
            if deadline is not None:
                if now >= deadline:
                    return None
                wake = min(wake, deadline)
            self._sock.poll(max(int((wake - now) * 1000) + 1, 1))
        return None

    def _took(self):
        """The application came back for more: the event returned last is handled."""
        if self._ret is not None:
            gen, n = self._ret
            self._ret = None
            if gen == self._gen:
                self._handled = n
        if self._handled - self._acked >= ACK_BATCH:
            self._ack()

    def _ack(self):
        if self._attached and self._held is None and self._handled > self._acked:
            n = self._handled
            if self._send([b"ACK", str(n).encode()]):
                self._acked = n

    def _next_tick(self):
        hb = self.heartbeat
        if not self._attached:
            return self._hello_at + 3 * hb
        return min(self._last_sent + hb, self._last_heard + 3 * hb)

    def _tick(self, now):
        """Timers: heartbeat, dead gateway, unanswered HELLO.  True if it re-attached."""
        hb = self.heartbeat
        if not self._attached:
            if now - self._hello_at >= 3 * hb:
                self._hello()
                return True
            return False
        if now - self._last_heard >= 3 * hb:
            self._detached("missed 3 heartbeats")
            return True
        if now - self._last_sent >= hb:
            if self._handled > self._acked and self._held is None:
                self._ack()  # says as much as a heartbeat
            else:
                self._send([b"HEARTBEAT"])
        return False

    def _dispatch(self, f):
        verb = f[0]
        n = len(f)
        if verb in _COUNTED and self._attached:
            self._rcvd += 1
        if verb == b"MESSAGE" and n == 4:
            c = _ID.unpack(f[1])[0]
            if f[2] == b"binary":
                return Event("message", c, f[3], binary=True)
            return Event("message", c, f[3].decode("utf-8", "surrogateescape"))
        if verb == b"HEARTBEAT":
            return None
        if verb == b"MOVE" and self._attached:
            self._move()
            return None
        if verb == b"RESUME" and self._attached:
            self._resume()
            return None
        if verb == b"OPEN" and n >= 3:
            c = _ID.unpack(f[1])[0]
            flags = f[2].split(b",")
            fields = {}
            for i in range(3, n - 1, 2):
                fields[_s(f[i])] = _s(f[i + 1])
            self.connections.add(c)
            return Event("open", c, fields=fields, resumed=b"resumed" in flags,
                         authorize=b"authorize" in flags)
        if verb == b"CLOSE" and n >= 3:
            c = _ID.unpack(f[1])[0]
            self.connections.discard(c)
            return Event("close", c, code=int(f[2]), reason=_s(f[3]) if n > 3 else "")
        if verb == b"TOPIC" and n == 5 and len(f[1]) == 8 and len(f[4]) % 8 == 0 and \
                f[3].isdigit():
            ids = [x[0] for x in _ID.iter_unpack(f[4])]
            count = int(f[3])
            if len(ids) in (0, count):
                return Event("topic", _ID.unpack(f[1])[0], topic=_s(f[2]),
                             subscribers=count, conns=ids if ids or count == 0 else None)
        if verb == b"STAT" and n == 4 and len(f[1]) == 8 and f[2].isdigit() and \
                f[3].isdigit():
            return Event("stat", _ID.unpack(f[1])[0], queued=int(f[2]), age_ms=int(f[3]))
        if verb == b"GONE" and n >= 2:
            c = _ID.unpack(f[1])[0]
            self.connections.discard(c)
            return Event("gone", c)
        if verb == b"ERROR":
            reason = _s(f[1]) if n > 1 else ""
            if reason == "not attached":
                self._detached(reason)
            return Event("error", reason=reason)
        if verb == b"WELCOME" and not self._attached:
            self._welcome(f)
            return None
        return Event("error", reason="unexpected message from the gateway: %r" % (f[:3],))

    def _move(self):
        """MOVE: every message before it was received and (recv() came back) handled, with
        the commands it made already sent.  Say so, then keep everything until RESUME:
        the gateway that reads it may be another process."""
        if self._held is not None:
            return
        self._handled = self._rcvd
        self._ack()
        if self._send([b"MOVED"]):
            self._held = []

    def _resume(self):
        """RESUME: whichever gateway serves us now takes what was kept, in order."""
        if self._held is None:
            return
        held, self._held = self._held, None
        self.moves += 1
        for f in held:
            if not self._send(f):
                break

    # ---------------------------------------------------------------- commands

    def _send(self, frames):
        if not self._attached:
            self.dropped += 1
            return False
        if self._held is not None:
            # Between MOVED and RESUME: kept, in order.  A HEARTBEAT still goes (it is
            # lost harmlessly if the connection is changing gateways).
            if frames[0] != b"HEARTBEAT":
                self._held.append(frames)
                return True
        try:
            self._sock.send_multipart(frames)
        except zmq.Again:
            # The gateway took nothing for three heartbeat intervals: it is gone.
            self.dropped += 1
            self._detached("send timed out")
            return False
        self._last_sent = time.monotonic()
        return True

    def send(self, conn, data):
        """Send a message to the client: str as a text message, bytes as binary.
        False if it was dropped because the worker is re-attaching."""
        kind, payload = _payload(data)
        return self._send([b"SEND", _ID.pack(conn), kind, payload])

    def subscribe(self, conn, topic):
        """Subscribe conn (one of this worker's connections) to topic (str or bytes, 1 to
        TOPIC_MAX bytes; ValueError otherwise): from now on it gets what is published
        there, until unsubscribe() or its close.  A 'gone' event answers for a conn that
        is not (or no longer) this worker's."""
        return self._send([b"SUBSCRIBE", _ID.pack(conn), _topic(topic)])

    def unsubscribe(self, conn, topic):
        """End conn's subscription to topic."""
        return self._send([b"UNSUBSCRIBE", _ID.pack(conn), _topic(topic)])

    def publish(self, topic, data, exclude=None):
        """Send data (str: text, bytes: binary) to every subscriber of topic, whichever
        worker holds it, except the connection `exclude` (the sender, say).  Each
        subscriber gets a topic's messages in the order they were published."""
        kind, payload = _payload(data)
        frames = [b"PUBLISH", _topic(topic), kind, payload]
        if exclude is not None:
            frames.append(_ID.pack(exclude))
        return self._send(frames)

    def send_many(self, conns, data):
        """Send data to each connection in conns (this worker's), in one command.  An
        empty list sends nothing (and returns True)."""
        ids = b"".join(_ID.pack(c) for c in conns)
        if not ids:
            return True
        kind, payload = _payload(data)
        return self._send([b"SENDMANY", kind, payload, ids])

    def query(self, topic, query_id=None):
        """Ask how many connections subscribe to topic.  The answer is a 'topic' event
        whose conn is query_id (by default a number of this worker's counting).  Returns
        the query's id, to match the answer to the question, or None when the command was
        dropped because the worker is re-attaching."""
        if query_id is None:
            self._queries += 1
            query_id = self._queries
        return query_id if self._send([b"QUERY", _ID.pack(query_id), _topic(topic)]) else None

    def stat(self, conn):
        """Ask how much the gateway holds for conn: a 'stat' event answers (queued bytes,
        age_ms of the oldest), or 'gone' when conn is not this worker's."""
        return self._send([b"STAT", _ID.pack(conn)])

    def close(self, conn, code=1000, reason=""):
        """Close the client (code 1000-4999, reason at most 123 bytes of UTF-8)."""
        return self._send([b"CLOSE", _ID.pack(conn), str(int(code)).encode(),
                           reason.encode()])

    def accept(self, conn, protocol=None, headers=()):
        """Let an 'authorize' client in, answering with `protocol` (a subprotocol it
        offered) and extra response headers ("Name: value" strings or (name, value))."""
        frames = [b"ACCEPT", _ID.pack(conn), (protocol or "").encode()]
        for h in headers:
            if not isinstance(h, str):
                h = "%s: %s" % (h[0], h[1])
            frames.append(h.encode())
        return self._send(frames)

    def reject(self, conn, status=403, reason=""):
        """Answer an 'authorize' client with an HTTP status (400-599) instead."""
        return self._send([b"REJECT", _ID.pack(conn), str(int(status)).encode(),
                           reason.encode()])

    def send_frames(self, frames):
        """Send raw multipart frames (bytes) to the gateway: for protocol extensions and
        tests.  Whatever it does wrong, the gateway answers ERROR."""
        return self._send([_key(x) for x in frames])

    def detach(self):
        """Say BYE (the gateway moves our connections to the rest of the pool) and close."""
        if self._closed:
            return
        if self._attached:
            # What was handled is not handed to another worker again.  The event returned
            # last is not known to be: it may be (at least once, never lost).
            self._ack()
            try:
                self._sock.send(b"BYE", zmq.NOBLOCK)
            except zmq.ZMQError:
                pass
        self._closed = True
        self._attached = False
        # Linger briefly so the BYE leaves before the socket goes.
        self._sock.setsockopt(zmq.LINGER, 500)
        self._sock.close()
        self._sock = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.detach()
