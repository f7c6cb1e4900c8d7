#!/usr/bin/python3
"""Echo worker: every message goes back to its sender, as text or binary as it came.
usage: echo.py --control ENDPOINT --pool NAME"""
import argparse
import os
import signal
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from wsgw import Worker  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--control", required=True, help="the gateway's control endpoint")
    ap.add_argument("--pool", required=True, help="the pool to serve")
    ap.add_argument("--curve-server-key", metavar="Z85",
                    help="the gateway's Z85 public key (CURVE); give it as --curve-server-key=KEY, "
                         "since a Z85 key may start with '-'")
    ap.add_argument("--curve-keypair", metavar="FILE",
                    help="file with this worker's Z85 public and secret keys, one per line")
    ap.add_argument("-v", "--verbose", action="store_true",
                    help="log each connection opened and closed")
    a = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    keypair = None
    if a.curve_keypair:
        with open(a.curve_keypair) as f:
            keypair = tuple(f.read().split()[:2])
    w = Worker(a.control, a.pool, curve_server_key=a.curve_server_key, curve_keypair=keypair)
    print("echo.py: worker %d serving pool %s" % (w.worker_id, a.pool), file=sys.stderr,
          flush=True)
    try:
        for ev in w:
            if ev.type == "message":
                w.send(ev.conn, ev.data)
            elif ev.type == "open":
                if a.verbose:
                    print("echo.py: open %d%s" % (ev.conn, " resumed" if ev.resumed else ""),
                          file=sys.stderr, flush=True)
                if ev.authorize:
                    w.accept(ev.conn)
            elif ev.type == "error":
                print("echo.py: gateway says: %s" % ev.reason, file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        w.detach()


if __name__ == "__main__":
    main()
