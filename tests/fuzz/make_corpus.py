#!/usr/bin/env python3
"""Writes the seed corpora of tests/fuzz/corpus/<target>/ from scratch.

Each seed is a small meaningful input in the encoding its harness reads (see the comment
at the top of each fuzz_<target>.c): valid traffic, each way of being refused, and the
edges in between. Run it after changing an encoding: tests/fuzz/make_corpus.py
"""
import os
import shutil
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---- frame: [flags][3 chunk sizes][small max_msg][client stream] -----------------------

KEY = bytes([0x37, 0xFA, 0x21, 0x3D])


def frame(op, payload=b"", fin=True, mask=KEY, rsv=0, length=None, ext=None):
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | rsv | op
    m = 0x80 if mask is not None else 0
    if ext == 16 or (ext is None and 126 <= n <= 0xFFFF):
        hdr = bytes([b0, m | 126]) + struct.pack(">H", n)
    elif ext == 64 or (ext is None and n > 0xFFFF):
        hdr = bytes([b0, m | 127]) + struct.pack(">Q", n)
    else:
        hdr = bytes([b0, m | n])
    if mask is None:
        return hdr + payload
    return hdr + mask + bytes(c ^ mask[i % 4] for i, c in enumerate(payload))


def close(code=None, reason=b""):
    return frame(8, b"" if code is None else struct.pack(">H", code) + reason)


def frame_seeds():
    euro = "h\u00e9llo \u20ac \U0001D11E".encode()
    s = {
        "text": frame(1, b"Hello"),
        "text-utf8": frame(1, euro),
        "binary": frame(2, bytes(range(200))),
        "empty-text": frame(1),
        "fragmented": frame(1, b"Hel", fin=False) + frame(0, b"lo", fin=False) + frame(0, b"!"),
        "fragmented-utf8-split": frame(1, euro[:2], fin=False) + frame(0, euro[2:9], fin=False)
        + frame(0, euro[9:]),
        "fragmented-empty": frame(2, fin=False) + frame(0, fin=False) + frame(0),
        "ping-in-fragmented": frame(1, b"ab", fin=False) + frame(9, b"p") + frame(0, b"cd"),
        "ping-pong": frame(9, b"ping") + frame(10, b"pong") + frame(9),
        "ping-125": frame(9, b"x" * 125),
        "ping-126": frame(9, b"x" * 126),
        "ping-no-fin": frame(9, b"x", fin=False),
        "close-1000": close(1000, b"bye"),
        "close-empty": close(),
        "close-1-byte": frame(8, b"\x03"),
        "close-1005": close(1005),
        "close-1004": close(1004),
        "close-2999": close(2999),
        "close-4999-utf8": close(4999, "\u00e9t\u00e9".encode()),
        "close-bad-reason": close(1000, b"\xc3\x28"),
        "close-then-text": close(1000) + frame(1, b"after"),
        "len16": frame(2, b"y" * 300),
        "len16-nonminimal": frame(2, b"y" * 10, ext=16),
        "len64-nonminimal": frame(2, b"y" * 10, ext=64),
        "len64-truncated": frame(2, b"z" * 64, length=70000),
        "len64-topbit": frame(2, b"", length=1 << 63, ext=64),
        "unmasked": frame(1, b"hi", mask=None),
        "rsv1": frame(1, b"hi", rsv=0x40),
        "rsv3": frame(1, b"hi", rsv=0x10),
        "opcode-3": frame(3, b"hi"),
        "opcode-b": frame(0xB, b"hi"),
        "cont-alone": frame(0, b"hi"),
        "text-in-fragmented": frame(1, b"a", fin=False) + frame(1, b"b"),
        "overlong": frame(1, b"\xc0\xaf"),
        "surrogate": frame(1, b"a\xed\xa0\x80"),
        "above-max-cp": frame(1, b"\xf4\x90\x80\x80"),
        "truncated-utf8": frame(1, b"ok\xe2\x82"),
        "utf8-split-bad": frame(1, b"\xe0", fin=False) + frame(0, b"\x80\x80"),
        "many-small": b"".join(frame(1 + (i & 1), bytes([65 + i % 26]) * (i % 7)) for i in range(40)),
        "mask-zero": frame(1, b"plain", mask=b"\0\0\0\0"),
        "partial-header": frame(1, b"abc")[:1],
        "partial-mask": frame(2, b"y" * 300)[:6],
    }
    for i, (name, stream) in enumerate(sorted(s.items())):
        flags = i % 2  # bit 0: stop at the first close, as the gateway does
        chunks = bytes([i % 5, (3 * i) % 17, 1 + i % 64])
        small = [0, 1, 5, 16, 125, 200][i % 6]
        write("frame", name, bytes([flags]) + chunks + bytes([small]) + stream)
    write("frame", "stop-at-close", b"\x01\x02\x03\x04\x10" + close(1000) + frame(1, b"x"))
    write("frame", "small-max", b"\x00\x00\x00\x00\x04" + frame(1, b"abc", fin=False) + frame(0, b"de"))


