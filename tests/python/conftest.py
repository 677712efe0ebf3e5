"""conftest: fixtures of the Python package's tests: the test peer, a configuration, mongosupd and segment reads from the build tree."""

import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

SRCDIR = os.environ.get("MONGOSUP_TEST_SRCDIR") or os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILDDIR = os.environ.get("MONGOSUP_TEST_BUILDDIR") or os.path.join(SRCDIR, "build")
PYTHON = "/usr/bin/python3"  # Debian's, with python3-pymongo, -motor, -mockupdb
PEER_SCRIPT = os.path.join(SRCDIR, "tests", "peer", "mongopeer.py")
MONGOSUPD = os.path.join(BUILDDIR, "supervisor", "mongosupd")
TOP = os.path.join(BUILDDIR, "tools", "mongosup-top")
CTL = os.path.join(BUILDDIR, "tools", "mongosupctl")
LIBRARY = os.path.join(BUILDDIR, "lib", ".libs", "libmongosup.so.0")
PACKAGE = os.path.join(SRCDIR, "python")
# The machine running the tests may be loaded (CI shares it): start-ups get room.
SLOW = float(os.environ.get("MONGOSUP_TEST_SLOW", "1"))


def env_for_children(**extra):
    env = dict(os.environ)
    env["MONGOSUP_LIBRARY"] = LIBRARY
    env["PYTHONPATH"] = PACKAGE + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["MONGOC_DISABLE_SHM"] = "1"
    env.update(extra)
    return env


def wait_for(pred, timeout, step=0.02, what="condition"):
    deadline = time.monotonic() + timeout * SLOW
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(step)
    raise AssertionError("timed out after %.1f s waiting for %s" % (timeout * SLOW, what))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Peer(object):
    """tests/peer/mongopeer.py as a child: a standalone on a fixed port, so that it can be killed and
    started again at the same address."""

    def __init__(self):
        self.port = free_port()
        self.proc = None
        self.start()

    def start(self):
        for _ in range(3):
            self.proc = subprocess.Popen([PYTHON, PEER_SCRIPT, "--mode", "standalone", "--ports", str(self.port)],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            line = self._readline(30)
            if line.startswith(b"READY"):
                return
            self.proc.kill()
            self.proc.wait()
            time.sleep(0.5)  # the port may still be held by the killed one
        raise AssertionError("the test peer did not start on port %d" % self.port)

    def _readline(self, timeout):
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout * SLOW)
        return self.proc.stdout.readline() if ready else b""

    def command(self, **req):
        self.proc.stdin.write((json.dumps(req) + "\n").encode())
        self.proc.stdin.flush()
        reply = json.loads(self._readline(10) or b"{}")
        assert reply.get("ok"), reply
        return reply

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.kill()

    @property
    def uri(self):
        return "mongodb://127.0.0.1:%d/" % self.port


@pytest.fixture
def peer():
    p = Peer()
    yield p
    p.stop()


