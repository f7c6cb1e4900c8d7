#!/usr/bin/python3
"""ws_echo.py URL MESSAGE EXPECTED: one WebSocket client (python3-websockets) that sends
MESSAGE as text and exits 0 when the first answer is EXPECTED, 1 otherwise; 5 s bounds."""
import asyncio
import sys

import websockets


async def main(url, msg, expected):
    try:
        async with websockets.connect(url, open_timeout=5, close_timeout=2) as ws:
            await ws.send(msg)
            got = await asyncio.wait_for(ws.recv(), 5)
    except Exception as e:  # a refused upgrade, a reset, a timeout: all are failures here
        print("ws_echo: %s: %r" % (url, e), file=sys.stderr)
        return 1
    if got != expected:
        print("ws_echo: %s: sent %r, expected %r, got %r" % (url, msg, expected, got),
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(*sys.argv[1:4])))
