"""The Python worker library and its examples against a real gateway."""
import asyncio
import json
import os
import re
import signal
import time
import unittest

import websockets
import zmq

import gwtest
from gwtest import Gateway, run, wait_for
from wsgw import Worker, WorkerError


async def echo_clients(url, n_clients, n_msgs):
    """n_clients each send n_msgs (text and binary alternating) interleaved with the
    others, and must get each back exactly once, in order."""
    async def one(k):
        async with websockets.connect(url, max_size=None) as ws:
            sent = []
            for i in range(n_msgs):
                m = ("c%d-m%d" % (k, i)) if i % 2 == 0 else b"c%d-b%d" % (k, i)
                sent.append(m)
                await ws.send(m)
                if i % 7 == 0:
                    await asyncio.sleep(0)
            got = [await asyncio.wait_for(ws.recv(), 10) for _ in range(n_msgs)]
            try:
                extra = await asyncio.wait_for(ws.recv(), 0.2)
            except asyncio.TimeoutError:
                extra = None
            return sent, got, extra
    return await asyncio.gather(*(one(k) for k in range(n_clients)))


class EchoChat(unittest.TestCase):
    def setUp(self):
        self.gw = Gateway(["/chat=pychat", "/=py"])

    def tearDown(self):
        self.gw.stop()

    def test_echo_exactly_once_in_order(self):
        self.gw.start_example("echo.py", "py", "echo")
        for sent, got, extra in run(echo_clients(self.gw.url("/e"), 8, 250), 30):
            self.assertEqual(got, sent)
            self.assertIsNone(extra, "a message came back twice")

    def test_echo_exactly_once_under_load(self):
        """wsgw-bench keeps 100 x 16 messages in flight and checks every echo's content
        and order (mismatches) and that none is missing (stranded)."""
        self.gw.start_example("echo.py", "py", "echo")
        r = gwtest.bench(self.gw.port, "/load", secs=2)
        print("\n  load: %d msgs/s, sent %d, echoed %d, mismatched %d, never echoed %d" %
              (r["msgs_per_s"], r["msgs_sent"], r["msgs_rcvd"], r["mismatches"],
               r["stranded"]))
        self.assertEqual(r["conns_open"], 100)
        self.assertGreater(r["msgs_sent"], 0)
        self.assertEqual((r["mismatches"], r["stranded"]), (0, 0),
                         "echoes lost or out of order between the gateway and the worker")
        self.assertEqual(r["msgs_rcvd"], r["msgs_sent"])

    def test_chat_rooms_are_topics(self):
        """chat.py over two workers: a room's members are pinned to both, and a message
        reaches the room's other members (the sender gets its own copy), not other rooms."""
        self.gw.start_example("chat.py", "pychat", "chat1")
        self.gw.start_example("chat.py", "pychat", "chat2")

        async def next_json(ws):
            m = json.loads(await asyncio.wait_for(ws.recv(), 5))
            m.pop("time", None)
            return m

        async def go():
            a1, a2, b1 = [await websockets.connect(self.gw.url("/chat")) for _ in range(3)]
            await a1.send(json.dumps({"type": "join", "room": "a", "name": "ann"}))
            self.assertEqual(await next_json(a1), {"type": "joined", "room": "a", "name": "ann"})
            self.assertEqual(await next_json(a1), {"type": "count", "room": "a", "members": 1})
            await a2.send(json.dumps({"type": "join", "room": "a", "name": "b\u00f6b"}))
            for ws in (a1, a2):
                self.assertEqual(await next_json(ws),
                                 {"type": "joined", "room": "a", "name": "b\u00f6b"})
                self.assertEqual(await next_json(ws), {"type": "count", "room": "a", "members": 2})
            await b1.send(json.dumps({"type": "join", "room": "b", "name": "cy"}))
            await next_json(b1)
            await next_json(b1)
            await a1.send(json.dumps({"type": "say", "room": "a", "text": "hello a"}))
            msg = {"type": "message", "room": "a", "name": "ann", "text": "hello a"}
            self.assertEqual(await next_json(a2), msg)
            self.assertEqual(await next_json(a1), dict(msg, self=True))
            with self.assertRaises(asyncio.TimeoutError):
                await asyncio.wait_for(b1.recv(), 0.3)
            await b1.send(json.dumps({"type": "count", "room": "a"}))
            self.assertEqual(await next_json(b1), {"type": "count", "room": "a", "members": 2})
            await b1.send("{not json")
            self.assertEqual(await next_json(b1), {"type": "error", "error": "bad JSON"})
            # Dropped without a close handshake: after one, the gateway tells the worker
            # CLOSE before it ends the connection's subscriptions (at TCP close), so a
            # count taken at once may still include it.
            a2.transport.abort()
            self.assertEqual(await next_json(a1), {"type": "left", "room": "a", "name": "b\u00f6b"})
            self.assertEqual(await next_json(a1), {"type": "count", "room": "a", "members": 1})
            for ws in (a1, b1):
                await ws.close()
        run(go(), 30)


