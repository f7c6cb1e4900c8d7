"""Helpers for the worker tests: a real build/wsgw on a port it picked, real example
workers, every wait bounded, every process killed by its PID."""
import asyncio
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PKG = os.path.dirname(HERE)
ROOT = os.path.dirname(os.path.dirname(PKG))
BUILD = os.environ.get("WSGW_BUILD") or os.path.join(ROOT, "build")
WSGW = os.path.join(BUILD, "wsgw")
WSGW_ECHO = os.path.join(BUILD, "wsgw-echo")
WSGW_BENCH = os.path.join(BUILD, "wsgw-bench")
PY = "/usr/bin/python3"
EXAMPLES = os.path.join(PKG, "examples")

sys.path.insert(0, PKG)


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.02)
    raise AssertionError("timed out after %.1f s waiting for %s" % (timeout, what))


def free_tcp_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Gateway:
    """build/wsgw with its own runtime dir; .port, .control, .log()."""

    def __init__(self, routes, extra=()):
        self.dir = tempfile.mkdtemp(prefix="wsgw-pytest-")
        self.control = "ipc://%s/rt/control" % self.dir
        args = [WSGW, "--listen", "127.0.0.1:0", "--runtime-dir", self.dir + "/rt"]
        for r in routes:
            args += ["--route", r]
        args += list(extra)
        if "--control" in extra:
            self.control = extra[list(extra).index("--control") + 1]
        self.logpath = self.dir + "/wsgw.log"
        self._logf = open(self.logpath, "wb")
        self.procs = []
        self.proc = subprocess.Popen(args, stdout=self._logf, stderr=subprocess.STDOUT)
        m = wait_for(lambda: re.search(r"listening on 127\.0\.0\.1:(\d+)", self.log()), 5,
                     "the gateway to listen")
        self.port = int(m.group(1))
        wait_for(lambda: "control channel on" in self.log(), 5, "the control channel")

    def log(self):
        with open(self.logpath, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def url(self, path="/"):
        return "ws://127.0.0.1:%d%s" % (self.port, path)

    def attached(self, pool):
        return len(re.findall(r"attached to pool %s \(" % re.escape(pool), self.log()))

    def start(self, args, name):
        """A worker process; stderr to DIR/NAME.log.  Returns the Popen."""
        f = open("%s/%s.log" % (self.dir, name), "wb")
        p = subprocess.Popen(args, stdout=f, stderr=subprocess.STDOUT)
        f.close()
        self.procs.append(p)
        return p

    def worker_log(self, name):
        with open("%s/%s.log" % (self.dir, name), "rb") as f:
            return f.read().decode("utf-8", "replace")

    def start_example(self, example, pool, name, extra=(), wait=True):
        before = self.attached(pool)
        p = self.start([PY, os.path.join(EXAMPLES, example), "--control", self.control,
                        "--pool", pool] + list(extra), name)
        if wait:
            wait_for(lambda: self.attached(pool) > before or p.poll() is not None, 10,
                     "%s to attach" % name)
            if p.poll() is not None:
                raise AssertionError("%s exited: %s" % (name, self.worker_log(name)))
        return p

    def stop(self):
        for p in self.procs + [self.proc]:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs + [self.proc]:
            try:
                p.wait(3)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(3)
        self._logf.close()
        # A sanitizer build (make SANITIZE=1) reports into the log; that is a failure.
        bad = re.search(r"(ERROR: \w+Sanitizer|runtime error:).*", self.log())
        if os.environ.get("WSGW_KEEP_LOGS") or bad:
            print("logs kept in", self.dir, file=sys.stderr)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)
        if bad:
            raise AssertionError("the gateway says: %s (log in %s)" % (bad.group(0), self.dir))


def bench(port, path, secs=2, conns=100, inflight=16, size=32):
    """build/wsgw-bench in echo mode; its JSON result as a dict."""
    import json
    out = subprocess.run([WSGW_BENCH, "--target", "127.0.0.1:%d%s" % (port, path),
                          "--mode", "echo", "-c", str(conns), "-k", str(inflight),
                          "-s", str(size), "-d", str(secs), "-q"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=secs + 30)
    try:
        return json.loads(out.stdout)
    except ValueError:
        raise AssertionError("wsgw-bench said: %r %r" % (out.stdout[-500:], out.stderr[-500:]))


def run(coro, timeout):
    """Runs a coroutine with a hard bound on its time."""
    return asyncio.run(asyncio.wait_for(coro, timeout))
