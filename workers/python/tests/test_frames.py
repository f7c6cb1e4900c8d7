"""The topic and fan-out verbs, frame by frame, against a raw ZeroMQ ROUTER standing where
the gateway stands (docs/PROTOCOL.md, "Messages (zmq transport)").  What the real gateway
does with them is in test_topics.py."""
import os
import shutil
import struct
import sys
import tempfile
import threading
import unittest

import zmq

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from wsgw import TOPIC_MAX, Worker  # noqa: E402

ID = struct.Struct(">Q")


class Frames(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="wsgw-pyframes-")
        self.ctx = zmq.Context()
        self.router = self.ctx.socket(zmq.ROUTER)
        self.router.setsockopt(zmq.LINGER, 0)
        self.router.setsockopt(zmq.RCVTIMEO, 3000)
        endpoint = "ipc://%s/control" % self.dir
        self.router.bind(endpoint)
        hello = {}

        def welcome():
            f = self.router.recv_multipart()
            hello["frames"] = f
            self.peer = f[0]
            self.router.send_multipart([f[0], b"WELCOME", b"4", b"60000", b"", b"0", b"0", b""])
        t = threading.Thread(target=welcome)
        t.start()
        self.w = Worker(endpoint, "p", attach_timeout=5, context=self.ctx)
        t.join(5)
        self.assertEqual(hello["frames"][1:5], [b"HELLO", b"2", b"p", b"zmq"])
        self.assertEqual(self.w.worker_id, 4)

    def tearDown(self):
        self.w.detach()
        self.router.close(0)
        self.ctx.term()
        shutil.rmtree(self.dir, ignore_errors=True)

    def got(self):
        """The next command the worker sent, without its routing id; heartbeats skipped."""
        while True:
            f = self.router.recv_multipart()
            self.assertEqual(f[0], self.peer)
            if f[1:] != [b"HEARTBEAT"]:
                return f[1:]

    def answer(self, *frames):
        self.router.send_multipart([self.peer] + list(frames))

    def event(self):
        ev = self.w.recv(3)
        self.assertIsNotNone(ev, "no event within 3 s")
        return ev

    def test_subscribe_unsubscribe(self):
        self.assertTrue(self.w.subscribe(42, "room:a"))
        self.assertEqual(self.got(), [b"SUBSCRIBE", ID.pack(42), b"room:a"])
        self.w.unsubscribe(1 << 63, b"\x00bin\xff")
        self.assertEqual(self.got(), [b"UNSUBSCRIBE", ID.pack(1 << 63), b"\x00bin\xff"])
        self.w.subscribe(7, "caf\u00e9")
        self.assertEqual(self.got(), [b"SUBSCRIBE", ID.pack(7), "caf\u00e9".encode()])

    def test_topic_limits(self):
        for bad in ("", b"", "x" * (TOPIC_MAX + 1), "\u00e9" * 128):  # 256 bytes of UTF-8
            with self.assertRaises(ValueError):
                self.w.subscribe(1, bad)
            with self.assertRaises(ValueError):
                self.w.publish(bad, "m")
            with self.assertRaises(ValueError):
                self.w.query(bad)
        self.w.subscribe(1, "x" * TOPIC_MAX)
        self.assertEqual(self.got(), [b"SUBSCRIBE", ID.pack(1), b"x" * TOPIC_MAX])

    def test_publish(self):
        self.w.publish("news", "hello")
        self.assertEqual(self.got(), [b"PUBLISH", b"news", b"text", b"hello"])
        self.w.publish(b"news", b"\x00\x01", exclude=77)
        self.assertEqual(self.got(), [b"PUBLISH", b"news", b"binary", b"\x00\x01", ID.pack(77)])
        self.w.publish("news", bytearray(b"ba"), exclude=0)
        self.assertEqual(self.got(), [b"PUBLISH", b"news", b"binary", b"ba", ID.pack(0)])
        self.w.publish("n", "")
        self.assertEqual(self.got(), [b"PUBLISH", b"n", b"text", b""])

    def test_send_many(self):
        ids = [5, 0x0102030405060708, (1 << 64) - 1]
        self.w.send_many(ids, "hi all")
        self.assertEqual(self.got(), [b"SENDMANY", b"text", b"hi all",
                                      b"".join(ID.pack(i) for i in ids)])
        self.assertTrue(self.w.send_many([], "nobody"))
        self.w.send_many(range(3000), b"\xff")  # any number, one frame of ids
        f = self.got()
        self.assertEqual(f[:3], [b"SENDMANY", b"binary", b"\xff"])
        self.assertEqual(len(f[3]), 3000 * 8)
        self.assertEqual([x[0] for x in ID.iter_unpack(f[3])], list(range(3000)))

    def test_query_and_topic_answer(self):
        q1 = self.w.query("lobby")
        q2 = self.w.query("lobby", query_id=0xabcdef)
        self.assertEqual(q2, 0xabcdef)
        self.assertNotEqual(q1, self.w.query("other"))
        self.assertEqual(self.got(), [b"QUERY", ID.pack(q1), b"lobby"])
        self.assertEqual(self.got(), [b"QUERY", ID.pack(0xabcdef), b"lobby"])
        self.got()
        self.answer(b"TOPIC", ID.pack(q1), b"lobby", b"3",
                    ID.pack(11) + ID.pack(1 << 40) + ID.pack(13))
        ev = self.event()
        self.assertEqual((ev.type, ev.conn, ev.topic, ev.subscribers, ev.conns),
                         ("topic", q1, "lobby", 3, [11, 1 << 40, 13]))
        self.answer(b"TOPIC", ID.pack(q2), b"lobby", b"5000", b"")
        ev = self.event()
        self.assertEqual((ev.type, ev.subscribers, ev.conns), ("topic", 5000, None))
        self.answer(b"TOPIC", ID.pack(9), b"empty", b"0", b"")
        ev = self.event()
        self.assertEqual((ev.subscribers, ev.conns), (0, []))
        # A topic that is not UTF-8 comes back as the same bytes when published to.
        self.answer(b"TOPIC", ID.pack(9), b"\xff\xfe", b"0", b"")
        ev = self.event()
        self.w.publish(ev.topic, "x")
        self.assertEqual(self.got(), [b"PUBLISH", b"\xff\xfe", b"text", b"x"])
        # Malformed: ids not a multiple of 8 bytes, a short id, frames missing.
        for bad in ([b"TOPIC", ID.pack(1), b"t", b"1", b"1234567"],
                    [b"TOPIC", b"\x01", b"t", b"0", b""],
                    [b"TOPIC", ID.pack(1), b"t", b"many", b""],
                    [b"TOPIC", ID.pack(1), b"t", b"3", ID.pack(1)],  # 3 counted, 1 listed
                    [b"TOPIC", ID.pack(1), b"t"]):
            self.answer(*bad)
            self.assertEqual(self.event().type, "error")

    def test_stat_and_answer(self):
        self.w.stat(314)
        self.assertEqual(self.got(), [b"STAT", ID.pack(314)])
        self.answer(b"STAT", ID.pack(314), b"4886718345", b"4321")
        ev = self.event()
        self.assertEqual((ev.type, ev.conn, ev.queued, ev.age_ms), ("stat", 314, 4886718345, 4321))
        self.answer(b"GONE", ID.pack(315))
        ev = self.event()
        self.assertEqual((ev.type, ev.conn), ("gone", 315))
        for bad in ([b"STAT", ID.pack(1), b"9"], [b"STAT", ID.pack(1), b"-1", b"0"]):
            self.answer(*bad)
            self.assertEqual(self.event().type, "error")


if __name__ == "__main__":
    unittest.main()