class Crash(unittest.TestCase):
    def setUp(self):
        self.gw = Gateway(["/=py"])

    def tearDown(self):
        self.gw.stop()

    def test_kill_one_of_two_workers_under_load(self):
        """SIGKILL of a worker under load, with a backlog queued to it for sure (it is
        stopped while every client sends a burst of 100, then killed): every message comes
        back (the gateway hands what the dead worker never acknowledged to the other); a
        message may come back twice, at most the window's worth in all."""
        gw = self.gw
        w1 = gw.start_example("echo.py", "py", "w1")
        gw.start_example("echo.py", "py", "w2")
        n_clients, in_flight, burst = 20, 64, 100
        phase = {"killed": False, "burst": False}
        bursts_sent = []
        state = [dict(sent=0, got=[], seen=set(), boundary=None) for _ in range(n_clients)]

        async def client(k, ws):
            st = state[k]
            async def reader():
                async for m in ws:
                    st["got"].append(int(m))
                    st["seen"].add(int(m))
            rd = asyncio.ensure_future(reader())
            # Keep sending until 150 messages went out after the gateway noticed the death.
            while st["boundary"] is None or st["sent"] < st["boundary"] + 150:
                if phase["killed"] and st["boundary"] is None:
                    st["boundary"] = st["sent"]
                if phase["burst"] and not st.get("burst"):
                    # Back to back: queued in the gateway and ZeroMQ when the kill comes.
                    st["burst"] = True
                    for _ in range(burst):
                        await ws.send(str(st["sent"]))
                        st["sent"] += 1
                    bursts_sent.append(k)
                await ws.send(str(st["sent"]))
                st["sent"] += 1
                if st["sent"] - len(st["seen"]) > in_flight:
                    await asyncio.sleep(0.002)
                else:
                    await asyncio.sleep(0)
            deadline = time.monotonic() + 10
            while len(st["seen"]) < st["sent"] and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.2)  # a late duplicate is counted too
            rd.cancel()
            return ws.closed

        async def killer():
            await asyncio.sleep(0.6)
            w1.send_signal(signal.SIGSTOP)
            phase["burst"] = True
            deadline = time.monotonic() + 5
            while len(bursts_sent) < n_clients and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.1)  # the bursts reach the gateway, and ZeroMQ's queue to w1
            w1.kill()  # SIGKILL, by PID
            w1.wait(5)
            phase["killed"] = True

        async def go():
            socks = [await websockets.connect(gw.url("/c%d" % k)) for k in range(n_clients)]
            res = await asyncio.gather(killer(), *(client(k, s) for k, s in enumerate(socks)))
            for s in socks:
                await s.close()
            return res[1:]
        closed = run(go(), 40)
        self.assertIn("process exited", gw.log())
        self.assertEqual(closed, [False] * n_clients, "a client was dropped")
        lost = dups = 0
        for k, st in enumerate(state):
            got = st["got"]
            first = list(dict.fromkeys(got))  # each message where it first came back
            self.assertEqual(first, sorted(first), "client %d: echoes out of order" % k)
            dups += len(got) - len(first)
            lost += st["sent"] - len(set(got) & set(range(st["sent"])))
        total = sum(st["sent"] for st in state)
        print("\n  crash: %d messages lost, %d came back twice (of %d)" % (lost, dups, total))
        self.assertEqual(lost, 0, "messages queued to the killed worker were lost")
        self.assertLessEqual(dups, 1024, "more duplicates than the dead worker's window")


