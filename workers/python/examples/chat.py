#!/usr/bin/python3
"""Chat worker: each message goes to every connection this worker holds (its sender too).
usage: chat.py --control ENDPOINT --pool NAME"""
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
    a = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    w = Worker(a.control, a.pool)
    print("chat.py: worker %d serving pool %s" % (w.worker_id, a.pool), file=sys.stderr,
          flush=True)
    try:
        for ev in w:
            if ev.type == "message":
                # w.connections follows OPEN/CLOSE/GONE, so it is exactly who is here.
                for c in list(w.connections):
                    w.send(c, ev.data)
            elif ev.type == "open" and ev.authorize:
                w.accept(ev.conn)
    except KeyboardInterrupt:
        pass
    finally:
        w.detach()


if __name__ == "__main__":
    main()