# ---- handshake: [flags][chunk size][small max_header_bytes][small max_headers][request] -

BASE = [
    ("Host", "server.example.com"),
    ("Upgrade", "websocket"),
    ("Connection", "Upgrade"),
    ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ("Sec-WebSocket-Version", "13"),
]


def request(target="/chat", method="GET", version="HTTP/1.1", headers=None, extra=(),
            drop=(), tail=b""):
    hs = [(k, v) for k, v in (BASE if headers is None else headers) if k not in drop]
    hs += list(extra)
    head = f"{method} {target} {version}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hs) + "\r\n"
    return head.encode("latin-1") + tail


def handshake_seeds():
    s = {
        "rfc6455": request(extra=[("Origin", "http://example.com"),
                                  ("Sec-WebSocket-Protocol", "chat, superchat")]),
        "query": request("/chat?room=1&user=x"),
        "absolute-form": request("http://server.example.com/chat?x=1"),
        "absolute-no-path": request("ws://server.example.com"),
        "root": request("/"),
        "frames-after": request(tail=bytes([0x81, 0x85]) + KEY + b"hello"),
        "cookies": request(extra=[("Cookie", "a=1"), ("Cookie", "b=2"), ("X-Rep", "1"),
                                  ("x-rep", "2")]),
        "extensions": request(extra=[("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits")]),
        "lowercase": request(headers=[(k.lower(), v) for k, v in BASE]),
        "token-lists": request(headers=[("Host", "h:80"), ("Upgrade", "h2c, WebSocket"),
                                        ("Connection", "keep-alive, upgrade"),
                                        ("Sec-WebSocket-Key", "AQIDBAUGBwgJCgsMDQ4PEA=="),
                                        ("Sec-WebSocket-Version", "13")]),
        "ows": request(headers=[(k, f" \t{v} \t") for k, v in BASE]),
        "ipv6-host": request(headers=[("Host", "[::1]:8080")] + BASE[1:]),
        "post": request(method="POST"),
        "http10": request(version="HTTP/1.0"),
        "http09": b"GET /chat\r\n\r\n",
        "no-host": request(drop=("Host",)),
        "two-hosts": request(extra=[("Host", "other")]),
        "bad-host": request(headers=[("Host", "a b")] + BASE[1:]),
        "no-upgrade": request(drop=("Upgrade",)),
        "no-connection": request(drop=("Connection",)),
        "bad-key": request(headers=BASE[:3] + [("Sec-WebSocket-Key", "short=="), BASE[4]]),
        "key-bad-char": request(headers=BASE[:3] + [("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ!="), BASE[4]]),
        "no-version": request(drop=("Sec-WebSocket-Version",)),
        "version-8": request(headers=BASE[:4] + [("Sec-WebSocket-Version", "8")]),
        "obs-fold": request(extra=[("X-Fold", "a\r\n b")]),
        "content-length": request(extra=[("Content-Length", "5")], tail=b"abcde"),
        "content-length-0": request(extra=[("Content-Length", "0")]),
        "chunked": request(extra=[("Transfer-Encoding", "chunked")]),
        "fragment": request("/chat#frag"),
        "space-before-colon": request(extra=[("X-A ", "1")]),
        "empty-name": request(extra=[("", "1")]),
        "bad-name": request(extra=[("X(A)", "1")]),
        "nul-in-value": request(extra=[("X-A", "a\0b")]),
        "bare-lf": request().replace(b"\r\n", b"\n"),
        "leading-crlf": b"\r\n\r\n" + request(),
        "many-headers": request(extra=[(f"X-{i}", str(i)) for i in range(40)]),
        "long-value": request(extra=[("X-Long", "v" * 3000)]),
        "star-target": request("*"),
        "bad-target": request("chat"),
        "partial": request()[:60],
        "empty-protocol": request(extra=[("Sec-WebSocket-Protocol", "")]),
    }
    for i, (name, req) in enumerate(sorted(s.items())):
        flags = (i * 37) & 0xFF  # picks extra headers and whether the protocol is echoed
        write("handshake", name, bytes([flags, 1 + (i * 7) % 50, 10 + i * 3, 3 + i % 12]) + req)


