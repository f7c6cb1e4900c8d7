#!/usr/bin/python3
"""Chat worker: rooms are topics, so it keeps no member lists and any number of chat
workers can serve one pool.  It speaks the JSON of wsgw-chat (workers/chat/chat.c), so the
demo page (demo/) works with it too.

  client: {"type":"join","room":R,"name":N}  {"type":"leave","room":R}
          {"type":"say","room":R,"text":T}   {"type":"count","room":R}
  server: {"type":"joined"|"left","room":R,"name":N,"time":MS}
          {"type":"message","room":R,"name":N,"text":T,"time":MS}  ("self":true for the sender)
          {"type":"count","room":R,"members":N}  {"type":"resync"}  {"type":"error","error":E}

usage: chat.py --control ENDPOINT --pool NAME"""
import argparse
import json
import os
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from wsgw import Worker  # noqa: E402

LIMITS = {"room": 64, "name": 32, "text": 2000}  # bytes of UTF-8, as wsgw-chat has them


def out(msg):
    return json.dumps(msg, ensure_ascii=False, separators=(",", ":"))


def parse(data):
    """The request in a client message, or raises ValueError with what is wrong."""
    if not isinstance(data, str) or len(data) > 8192:
        raise ValueError("messages are JSON text")
    try:
        req = json.loads(data)
    except ValueError:
        raise ValueError("bad JSON")
    if not isinstance(req, dict) or req.get("type") not in ("join", "leave", "say", "count"):
        raise ValueError("unknown type")
    need = {"join": ("room", "name"), "say": ("room", "text")}.get(req["type"], ("room",))
    for k in need:
        v = req.get(k)
        if not isinstance(v, str) or not v:
            raise ValueError("no " + k)
        try:
            n = len(v.encode("utf-8"))
        except UnicodeEncodeError:  # a lone surrogate escaped in the JSON
            raise ValueError("bad JSON")
        if n > LIMITS[k]:
            raise ValueError(k + " too long")
        if any(c < " " and (k != "text" or c not in "\n\t") or c == "\x7f" for c in v):
            raise ValueError("control characters")
    return req


class Chat:
    def __init__(self, w):
        self.w = w
        self.rooms = {}    # conn -> {room: name}
        self.pending = {}  # query id -> the connection that asked, or None: tell the room

    def notice(self, kind, room, name):
        """joined/left to the room, then the member count (the gateway runs our commands
        in order, so the count sees the change)."""
        t = "room:" + room
        now = int(time.time() * 1000)
        self.w.publish(t, out(dict(type=kind, room=room, name=name, time=now)))
        self.pending[self.w.query(t)] = None

    def on_message(self, ev):
        try:
            req = parse(ev.data)
        except ValueError as e:
            self.w.send(ev.conn, out(dict(type="error", error=str(e))))
            return
        mine = self.rooms.setdefault(ev.conn, {})
        room, t = req["room"], "room:" + req["room"]
        if req["type"] == "join":
            again = req.get("again") is True
            if mine.get(room) == req["name"] and not again:
                return
            mine[room] = req["name"]
            self.w.subscribe(ev.conn, t)
            if not again:
                self.notice("joined", room, req["name"])
        elif req["type"] == "count":
            self.pending[self.w.query(t)] = ev.conn
        elif room not in mine:
            self.w.send(ev.conn, out(dict(type="error", error="not in that room")))
        elif req["type"] == "leave":
            self.w.unsubscribe(ev.conn, t)
            self.notice("left", room, mine.pop(room))
        else:
            msg = dict(type="message", room=room, name=mine[room], text=req["text"],
                       time=int(time.time() * 1000))
            self.w.publish(t, out(msg), exclude=ev.conn)    # everyone else
            self.w.send(ev.conn, out(dict(msg, self=True)))  # the sender's copy

    def on_topic(self, ev):
        if ev.conn not in self.pending or not ev.topic.startswith("room:"):
            return
        asker = self.pending.pop(ev.conn)
        msg = out(dict(type="count", room=ev.topic[5:], members=ev.subscribers))
        if asker is None:
            self.w.publish(ev.topic, msg)
        else:
            self.w.send(asker, msg)

    def on_close(self, conn):
        # The gateway ended its subscriptions; the rooms hear of it.
        for room, name in self.rooms.pop(conn, {}).items():
            self.notice("left", room, name)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--control", required=True, help="the gateway's control endpoint")
    ap.add_argument("--pool", required=True, help="the pool to serve")
    a = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    w = Worker(a.control, a.pool)
    chat = Chat(w)
    print("chat.py: worker %d serving pool %s" % (w.worker_id, a.pool), file=sys.stderr,
          flush=True)
    try:
        for ev in w:
            if ev.type == "message":
                chat.on_message(ev)
            elif ev.type == "topic":
                chat.on_topic(ev)
            elif ev.type in ("close", "gone"):
                chat.on_close(ev.conn)
            elif ev.type == "open":
                if ev.authorize:
                    w.accept(ev.conn)
                if ev.resumed:  # from a chat worker that died: we do not know its names
                    w.send(ev.conn, out({"type": "resync"}))
    except KeyboardInterrupt:
        pass
    finally:
        w.detach()


if __name__ == "__main__":
    main()