class Setup(object):
    """A configuration file for one cluster "main" on the peer, its segment, and mongosupd."""

    def __init__(self, tmp_path, peer, tag, extra=""):
        self.dir = tmp_path
        self.segment = "/msup-py-%d-%s" % (os.getpid(), tag)
        self.control = str(tmp_path / "ctl.sock")
        self.path = str(tmp_path / "mongosup.conf")
        self.peer = peer
        self.daemon = None
        self.daemon_log = str(tmp_path / "mongosupd.log")
        # Checks fast enough for a test: a dead server is DOWN within
        # check_interval + fall x check_timeout + fall x check_fastinter = 200 + 300 + 200 ms.
        self.write(extra)
        self.unlink_segment()

    def write(self, extra="", clusters=("users", "analytics"), uri_query=""):
        """uri_query: options appended to every cluster's URI ("?authSource=x")."""
        uri = (self.peer.uri if self.peer else "mongodb://127.0.0.1:1/") + uri_query
        blocks = "".join('    %s = { mongo_uri = "%s"; database_name = "%s"; };\n'
                         % (name, uri, "app" if name == "users" else name) for name in clusters)
        with open(self.path, "w") as f:
            f.write("""
segment = { name = "%s"; max_workers = 32; max_clusters = 4; };
supervisor = { heartbeat_interval_ms = 100; reap_interval_ms = 100; drain_timeout_ms = 3000;
               escalate = "none"; control_socket = "%s"; };
default_environment = "test";
environments = { test = {
  defaults = { server_selection_timeout_ms = 1500; connect_timeout_ms = 1000; heartbeat_frequency_ms = 500;
               check_interval_ms = 200; check_fastinter_ms = 100; check_downinter_ms = 100;
               check_timeout_ms = 150; rise = 1; fall = 2; reconnect_window_ms = 300;
               retry_backoff_ms = 20; %s };
  clusters = {
%s  };
}; };
""" % (self.segment, self.control, extra, blocks))

    def reload(self, extra="", clusters=("users", "analytics"), uri_query=""):
        """Writes the file anew and asks mongosupd to reload it (mongosupctl answers once it is
        applied); returns the new configuration generation."""
        self.write(extra, clusters, uri_query)
        r = subprocess.run([CTL, "-c", self.path, "reload"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           env=env_for_children(), timeout=30 * SLOW)
        out = r.stdout.decode()
        m = re.search(r"reload: generation (\d+)", out)
        assert r.returncode == 0 and m, "mongosupctl reload: %s" % out
        return int(m.group(1))

    def unlink_segment(self):
        for name in (self.segment, self.segment + ".stats"):
            try:
                os.unlink("/dev/shm" + name)
            except OSError:
                pass

    def start_daemon(self):
        log = open(self.daemon_log, "ab")
        self.daemon = subprocess.Popen([MONGOSUPD, "-c", self.path], stdin=subprocess.DEVNULL, stdout=log,
                                       stderr=log, env=env_for_children())
        log.close()
        wait_for(lambda: self.cluster_health() == "UP" and self.cluster_health("analytics") == "UP", 20,
                 what="mongosupd to see the clusters UP")

    def stop_daemon(self, sig=signal.SIGTERM, timeout=15):
        if self.daemon is not None and self.daemon.poll() is None:
            self.daemon.send_signal(sig)
            try:
                self.daemon.wait(timeout * SLOW)
            except subprocess.TimeoutExpired:
                self.daemon.kill()
                self.daemon.wait()
        self.daemon = None

    def snapshot(self):
        """mongosup-top --json of the segment, or None when it does not exist yet."""
        r = subprocess.run([TOP, "-n", self.segment, "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           env=env_for_children(), timeout=20)
        if r.returncode != 0:
            return None
        return json.loads(r.stdout)

    def cluster(self, name="users", snap=None):
        snap = snap or self.snapshot()
        if snap is None:
            return None
        for c in snap.get("clusters", []):
            if c.get("name") == name:
                return c
        return None

    def cluster_health(self, name="users"):
        c = self.cluster(name)
        return c.get("state") if c else None

    def workers(self, snap=None):
        """pid -> state of every slot in use."""
        snap = snap or self.snapshot()
        return {w["pid"]: w["state"] for w in (snap or {}).get("workers", [])}

    def close(self):
        self.stop_daemon()
        self.unlink_segment()


@pytest.fixture
def make_setup(tmp_path, peer):
    made = []

    def make(tag, extra=""):
        s = Setup(tmp_path, peer, tag, extra)
        made.append(s)
        return s
    yield make
    for s in made:
        s.close()


@pytest.fixture
def managers():
    """Makes ConnectionManagers that are closed at the end of the test, whatever happened: a slot
    left attached would hold up mongosupd's drain."""
    import mongosup
    made = []

    def make(*args, **kwargs):
        m = mongosup.ConnectionManager(*args, **kwargs)
        made.append(m)
        return m
    yield make
    for m in made:
        m.close()


def run_python(code, env=None, timeout=60, check=True):
    """Runs code in a fresh Debian python3 with the package from the tree."""
    r = subprocess.run([PYTHON, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       env=env or env_for_children(), timeout=timeout * SLOW)
    if check and r.returncode != 0:
        raise AssertionError("python child failed (%d):\n%s\n%s" % (r.returncode, r.stdout.decode(),
                                                                    r.stderr.decode()))
    return r


def have(program):
    return shutil.which(program) is not None


sys.path.insert(0, PACKAGE)
os.environ.setdefault("MONGOSUP_LIBRARY", LIBRARY)
os.environ.setdefault("MONGOC_DISABLE_SHM", "1")