# ---- config: the file's text ------------------------------------------------------------

def config_seeds():
    s = {
        "empty": "",
        "comment": "# nothing but a comment\n\n   # indented\n",
        "full": """# a typical deployment
listen = 127.0.0.1:8080
listen = [::1]:8080
admin = 127.0.0.1:9100
route = /=echo
route = /chat=chat,authorize
route = /api/=api
max-message = 1048576
max-header = 16384
max-outbound = 33554432
outbound-policy = drop
max-conns = 10000
handshake-timeout = 2.5
idle-timeout = 30
close-timeout = 1
log-level = warn
control = tcp://127.0.0.1:5555
runtime-dir = /tmp/wsgw-fuzz
heartbeat = 0.5
authorize-timeout = 3
orphan-timeout = 10
ring-size = 16777216
shm-mode = 0660
forward-header = Origin
forward-header = X-Request-Id
""",
        "no-equals": "listen 0.0.0.0:80\nmax-message\t65536\r\n",
        "crlf": "listen = *:8080\r\nroute = /x=y\r\n",
        "trailing-comment": "max-message = 4096 # small\n",
        "abbrev": "max-m = 100\nlis = :9000\n",
        "help": "help\n",
        "version": "version\n",
        "nested": "config = /etc/wsgw.conf\n",
        "unknown": "no-such-option = 1\n",
        "bad-listen": "listen = localhost\n",
        "bad-listen6": "listen = [::1:8080\n",
        "bad-route": "route = chat=x\n",
        "echo-authorize": "route = /=echo,authorize\n",
        "route-option": "route = /a=b,other\n",
        "max-message-0": "max-message = 0\n",
        "max-message-huge": "max-message = 2147483649\n",
        "negative": "max-header = -1\n",
        "ring-not-pow2": "ring-size = 5000\n",
        "ring-too-small": "max-message = 1048576\nring-size = 4096\n",
        # A record takes the message and 64 bytes; a ring holds two: the edge either side.
        "ring-edge-fits": "max-message = 2097088\nring-size = 4194304\n",
        "ring-edge-short": "max-message = 2097089\nring-size = 4194304\n",
        "outbound-too-small": "max-message = 1048576\nmax-outbound = 1024\n",
        "timeout-nan": "idle-timeout = nan\n",
        "timeout-inf": "heartbeat = inf\n",
        "timeout-tiny": "close-timeout = 0.0001\n",
        "shm-mode-bad": "shm-mode = 0777\n",
        "curve-clients-only": "curve-clients = /tmp/keys\n",
        "curve": "curve-secret-key = /tmp/secret\ncurve-clients = /tmp/keys\n",
        "forward-many": "".join(f"forward-header = h{i}\n" for i in range(17)),
        "listen-many": "".join(f"listen = 127.0.0.1:{9000 + i}\n" for i in range(17)),
        "routes-many": "".join(f"route = /r{i}=p\n" for i in range(65)),
        "long-prefix": "route = /" + "a" * 300 + "=p\n",
        "long-control": "control = tcp://" + "h" * 300 + ":1\n",
        "no-newline": "log-level = debug",
        "value-only": "= 1\n",
        "dashes": "--listen = 127.0.0.1:1\n",
        "empty-value": "listen =\n",
        "nul": "listen = 127.0.0.1:8080\0junk\n",
    }
    for name, text in s.items():
        write("config", name, text.encode())


# ---- zmsg: [max_message][frames: len (255: u16 follows), bytes] --------------------------

def zframes(*frames, max_message=0x80):
    out = bytes([max_message])
    for f in frames:
        f = f.encode() if isinstance(f, str) else f
        out += bytes([len(f)]) if len(f) < 255 else b"\xff" + struct.pack("<H", len(f))
        out += f
    return out


CID = struct.pack(">Q", 42)