class Acknowledge(unittest.TestCase):
    """What the library acknowledges, seen by a gateway played by hand (a ROUTER)."""

    def test_acks_what_was_handled_in_batches_and_before_waiting(self):
        d = __import__("tempfile").mkdtemp(prefix="wsgw-ack-")
        self.addCleanup(__import__("shutil").rmtree, d, True)
        ep = "ipc://%s/control" % d
        ctx = zmq.Context.instance()
        r = ctx.socket(zmq.ROUTER)
        r.setsockopt(zmq.LINGER, 0)
        r.bind(ep)
        self.addCleanup(r.close, 0)
        heard = []
        sent = __import__("threading").Event()

        def gateway():
            ident, *f = r.recv_multipart()
            assert f[0] == b"HELLO", f
            r.send_multipart([ident, b"WELCOME", b"7", b"1000", b"", b"0", b"0", b""])
            cid = (5).to_bytes(8, "big")
            r.send_multipart([ident, b"OPEN", cid, b""])
            for i in range(39):
                r.send_multipart([ident, b"MESSAGE", cid, b"text", b"m%d" % i])
            r.send_multipart([ident, b"ERROR", b"not counted"])
            sent.set()
            end = time.monotonic() + 3
            while time.monotonic() < end:
                if r.poll(50):
                    ident, *f = r.recv_multipart()
                    heard.append(f)
                    if f[0] == b"BYE":
                        return
        t = __import__("threading").Thread(target=gateway)
        t.start()
        self.addCleanup(t.join, 5)  # before r closes
        w = Worker(ep, "p", attach_timeout=5)
        self.addCleanup(w.detach)
        # Batches of 32 are what a worker with input waiting sends: let all of it arrive
        # first (a worker that finds nothing to read acknowledges before it waits).
        self.assertTrue(sent.wait(5))
        time.sleep(0.3)
        acks = lambda: [int(f[1]) for f in heard if f[0] == b"ACK"]
        evs = [w.recv(2) for _ in range(33)]
        self.assertEqual([e.type for e in evs[:2]], ["open", "message"])
        # The 33rd recv() said the first 32 are handled; the 33rd is not yet.
        wait_for(lambda: acks(), 2, "the first ACK")
        self.assertEqual(acks(), [32])
        evs += [w.recv(2) for _ in range(8)]
        self.assertEqual(evs[-1].type, "error")
        self.assertEqual(acks(), [32], "acknowledged before the application came back")
        # Nothing left to read: what is handled (all 40 counted; ERROR is not) is
        # acknowledged before waiting.
        self.assertIsNone(w.recv(0.2))
        wait_for(lambda: acks() == [32, 40], 2, "ACK 40 before waiting")
        w.detach()
        t.join(5)
        self.assertEqual(heard[-1], [b"BYE"])
        self.assertNotIn([b"ACK", b"41"], heard)
        self.assertEqual(acks(), [32, 40])


