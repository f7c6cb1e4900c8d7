"""The library's topic and fan-out verbs against the real gateway: two Python workers in
one pool, real WebSocket clients pinned to either."""
import asyncio
import time
import unittest

import websockets

from gwtest import Gateway, run
from wsgw import Worker


class Topics(unittest.TestCase):
    def setUp(self):
        # The test's workers are not in their receive loop all the time: no heartbeat
        # deadline during a test.
        self.gw = Gateway(["/=t"], ["--heartbeat", "20"])
        self.w = [Worker(self.gw.control, "t", attach_timeout=5) for _ in range(2)]

    def tearDown(self):
        for w in self.w:
            w.detach()
        self.gw.stop()

    def events(self, w, types, n, timeout=5):
        """The next n events of those types on w (others skipped)."""
        got = []
        deadline = time.monotonic() + timeout
        while len(got) < n:
            left = deadline - time.monotonic()
            self.assertGreater(left, 0, "only %d of %d %s events" % (len(got), n, types))
            ev = w.recv(min(left, 0.1))
            if ev is not None and ev.type in types:
                got.append(ev)
        return got

    def test_verbs(self):
        async def go():
            loop = asyncio.get_running_loop()
            clients = [await websockets.connect(self.gw.url("/c%d" % i)) for i in range(6)]
            owner = {}  # client index -> (worker, conn id)
            for k, ws in enumerate(clients):
                await ws.send("who %d" % k)
            for w in self.w:
                while True:
                    ev = await loop.run_in_executor(None, w.recv, 0.5)
                    if ev is None:
                        break
                    if ev.type == "message":
                        owner[int(ev.data.split()[1])] = (w, ev.conn)
            self.assertEqual(len(owner), 6)
            self.assertEqual({id(w) for w, _ in owner.values()}, {id(w) for w in self.w},
                             "all six clients were pinned to one worker")
            for w, conn in owner.values():
                self.assertTrue(w.subscribe(conn, "news"))
            # The two workers' commands travel on two sockets: wait until both took effect.
            for _ in range(100):
                self.w[0].query("news")
                ev = (await loop.run_in_executor(None, self.events, self.w[0], ("topic",), 1))[0]
                if ev.subscribers == 6:
                    break
                await asyncio.sleep(0.02)
            self.assertEqual(ev.subscribers, 6)

            async def expect(ks, data):
                for k in ks:
                    self.assertEqual(await asyncio.wait_for(clients[k].recv(), 5), data,
                                     "client %d" % k)

            async def quiet(ks):
                for k in ks:
                    with self.assertRaises(asyncio.TimeoutError):
                        await asyncio.wait_for(clients[k].recv(), 0.2)

            # One worker publishes to subscribers of both; the sender left out.
            self.w[0].publish("news", "to all but 0", exclude=owner[0][1])
            await expect(range(1, 6), "to all but 0")
            await quiet([0])
            self.w[1].publish(b"news", b"\x00bin")
            await expect(range(6), b"\x00bin")

            # QUERY: count and ids.
            qid = self.w[1].query("news")
            ev = (await loop.run_in_executor(None, self.events, self.w[1], ("topic",), 1))[0]
            self.assertEqual((ev.conn, ev.topic, ev.subscribers), (qid, "news", 6))
            self.assertEqual(sorted(ev.conns), sorted(c for _, c in owner.values()))

            # SENDMANY to one's own connections.
            w0 = [k for k in range(6) if owner[k][0] is self.w[0]]
            self.w[0].send_many([owner[k][1] for k in w0], "many")
            await expect(w0, "many")
            await quiet([k for k in range(6) if k not in w0])

            # UNSUBSCRIBE, and a close, stop delivery.
            w, c = owner[2]
            w.unsubscribe(c, "news")
            await clients[3].close()
            await asyncio.sleep(0.2)
            self.w[0].publish("news", "after")
            await expect([0, 1, 4, 5], "after")
            await quiet([2])
            qid = self.w[0].query("news")
            ev = (await loop.run_in_executor(None, self.events, self.w[0], ("topic",), 1))[0]
            self.assertEqual((ev.conn, ev.subscribers), (qid, 4))

            # STAT for one's own connection, GONE for another's.
            w, c = owner[0]
            w.stat(c)
            ev = (await loop.run_in_executor(None, self.events, w, ("stat",), 1))[0]
            self.assertEqual(ev.conn, c)
            self.assertGreaterEqual(ev.queued, 0)
            self.assertGreaterEqual(ev.age_ms, 0)
            other = next(x for x in self.w if x is not w)
            other.stat(c)
            ev = (await loop.run_in_executor(None, self.events, other, ("gone",), 1))[0]
            self.assertEqual(ev.conn, c)
            for k, ws in enumerate(clients):
                if k != 3:
                    await ws.close()
        run(go(), 60)


if __name__ == "__main__":
    unittest.main()