def zmsg_seeds():
    # 64 headers of 126 bytes: 64 x (126 + CRLF) = 8192, ZMSG_ACCEPT_BYTES exactly.
    hdrs = [f"X-H{i:02}: ".ljust(126, "v") for i in range(64)]
    s = {
        "send-text": zframes("SEND", CID, "text", "hello"),
        "send-binary": zframes("SEND", CID, "binary", bytes(range(256))),
        "send-empty": zframes("SEND", CID, "text", ""),
        "send-too-big": zframes("SEND", CID, "text", "x" * 40, max_message=16),
        "send-bad-kind": zframes("SEND", CID, "utf8", "x"),
        "send-3-frames": zframes("SEND", CID, "text"),
        "close": zframes("CLOSE", CID, "1000", "bye"),
        "close-4999": zframes("CLOSE", CID, "4999", ""),
        "close-999": zframes("CLOSE", CID, "999", ""),
        "close-space": zframes("CLOSE", CID, " 1001", "r"),
        "close-plus": zframes("CLOSE", CID, "+1001", "r"),
        "close-reason-123": zframes("CLOSE", CID, "1000", "r" * 123),
        "close-reason-124": zframes("CLOSE", CID, "1000", "r" * 124),
        "close-nul": zframes("CLOSE", CID, "10\x0000", ""),
        "reject": zframes("REJECT", CID, "403", "forbidden"),
        "reject-600": zframes("REJECT", CID, "600", ""),
        "accept": zframes("ACCEPT", CID, "chat", "X-A: 1", "Set-Cookie: s=1"),
        "accept-empty-protocol": zframes("ACCEPT", CID, ""),
        "accept-only-id": zframes("ACCEPT", CID),
        "accept-64": zframes("ACCEPT", CID, "", *hdrs[:64]),
        "accept-65": zframes("ACCEPT", CID, "p", *hdrs[:64], "X: 1"),
        "accept-8192": zframes("ACCEPT", CID, "", *hdrs),
        "accept-8193": zframes("ACCEPT", CID, "", *hdrs[:63], "x" * 127),
        "short-id": zframes("SEND", b"\x01\x02", "text", "x"),
        "verb-only": zframes("SEND"),
        "unknown-verb": zframes("HELLO", CID, "1"),
        "lowercase-verb": zframes("send", CID, "text", "x"),
        "nothing": b"",
        "too-many-frames": zframes("ACCEPT", CID, *["x"] * 70),
        "accept-protocol-255": zframes("ACCEPT", CID, "p" * 255),
        "accept-protocol-256": zframes("ACCEPT", CID, "p" * 256),
        "subscribe": zframes("SUBSCRIBE", CID, "news"),
        "unsubscribe": zframes("UNSUBSCRIBE", CID, "news"),
        "subscribe-256": zframes("SUBSCRIBE", CID, "t" * 256),
        "query": zframes("QUERY", CID, "t" * 255),
        "stat": zframes("STAT", CID),
        "stat-extra": zframes("STAT", CID, "x"),
        "publish": zframes("PUBLISH", "news", "text", "hello"),
        "publish-exclude": zframes("PUBLISH", "news", "binary", bytes(range(40)), CID),
        "publish-bad-exclude": zframes("PUBLISH", "news", "text", "x", b"\x01"),
        "publish-too-big": zframes("PUBLISH", "n", "text", "x" * 40, max_message=16),
        "sendmany": zframes("SENDMANY", "text", "hi", CID + struct.pack(">Q", 43)),
        "sendmany-odd-ids": zframes("SENDMANY", "binary", "hi", CID + b"\x01"),
        "sendmany-no-ids": zframes("SENDMANY", "text", "hi", ""),
    }
    for name, data in s.items():
        write("zmsg", name, data)


# ---- ring: [capacity][tail u64][head - tail s32][data area][steps] ----------------------

HDR = 16


def rec(type_, payload=b"", conn=7, flags=0, length=None):
    n = len(payload) if length is None else length
    body = payload + b"\0" * (-len(payload) % 8)
    return struct.pack("<IHHQ", n, type_, flags, conn) + body


WRAP = struct.pack("<IHH", 0, 0xFFFF, 0)


def field(name, value):
    name = name.encode() if isinstance(name, str) else name
    value = value.encode() if isinstance(value, str) else value
    return bytes([len(name)]) + name + struct.pack("<I", len(value)) + value


def ring_input(cap_exp, tail, used, area, steps=b"", misaligned=False):
    cap = 64 << cap_exp
    area = area[:cap]
    return (bytes([cap_exp | (0x80 if misaligned else 0)]) + struct.pack("<Qi", tail, used)
            + area + b"\0" * (cap - len(area) if steps else 0) + steps)


def step(head_delta, off, data):
    return struct.pack("<hHB", head_delta, off, len(data)) + data