class Move(unittest.TestCase):
    """A live upgrade as the library sees it, from a gateway played by hand (a ROUTER)."""

    def test_move_acks_answers_moved_and_holds_commands_until_resume(self):
        d = __import__("tempfile").mkdtemp(prefix="wsgw-move-")
        self.addCleanup(__import__("shutil").rmtree, d, True)
        ep = "ipc://%s/control" % d
        r = zmq.Context.instance().socket(zmq.ROUTER)
        r.setsockopt(zmq.LINGER, 0)
        r.bind(ep)
        self.addCleanup(r.close, 0)
        heard, ident = [], []
        cid = (5).to_bytes(8, "big")
        resume = __import__("threading").Event()

        def gateway():
            i, *f = r.recv_multipart()
            assert f[0] == b"HELLO", f
            ident.append(i)
            r.send_multipart([i, b"WELCOME", b"7", b"1000", b"", b"0", b"0", b""])
            r.send_multipart([i, b"OPEN", cid, b""])
            for k in range(3):
                r.send_multipart([i, b"MESSAGE", cid, b"text", b"m%d" % k])
            r.send_multipart([i, b"MOVE"])
            end = time.monotonic() + 5
            while time.monotonic() < end:
                if resume.is_set():
                    resume.clear()
                    r.send_multipart([i, b"RESUME"])
                    r.send_multipart([i, b"MESSAGE", cid, b"text", b"after"])
                if r.poll(20):
                    _, *f = r.recv_multipart()
                    if f[0] != b"HEARTBEAT":
                        heard.append(f)
                    if f[0] == b"BYE":
                        return
        t = __import__("threading").Thread(target=gateway)
        t.start()
        self.addCleanup(t.join, 6)  # before r closes
        w = Worker(ep, "p", attach_timeout=5)
        self.addCleanup(w.detach)
        # Its own routing id, which a new gateway process knows it by after a reconnect.
        self.assertRegex(ident[0].decode(), r"^wsgw1-%d-[0-9a-f]+$" % os.getpid())
        for _ in range(4):
            ev = w.recv(2)
            if ev.type == "message":
                w.send(ev.conn, ev.data)
        self.assertIsNone(w.recv(0.3))  # reads MOVE
        wait_for(lambda: any(f[0] == b"MOVED" for f in heard), 2, "MOVED")
        # (An ACK may come between the SENDs: the library acknowledges before it waits.)
        self.assertEqual([f[0] for f in heard if f[0] != b"ACK"], [b"SEND"] * 3 + [b"MOVED"])
        self.assertEqual(heard[-2:], [[b"ACK", b"4"], [b"MOVED"]])
        n = len(heard)
        # Held from now on, in order, until RESUME.
        self.assertTrue(w.send(5, "held-1"))
        self.assertTrue(w.publish("t", "held-2"))
        self.assertIsNone(w.recv(0.3))
        self.assertEqual(len(heard), n, "nothing was sent between MOVED and RESUME")
        resume.set()
        ev = w.recv(2)
        self.assertEqual(ev.data, "after")
        wait_for(lambda: len(heard) >= n + 2, 2, "the held commands after RESUME")
        self.assertEqual(heard[n], [b"SEND", cid, b"text", b"held-1"])
        self.assertEqual(heard[n + 1], [b"PUBLISH", b"t", b"text", b"held-2"])
        self.assertEqual((w.moves, w.reattaches), (1, 0))
        # Counting went on: the message after RESUME is the 5th.
        self.assertIsNone(w.recv(0.3))
        wait_for(lambda: [b"ACK", b"5"] in heard, 2, "ACK 5")
        w.detach()
        t.join(6)


class MixedPool(unittest.TestCase):
    def setUp(self):
        self.gw = Gateway(["/=mixed"])

    def tearDown(self):
        self.gw.stop()

    def test_shm_c_worker_and_python_worker_share_a_pool(self):
        gw = self.gw
        before = gw.attached("mixed")
        gw.start([gwtest.WSGW_ECHO, "--control", gw.control, "--pool", "mixed"], "cecho")
        wait_for(lambda: gw.attached("mixed") > before, 10, "wsgw-echo to attach")
        gw.start_example("echo.py", "mixed", "pyecho", ["--verbose"])
        for sent, got, extra in run(echo_clients(gw.url("/m"), 10, 50), 30):
            self.assertEqual(got, sent)
            self.assertIsNone(extra)
        py = len(re.findall(r"echo\.py: open ", gw.worker_log("pyecho")))
        print("\n  mixed pool: python worker served %d of 10 connections, wsgw-echo %d" %
              (py, 10 - py))
        self.assertGreater(py, 0, "the Python worker served nobody")
        self.assertLess(py, 10, "the C shm worker served nobody")
        self.assertIn("shm transport", gw.log())  # the shm worker
        self.assertIn("zmq transport", gw.log())


