"""What a real client meets: Python's websockets with permessage-deflate on, over ws:// and
wss://, echoed by the Python worker; thousands of messages of random sizes, both types."""
import asyncio
import os
import random
import re
import ssl
import unittest

import websockets

import gwtest
from gwtest import Gateway, run, wait_for

TLS = os.path.join(gwtest.BUILD, "tls")


def tls_args():
    return ["--listen", "127.0.0.1:0,tls", "--tls-cert", os.path.join(TLS, "cert.pem"),
            "--tls-key", os.path.join(TLS, "key.pem")]


def payload(rng, i):
    """JSON-like text (compresses) or random bytes (does not), 0 to 64 KiB."""
    n = rng.choice([0, 1, 10, 100, 1000, 5000, 20000, 65536]) + rng.randrange(64)
    if i % 2 == 0:
        row = '{"id":%d,"user":"u%d","text":"hello world","tags":["a","b"]},' % (i, i % 97)
        return ("[" + row * (n // len(row) + 1))[:n]
    return rng.randbytes(n)


async def echo_compressed(url, n_clients, n_msgs, ctx=None):
    """Each client sends n_msgs and must get each back, in order; returns the extension
    the gateway agreed to."""
    async def one(k):
        rng = random.Random(k)
        async with websockets.connect(url, ssl=ctx, compression="deflate", max_size=None,
                                      subprotocols=["chat.v1"]) as ws:
            agreed = ws.response_headers.get("Sec-WebSocket-Extensions")
            for i in range(n_msgs):
                m = payload(rng, i)
                await ws.send(m)
                got = await asyncio.wait_for(ws.recv(), 10)
                if got != m:
                    raise AssertionError("client %d message %d: %d bytes back for %d" %
                                         (k, i, len(got), len(m)))
            return agreed, ws.subprotocol
    return await asyncio.gather(*(one(k) for k in range(n_clients)))


class Clients(unittest.TestCase):
    def setUp(self):
        self.gw = Gateway(["/=py,protocols=chat.v1"], extra=tls_args())
        self.gw.start_example("echo.py", "py", "echo")
        m = wait_for(lambda: re.search(r"listening on 127\.0\.0\.1:(\d+) \(TLS\)", self.gw.log()),
                     5, "the TLS listener")
        self.tls_port = int(m.group(1))

    def tearDown(self):
        self.gw.stop()

    def check(self, results):
        for agreed, proto in results:
            self.assertIsNotNone(agreed, "permessage-deflate was declined")
            self.assertTrue(agreed.startswith("permessage-deflate"), agreed)
            self.assertEqual(proto, "chat.v1")

    def test_deflate_over_ws(self):
        self.check(run(echo_compressed(self.gw.url("/"), 4, 750), 120))

    def test_deflate_over_wss(self):
        ctx = ssl.create_default_context(cafile=os.path.join(TLS, "ca.pem"))
        url = "wss://127.0.0.1:%d/" % self.tls_port
        self.check(run(echo_compressed(url, 4, 750, ctx), 120))
        self.assertIn("TLS: serving", self.gw.log())

    def test_wss_certificate_is_really_checked(self):
        """The certificate is checked for real: without the test CA the client refuses."""
        async def attempt():
            async with websockets.connect("wss://127.0.0.1:%d/" % self.tls_port,
                                          ssl=ssl.create_default_context()):
                pass
        with self.assertRaises(ssl.SSLCertVerificationError):
            run(attempt(), 10)


if __name__ == "__main__":
    unittest.main()