def ring_seeds():
    accept = field("protocol", "chat") + field("header", "X-A: 1")
    two = rec(16, b"hello", conn=1) + rec(16, b"\x00\x01", conn=2, flags=1)
    opens = b"".join(field(f":h{i}", "v" * i) for i in range(20))
    s = {
        "empty": ring_input(0, 0, 0, b""),
        "send": ring_input(1, 0, len(rec(16, b"hello")), rec(16, b"hello")),
        "two": ring_input(2, 0, len(two), two),
        "accept": ring_input(2, 0, len(rec(17, accept)), rec(17, accept)),
        "accept-truncated-field": ring_input(2, 0, 32, rec(17, b"\x08protoc")),
        "close-reject": ring_input(2, 0, 64, rec(3, b"\x03\xe8bye") + rec(18, b"\x01\x93no")),
        "max-payload": ring_input(0, 0, 32, rec(16, b"x" * 16)),
        "over-max-payload": ring_input(0, 0, 64, rec(16, b"x" * 17)),
        "len-past-head": ring_input(1, 0, 16, rec(16, b"x" * 8)),
        "len-huge": ring_input(1, 0, 32, rec(16, length=0xFFFFFFF0)),
        # tail at 96 of 128: a wrap marker skips the last 32 bytes, the record is at 0
        "wrap": ring_input(1, 96, 56, rec(16, b"late", conn=2) + b"\0" * 72 + WRAP + b"\0" * 24),
        "wrap-last-8": ring_input(0, 56, 32, rec(16, b"abc") + b"\0" * 32 + WRAP),
        "wrap-past-head": ring_input(0, 32, 8, b"\0" * 32 + WRAP),
        "record-across-end": ring_input(0, 48, 32, b"\0" * 48 + rec(16, b"0123456789")[:16]),
        "head-unaligned": ring_input(1, 0, 5, rec(16, b"hi")),
        "head-behind": ring_input(1, 64, -8, b""),
        "head-past-cap": ring_input(0, 0, 72, b""),
        "tail-unaligned": ring_input(1, 3, 8, b""),
        # indexes about to wrap 2^64: offset 104, one record there and one at 0
        "index-wrap": ring_input(1, (1 << 64) - 24, 48, rec(16, b"y") + b"\0" * 80
                                 + rec(16, b"x")),
        "steps": ring_input(1, 0, len(two), two, steps=step(24, 48, rec(16, b"more"))
                            + step(8, 64, b"\xff\xff\xff\xff") + step(-64, 0, b"")),
        "steps-rewrite-header": ring_input(2, 0, 24, rec(16, b"a"), steps=step(24, 24, rec(16, b"b"))
                                           + step(24, 48, struct.pack("<I", 9999))),
        "misaligned": ring_input(0, 0, 0, b"", misaligned=True),
        "fields-many": ring_input(5, 0, len(rec(1, opens)), rec(1, opens)),
    }
    for name, data in s.items():
        write("ring", name, data)

    # Producer mode (0x40): the gateway pushes, the worker moves its tail.
    def producer(cap_exp, tail, used, *steps):
        return (bytes([0x40 | cap_exp]) + struct.pack("<Qi", tail, used) + b"\0" * (64 << cap_exp)
                + b"".join(struct.pack("<BH", op, arg) for op, arg in steps))

    PUSH, PUSH_NOTIFY, RELEASE_TO, TAIL_PLUS = 0, 2, 1, 3
    p = {
        "producer-fill": producer(0, 0, 0, (PUSH, 8), (PUSH, 8), (PUSH, 8), (PUSH_NOTIFY, 0)),
        "producer-release": producer(0, 0, 0, (PUSH, 16), (PUSH, 8), (RELEASE_TO, 0), (PUSH, 16),
                                     (PUSH_NOTIFY, 8)),
        "producer-wrap": producer(1, 96, 0, (PUSH, 16), (PUSH_NOTIFY, 40), (RELEASE_TO, 2),
                                  (PUSH, 24), (RELEASE_TO, 0), (PUSH, 48)),
        "producer-tail-back": producer(0, 64, 0, (PUSH, 16), (TAIL_PLUS, 0xFFF8), (PUSH, 16),
                                       (PUSH, 16)),
        "producer-tail-ahead": producer(0, 0, 16, (TAIL_PLUS, 24), (PUSH, 32), (PUSH, 32)),
        "producer-tail-unaligned": producer(0, 0, 0, (PUSH, 8), (TAIL_PLUS, 3), (PUSH, 40),
                                            (PUSH, 40)),
        "producer-emsgsize": producer(0, 0, 0, (PUSH, 17), (PUSH, 16), (PUSH, 0)),
        "producer-index-wrap": producer(1, (1 << 64) - 40, 0, (PUSH, 8), (PUSH_NOTIFY, 16),
                                        (RELEASE_TO, 0), (PUSH, 56), (PUSH, 56)),
    }
    for name, data in p.items():
        write("ring", name, data)