class Malformed(unittest.TestCase):
    def setUp(self):
        self.gw = Gateway(["/bad=bad", "/=py"], ["--max-message", "1024"])

    def tearDown(self):
        self.gw.stop()

    def _next(self, w, types, timeout=3):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ev = w.recv(deadline - time.monotonic())
            if ev is not None and ev.type in types:
                return ev
        self.fail("no %s event within %s s" % (types, timeout))

    def test_malformed_commands_get_error_and_log_line(self):
        gw = self.gw
        gw.start_example("echo.py", "py", "echo")
        w = Worker(gw.control, "bad", attach_timeout=5)
        self.addCleanup(w.detach)
        idb = (12345).to_bytes(8, "big")
        cases = [
            ("wrong frame count", [b"SEND", idb, b"text"]),
            ("unknown verb", [b"FROB", idb, b"x"]),
            ("3-byte connection id", [b"SEND", b"\x00\x00\x01", b"text", b"x"]),
            ("oversize payload", [b"SEND", idb, b"binary", b"x" * 2000]),
            ("close code too small", [b"CLOSE", idb, b"999", b""]),
            ("close code too large", [b"CLOSE", idb, b"5000", b""]),
            ("reject status out of range", [b"REJECT", idb, b"200", b"ok"]),
            ("verb alone", [b"SEND"]),
        ]
        for what, frames in cases:
            nlog = gw.log().count("control: worker %d:" % w.worker_id)
            w.send_frames(frames)
            ev = self._next(w, ("error", "gone"))
            self.assertEqual(ev.type, "error", what)
            self.assertNotEqual(ev.reason, "not attached", what)
            wait_for(lambda: gw.log().count("control: worker %d:" % w.worker_id) > nlog, 3,
                     "a gateway log line for " + what)
        # Still attached: a well-formed command for an unknown connection gets GONE.
        w.send(12345, "anyone?")
        ev = self._next(w, ("error", "gone"))
        self.assertEqual((ev.type, ev.conn), ("gone", 12345))
        self.assertEqual(w.reattaches, 0)

        async def still():
            async with websockets.connect(gw.url("/bad")) as bad:
                ev = self._next(w, ("open",))
                w.send(ev.conn, "served")
                self.assertEqual(await asyncio.wait_for(bad.recv(), 5), "served")
            async with websockets.connect(gw.url("/e")) as ws:
                await ws.send("still echoing")
                return await asyncio.wait_for(ws.recv(), 5)
        self.assertEqual(run(still(), 15), "still echoing")
        self.assertIsNone(gw.proc.poll(), "the gateway died")


class Authorize(unittest.TestCase):
    def setUp(self):
        self.gw = Gateway(["/auth=gate,authorize"])

    def tearDown(self):
        self.gw.stop()

    def test_accept_with_subprotocol_and_reject_with_status(self):
        gw = self.gw
        w = Worker(gw.control, "gate", attach_timeout=5)
        self.addCleanup(w.detach)

        def decide():
            ev = Malformed._next(self, w, ("open",), 5)
            self.assertTrue(ev.authorize)
            self.assertIn(ev.fields[":path"], ("/auth/x", "/auth/y"))
            self.assertEqual(ev.fields[":query"], "q=1")
            self.assertIn("chat.v1", ev.fields[":protocols"])
            if ev.fields[":path"].endswith("x"):
                w.accept(ev.conn, "chat.v1", ["X-Worker: yes"])
            return ev

        async def go():
            loop = asyncio.get_running_loop()
            conn = asyncio.ensure_future(websockets.connect(
                gw.url("/auth/x?q=1"), subprotocols=["chat.v0", "chat.v1"]))
            ev = await loop.run_in_executor(None, decide)
            ws = await asyncio.wait_for(conn, 5)
            self.assertEqual(ws.subprotocol, "chat.v1")
            self.assertEqual(ws.response_headers.get("X-Worker"), "yes")
            await ws.send("after accept")
            msg = await loop.run_in_executor(
                None, lambda: Malformed._next(self, w, ("message",), 5))
            self.assertEqual((msg.conn, msg.data), (ev.conn, "after accept"))
            await ws.close()

            conn = asyncio.ensure_future(websockets.connect(
                gw.url("/auth/y?q=1"), subprotocols=["chat.v1"]))
            ev = await loop.run_in_executor(None, decide)
            w.reject(ev.conn, 403, "not you")
            with self.assertRaises(websockets.exceptions.InvalidStatusCode) as cm:
                await asyncio.wait_for(conn, 5)
            self.assertEqual(cm.exception.status_code, 403)
        run(go(), 20)