# ---- segment: [file size u32][8 record lengths u16][patches: offset u32, n u8, bytes] ---

MAGIC = 0x314D485357475357
CTL = 512


def patches(blob, off):
    out = b""
    for i in range(0, len(blob), 255):
        piece = blob[i:i + 255]
        out += struct.pack("<IB", off + i, len(piece)) + piece
    return out


def segment(caps=(64, 64), magic=MAGIC, version=1, hdr_size=80, size=None, flags=0,
            ctl=(1024, 1024 + CTL), data=None, indexes=((0, 0), (0, 0)), records=b"",
            lens=(5, 0, 100, 16, 200, 7, 8, 9)):
    if data is None:
        data = (4096, 4096 + caps[0])
    real = 4096 + caps[0] + caps[1]
    seg_size = real if size is None else size
    hdr = struct.pack("<QIIQII", magic, version, hdr_size, seg_size, 1234, flags)
    for i in range(2):
        hdr += struct.pack("<QQQ", ctl[i], data[i], caps[i])
    out = struct.pack("<I", real) + struct.pack("<8H", *lens) + patches(hdr, 0)
    for i in range(2):
        head, tail = indexes[i]
        if head or tail:
            out += patches(struct.pack("<Q", head), ctl[i]) + patches(struct.pack("<Q", tail), ctl[i] + 128)
    if records:  # into the to-worker ring, which the attaching worker consumes
        out += patches(records, data[0])
    return out


def segment_seeds():
    two = rec(16, b"hello", conn=1) + rec(17, field("header", "X: y"), conn=2)
    s = {
        "fresh": segment(),
        "fresh-4k": segment(caps=(4096, 4096)),
        "asymmetric": segment(caps=(64, 1024)),
        "records": segment(caps=(256, 64), indexes=((len(two), 0), (0, 0)), records=two),
        "records-corrupt": segment(caps=(256, 64), indexes=((48, 0), (0, 0)),
                                   records=rec(16, length=200)),
        "to-gateway-busy": segment(caps=(64, 256), indexes=((0, 0), (128, 64))),
        "to-gateway-full": segment(caps=(64, 64), indexes=((0, 0), (64, 0))),
        "index-near-wrap": segment(indexes=((0, 0), ((1 << 64) - 8, (1 << 64) - 16))),
        "bad-magic": segment(magic=MAGIC + 1),
        "version-2": segment(version=2),
        "hdr-size": segment(hdr_size=88),
        "size-mismatch": segment(size=4096 + 64),
        "flags": segment(flags=1),
        "cap-not-pow2": segment(caps=(96, 64)),
        "cap-too-small": segment(caps=(32, 64)),
        "ctl-unaligned": segment(ctl=(1024 + 64, 1536)),
        "ctl-overlap": segment(ctl=(1024, 1024 + 256)),
        "ctl-in-header": segment(ctl=(0, 1536)),
        "data-overlap": segment(data=(4096, 4096 + 32)),
        "data-past-end": segment(data=(4096, 4096 + 128)),
        "data-unaligned": segment(data=(4096 + 8, 4096 + 128)),
        "data-in-ctl": segment(data=(1024, 4096 + 64)),
        "offset-huge": segment(data=(4096, (1 << 64) - 64)),
        "head-unaligned": segment(indexes=((4, 0), (0, 0))),
        "head-past-cap": segment(indexes=((0, 0), (72, 0))),
        "tail-ahead": segment(indexes=((0, 8), (0, 0))),
        "too-small": struct.pack("<I", 4095) + bytes(16),
        "empty-file": struct.pack("<I", 0) + bytes(16),
    }
    for name, data in s.items():
        write("segment", name, data)


def main():
    if os.path.isdir(CORPUS):
        shutil.rmtree(CORPUS)
    frame_seeds()
    handshake_seeds()
    config_seeds()
    zmsg_seeds()
    ring_seeds()
    segment_seeds()


if __name__ == "__main__":
    main()