class Curve(unittest.TestCase):
    def setUp(self):
        # A gateway key that starts with '-' (one in 85 does: Z85 has the dash), which
        # argparse takes for an option unless it is given as --curve-server-key=KEY.
        self.spub, ssec = zmq.curve_keypair()
        while not self.spub.startswith(b"-"):
            self.spub, ssec = zmq.curve_keypair()
        self.cpub, self.csec = zmq.curve_keypair()
        self.port = gwtest.free_tcp_port()
        d = self._tmp = __import__("tempfile").mkdtemp(prefix="wsgw-curve-")
        with open(d + "/server.key", "wb") as f:
            f.write(ssec + b"\n")
        with open(d + "/clients", "wb") as f:
            f.write(b"# the one worker allowed\n" + self.cpub + b"\n")
        with open(d + "/worker.keys", "wb") as f:
            f.write(self.cpub + b"\n" + self.csec + b"\n")
        self.control = "tcp://127.0.0.1:%d" % self.port
        self.gw = Gateway(["/=py"], ["--control", self.control,
                                     "--curve-secret-key", d + "/server.key",
                                     "--curve-clients", d + "/clients"])

    def tearDown(self):
        try:
            self.gw.stop()
        finally:
            __import__("shutil").rmtree(self._tmp, ignore_errors=True)

    def test_right_key_attaches_wrong_key_refused(self):
        gw = self.gw
        self.assertIn(self.spub.decode(), gw.log())
        gw.start_example("echo.py", "py", "echo",
                         ["--curve-server-key=" + self.spub.decode(),
                          "--curve-keypair", self._tmp + "/worker.keys"])

        async def echo():
            async with websockets.connect(gw.url("/")) as ws:
                await ws.send("over curve")
                return await asyncio.wait_for(ws.recv(), 5)
        self.assertEqual(run(echo(), 10), "over curve")

        bad = zmq.curve_keypair()
        t0 = time.monotonic()
        with self.assertRaises(WorkerError):
            Worker(self.control, "py", curve_server_key=self.spub, curve_keypair=bad,
                   attach_timeout=1.5)
        self.assertLess(time.monotonic() - t0, 3)
        wait_for(lambda: "refused a worker with CURVE key %s" % bad[0].decode() in gw.log(), 3,
                 "the refusal log line")
        # Right client key, wrong idea of the server's key: no WELCOME either.
        with self.assertRaises(WorkerError):
            Worker(self.control, "py", curve_server_key=zmq.curve_keypair()[0],
                   curve_keypair=(self.cpub, self.csec), attach_timeout=1)
        self.assertEqual(gw.attached("py"), 1)


class Reattach(unittest.TestCase):
    def test_worker_says_hello_again_after_gateway_restart(self):
        gw = Gateway(["/=py"], ["--heartbeat", "1"])
        w = None
        try:
            w = Worker(gw.control, "py", attach_timeout=5)
            first = w.worker_id
            gw.proc.kill()
            gw.proc.wait(3)
            gw2 = Gateway(["/=py"], ["--heartbeat", "1", "--control", gw.control])
            try:
                deadline = time.monotonic() + 8
                while w.reattaches == 0 or not w.attached:
                    self.assertLess(time.monotonic(), deadline, "no re-attach")
                    w.recv(0.1)
                self.assertEqual(gw2.attached("py"), 1)
                self.assertIsNotNone(first)

                async def served():
                    loop = asyncio.get_running_loop()
                    async with websockets.connect(gw2.url("/")) as ws:
                        await ws.send("after restart")
                        ev = await loop.run_in_executor(
                            None, lambda: Malformed._next(self, w, ("message",), 5))
                        w.send(ev.conn, ev.data)
                        return await asyncio.wait_for(ws.recv(), 5)
                self.assertEqual(run(served(), 10), "after restart")
            finally:
                gw2.stop()
        finally:
            if w:
                w.detach()
            gw.stop()


if __name__ == "__main__":
    unittest.main()
