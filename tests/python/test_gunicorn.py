"""test_gunicorn: a real gunicorn (4 prefork workers) serving a CRUD app through the manager, next to C workers, under load and faults."""

import glob
import http.client
import json
import os
import re
import signal
import subprocess
import threading
import time

import pytest

from conftest import BUILDDIR, PYTHON, SLOW, env_for_children, free_port, have, wait_for

HERE = os.path.dirname(os.path.abspath(__file__))
DEMO_SERVER = os.path.join(BUILDDIR, "examples", "mongosup-demo-server")

pytestmark = pytest.mark.skipif(not have("gunicorn"), reason="Debian's gunicorn is not installed")


def request(port, path, timeout=10):
    """(status, decoded JSON body or None, seconds)."""
    t0 = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout * SLOW)
    try:
        conn.request("POST" if path == "/events" else "GET", path)
        resp = conn.getresponse()
        raw = resp.read()
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        return resp.status, body, time.monotonic() - t0
    except OSError:
        return None, None, time.monotonic() - t0
    finally:
        conn.close()


class Load(object):
    """A few client threads sending /insert and /find, recording every answer with its time."""

    def __init__(self, port, threads=4, pause=0.0, paths=("/insert", "/find")):
        self.port = port
        self.pause = pause
        self.paths = paths
        self.results = []  # (monotonic end, path, status, body, seconds)
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._loop, args=(i,), daemon=True) for i in range(threads)]
        for t in self.threads:
            t.start()

    def _loop(self, i):
        n = 0
        while not self.stop.is_set():
            path = self.paths[(n + i) % len(self.paths)]
            n += 1
            status, body, took = request(self.port, path)
            with self.lock:
                self.results.append((time.monotonic(), path, status, body, took))
            if self.pause:
                time.sleep(self.pause)

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(30)
        return list(self.results)

    def since(self, t):
        with self.lock:
            return [r for r in self.results if r[0] >= t]


class Gunicorn(object):
    def __init__(self, setup, tmp_path):
        self.port = free_port()
        self.counts = tmp_path / "counts"
        self.counts.mkdir(exist_ok=True)
        self.log = str(tmp_path / "gunicorn.log")
        env = env_for_children(MONGOSUP_CONFIG=setup.path, APP_COUNTS_DIR=str(self.counts),
                               APP_PORT=str(self.port))
        log = open(self.log, "ab")
        self.proc = subprocess.Popen([PYTHON, "-m", "gunicorn", "-c", os.path.join(HERE, "gunicorn_conf.py"),
                                      "--chdir", HERE, "wsgi_app:app"], stdin=subprocess.DEVNULL, stdout=log,
                                     stderr=log, env=env)
        log.close()
        wait_for(lambda: request(self.port, "/pid", 2)[0] == 200, 30, 0.1, "gunicorn to answer")

    def worker_pids(self):
        r = subprocess.run(["pgrep", "-P", str(self.proc.pid)], stdout=subprocess.PIPE)
        return set(int(p) for p in r.stdout.split())

    def counted(self, kind):
        return sum(len(open(p).readlines()) for p in glob.glob(str(self.counts / ("*." + kind))))

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(30 * SLOW)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def tail(self):
        with open(self.log, "rb") as f:
            return f.read()[-3000:].decode("utf-8", "replace")


@pytest.fixture
def served(make_setup, tmp_path):
    s = make_setup("gunicorn")
    s.start_daemon()
    g = Gunicorn(s, tmp_path)
    yield s, g
    g.stop()


class ClusterSampler(object):
    """Samples what(cluster) from the segment every 50 ms on a thread, until finish()."""

    def __init__(self, setup, what):
        self.seen = []
        self.stop = threading.Event()

        def sample():
            while not self.stop.is_set():
                c = setup.cluster()
                if c:
                    self.seen.append(what(c))
                time.sleep(0.05)
        self.thread = threading.Thread(target=sample, daemon=True)
        self.thread.start()

    def finish(self):
        self.stop.set()
        self.thread.join()
        return self.seen


def wait_workers(g, count=4):
    return wait_for(lambda: len(g.worker_pids()) == count and g.worker_pids(), 20, 0.1, "%d workers" % count)


def active_slots(s):
    return set(pid for pid, state in s.workers().items() if state == "ACTIVE")


# The demo server's drain on SIGTERM, bounded: each worker finishes the request it is in (a read waits at
# most the 5 s SO_RCVTIMEO of prefork_server.c), then mongosup_detach waits up to --drain-ms for clients still
# out, then its pools send endSessions (1.5 s server selection in the test's config); 5 s beyond those for
# processes exiting on a loaded machine.
DEMO_DRAIN_MS = 10000
DEMO_EXIT_BOUND_S = 5 + DEMO_DRAIN_MS / 1000.0 + 5


def thread_states(pid):
    """'tid:wchan' for each thread of pid: where a process that does not exit is waiting."""
    states = []
    for tid in sorted(os.listdir("/proc/%d/task" % pid)):
        try:
            with open("/proc/%d/task/%s/wchan" % (pid, tid)) as f:
                states.append("%s:%s" % (tid, f.read() or "running"))
        except OSError:
            pass
    return " ".join(states)


def stop_demo(demo, stderr_path):
    """SIGTERM the demo server's master and wait for it to exit within DEMO_EXIT_BOUND_S; print how long it took,
    or, when it does not exit, where its workers wait and its stderr, then kill them."""
    sent = time.monotonic()
    demo.send_signal(signal.SIGTERM)
    try:
        demo.wait(DEMO_EXIT_BOUND_S * SLOW)
    except subprocess.TimeoutExpired:
        # pgrep -P of a master still running (not yet reaped): its own workers.
        workers = [int(p) for p in subprocess.run(["pgrep", "-P", str(demo.pid)],
                                                  stdout=subprocess.PIPE).stdout.split()]
        where = "; ".join(["master: " + thread_states(demo.pid)] +
                          ["worker %d: %s" % (w, thread_states(w)) for w in workers])
        for w in workers:
            try:
                os.kill(w, signal.SIGKILL)
            except ProcessLookupError:
                pass  # it exited (and was reaped) meanwhile
        demo.kill()
        demo.wait()
        with open(stderr_path, "rb") as f:
            tail = f.read()[-3000:].decode("utf-8", "replace")
        raise AssertionError("the demo server did not exit within %.0f s of SIGTERM (%s); its stderr:\n%s"
                             % (DEMO_EXIT_BOUND_S * SLOW, where, tail))
    finally:
        demo.stdout.close()
    print("the demo server exited %.2f s after SIGTERM (bound %.0f s)"
          % (time.monotonic() - sent, DEMO_EXIT_BOUND_S * SLOW))
    assert demo.returncode == 0


def test_totals_equal_what_the_app_counted_side_by_side_with_c_workers(served, tmp_path):
    s, g = served
    pids = wait_workers(g)
    demo_stderr = str(tmp_path / "demo-server.err")
    with open(demo_stderr, "wb") as err:
        demo = subprocess.Popen([DEMO_SERVER, "-c", s.path, "-w", "2", "-t", "1", "-p", "0",
                                 "--drain-ms", str(DEMO_DRAIN_MS)], stdout=subprocess.PIPE, stderr=err,
                                env=env_for_children())
    try:
        line = demo.stdout.readline().decode()
        demo_port = int(re.search(r"listening on 127\.0\.0\.1:(\d+)", line).group(1))
        load = Load(g.port, threads=4)
        for _ in range(10):
            assert request(demo_port, "/events")[0] == 200
        wait_for(lambda: len(load.results) >= 120, 60, 0.05, "120 answers")
        results = load.finish()
        assert all(r[2] == 200 for r in results), [r for r in results if r[2] != 200][:3]
        # Every gunicorn worker attached one slot of its own (a request went to each: sync
        # workers take turns), beside the C workers of the demo server.
        wait_for(lambda: pids <= active_slots(s), 20, 0.1, "a slot per gunicorn worker")
        slots = s.workers()
        assert len([p for p in slots if p in pids]) == 4
        demo_workers = set(int(p) for p in subprocess.run(["pgrep", "-P", str(demo.pid)],
                                                          stdout=subprocess.PIPE).stdout.split())
        assert len(demo_workers) == 2 and demo_workers <= set(slots)
        users = s.cluster("users")
        assert users["ops"]["write"] == g.counted("write")
        assert users["ops"]["read"] == g.counted("read")
        assert users["ops"]["write"] + users["ops"]["read"] == len(results)
        assert users["failures"]["total"] == 0
        assert s.cluster("analytics")["ops"]["write"] == 10  # the C workers' events
    finally:
        stop_demo(demo, demo_stderr)


def test_peer_killed_fails_fast_then_served_again(served):
    s, g = served
    wait_workers(g)
    load = Load(g.port, threads=4, pause=0.01)
    wait_for(lambda: len(load.results) >= 40, 30, 0.05, "load")
    s.peer.kill()
    killed = time.monotonic()
    wait_for(lambda: s.cluster_health() == "DOWN", 10, 0.02, "users DOWN")
    down = time.monotonic()

    def refusals():
        return [r for r in load.since(down) if r[2] == 503 and r[3] == {"error": "CircuitOpen"}]
    # Requests in flight at the verdict may still wait out server selection (1.5 s); new ones are refused.
    circuit = wait_for(lambda: len(refusals()) >= 10 and refusals(), 10, 0.05, "CircuitOpen answers")
    first = min(r[0] for r in circuit)
    # Detection bound of this configuration: check_interval + fall x (check_timeout +
    # check_fastinter) = 700 ms, plus the heartbeat of the verdict; the load has room too.
    assert first - killed < 3.0 * SLOW, first - killed
    # Failing fast: no server-selection wait (1.5 s) once the circuit is open.
    quick = sorted(r[4] for r in circuit)
    assert quick[len(quick) // 2] < 0.1 * SLOW, quick[len(quick) // 2]
    s.peer.start()
    back = wait_for(lambda: s.cluster_health() == "UP" and time.monotonic(), 15, 0.02, "users UP")
    wait_for(lambda: any(r[2] == 200 for r in load.since(back + 1.0)), 15, 0.05, "answers again")
    gen = wait_for(lambda: s.cluster()["reconnect"]["generation"], 10, 0.05, "a reconnect generation")

    def all_acked():
        r = s.cluster()["reconnect"]
        return r["generation"] == gen and r["workers_acked"] == r["workers_live"] >= 4
    wait_for(all_acked, 15, 0.1, "every worker acknowledging generation %d" % gen)
    acked = time.monotonic()
    time.sleep(1.0)
    results = load.finish()
    late = [r for r in results if r[0] > acked]
    assert late and all(r[2] == 200 for r in late), [r for r in late if r[2] != 200][:3]
    assert s.cluster()["failures"]["circuit_open"] >= len(circuit)


def test_hup_under_load_reaps_old_slots_and_totals_never_decrease(served):
    s, g = served
    old = wait_workers(g)
    load = Load(g.port, threads=3, pause=0.005)
    wait_for(lambda: old <= active_slots(s), 20, 0.1, "every worker attached")
    sampler = ClusterSampler(s, lambda c: c["ops"]["total"])
    g.proc.send_signal(signal.SIGHUP)
    new = wait_for(lambda: (lambda p: len(p) == 4 and not (p & old) and p)(g.worker_pids()), 30, 0.1,
                   "4 new workers")
    wait_for(lambda: new <= active_slots(s), 20, 0.1, "the new workers attached")
    wait_for(lambda: not (set(s.workers()) & old), 20, 0.1, "the old slots reaped")
    time.sleep(0.5)
    seen = sampler.finish()
    results = load.finish()
    assert all(b >= a for a, b in zip(seen, seen[1:])), "a total went down: %s" % seen
    assert len(seen) >= 5  # sampled across the reload
    ok = [r for r in results if r[2] == 200]
    assert len(ok) > 20 and len(ok) >= 0.9 * len(results), [r for r in results if r[2] != 200][:3]
    c = s.cluster()
    assert c["ops"]["write"] == g.counted("write") and c["ops"]["read"] == g.counted("read")


def test_supervisor_reload_reaches_every_worker_under_load(served):
    """mongosupctl reload with a new pool size and socket timeout while the workers serve: each
    worker rebuilds its client at its next request (no request fails), closes the old one between
    requests, counts the rebuild, and the totals never decrease."""
    s, g = served
    pids = wait_workers(g)
    load = Load(g.port, threads=4, pause=0.005)
    wait_for(lambda: pids <= active_slots(s), 20, 0.1, "every worker attached")
    before = s.cluster()
    sampler = ClusterSampler(s, lambda c: (c["ops"]["total"], c["reconnect"]["pool_rebuilds"]))
    s.reload("max_pool_size = 13; socket_timeout_ms = 7000;")
    followed = {}

    def every_worker_on_the_new_settings():
        status, body, _ = request(g.port, "/settings")
        if status == 200 and body["max_pool_size"] == 13 and body["socket_timeout"] == 7.0:
            followed[body["pid"]] = body["retired"]
        return set(followed) == pids
    wait_for(every_worker_on_the_new_settings, 30, 0.02, "every worker on max_pool_size 13")
    # The replaced clients are closed at the post_request safe point once nothing holds them.
    followed.clear()
    wait_for(lambda: every_worker_on_the_new_settings() and not any(followed.values()), 20, 0.02,
             "every worker without an open replaced client")
    time.sleep(0.3)
    seen = sampler.finish()
    results = load.finish()
    assert all(r[2] == 200 for r in results), [r for r in results if r[2] != 200][:3]
    assert len(seen) >= 5 and all(b[0] >= a[0] and b[1] >= a[1] for a, b in zip(seen, seen[1:])), seen
    c = s.cluster()
    assert c["reconnect"]["pool_rebuilds"] - before["reconnect"]["pool_rebuilds"] == 4  # one per worker
    assert c["pool"]["max"] == 4 * 13
    assert set(s.workers()) >= pids and g.worker_pids() == pids  # the same workers: no restart
    assert c["ops"]["write"] == g.counted("write") and c["ops"]["read"] == g.counted("read")
    assert c["failures"]["total"] == 0


def test_module_global_database_follows_a_reload_under_load(served):
    """The app's module-global Database and Collection (proxies, made at import in each worker)
    serve every request of the load across mongosupctl reload: each worker's globals move to the
    client built with the new pool size, the old client is closed between requests although the
    globals are still held, its connections leave the segment's gauges, and no request fails."""
    s, g = served
    pids = wait_workers(g)
    load = Load(g.port, threads=4, pause=0.005, paths=("/global-insert", "/global-find"))
    wait_for(lambda: pids <= active_slots(s), 20, 0.1, "every worker attached")
    # A sync worker serves one request at a time: one pool connection each, opened at its first.
    before = wait_for(lambda: (lambda c: c["pool"]["clients"] == 4 and c)(s.cluster()), 20, 0.05,
                      "a pool connection per worker")
    s.reload("max_pool_size = 13;")
    state = {}

    def every_worker(pred):
        status, body, _ = request(g.port, "/settings")
        if status == 200:
            state[body["pid"]] = body
        return set(state) == pids and all(pred(b) for b in state.values())
    wait_for(lambda: every_worker(lambda b: b["global_max_pool_size"] == 13 and b["global_is_current"]
                                  and b["retired"] == 0), 30, 0.02,
             "every worker's globals on max_pool_size 13, its old client closed")
    moved = time.monotonic()
    wait_for(lambda: len(load.since(moved)) >= 40, 30, 0.05, "load after the move")
    results = load.finish()
    assert all(r[2] == 200 for r in results), [r for r in results if r[2] != 200][:3]
    assert len([r for r in results if r[0] < moved]) >= 20  # the load ran across the reload
    # Quiet now (the load is joined; /settings uses no connection): every worker's current pool
    # against the segment's gauges, the old clients' connections gone from them.
    state.clear()
    wait_for(lambda: every_worker(lambda b: b["retired"] == 0), 20, 0.02, "every worker's pool")
    c = s.cluster()
    print("connections per worker %s, segment pool %s, budget %s"
          % ({p: b["connections"] for p, b in state.items()}, c["pool"], c["budget"]))
    assert c["pool"]["clients"] == sum(b["connections"] for b in state.values())
    assert c["budget"]["in_use"] == c["pool"]["clients"] and c["pool"]["in_use"] == 0
    assert c["pool"]["clients_destroyed"] - before["pool"]["clients_destroyed"] == 4  # the old clients'
    assert c["reconnect"]["pool_rebuilds"] - before["reconnect"]["pool_rebuilds"] == 4  # one per worker
    assert c["pool"]["max"] == 4 * 13
    assert g.worker_pids() == pids  # the same workers: no restart
    assert c["ops"]["write"] == g.counted("write") and c["ops"]["read"] == g.counted("read")
    assert c["failures"]["total"] == 0


def test_graceful_stop_drains_and_keeps_totals(served):
    s, g = served
    pids = wait_workers(g)
    for i in range(40):
        assert request(g.port, "/insert" if i % 2 else "/find")[0] == 200
    wait_for(lambda: len(active_slots(s) & pids) >= 1, 10, 0.1, "slots")
    g.stop(signal.SIGTERM)
    assert g.proc.returncode == 0, g.tail()
    # Every worker detached (worker_exit) and the supervisor folded and freed its slot.
    wait_for(lambda: not (set(s.workers()) & pids), 20, 0.1, "the workers' slots reaped")
    c = s.cluster()
    assert c["ops"]["write"] == g.counted("write") == 20
    assert c["ops"]["read"] == g.counted("read") == 20
    assert c["pool"]["in_use"] == 0
    assert c["budget"]["in_use"] == 0  # every token back


def test_supervisor_drain_stops_gunicorn_gracefully(served):
    """The supervisor drains: requests are refused with ShuttingDown (503), the request in hand is
    finished, and the post_request hook stops gunicorn gracefully; the slots are detached."""
    s, g = served
    pids = wait_workers(g)
    load = Load(g.port, threads=3, pause=0.01)
    wait_for(lambda: len(load.results) >= 30, 30, 0.05, "load")
    s.daemon.send_signal(signal.SIGTERM)
    # Nobody signals gunicorn here: the hook's graceful stop is what ends it.
    g.proc.wait(20 * SLOW)
    results = load.finish()
    assert g.proc.returncode == 0, g.tail()
    # Every answer is whole: 200, or 503 ShuttingDown for a request that met the drain at the gate
    # (whether one does depends on which comes first, a request's gate or another's post_request);
    # None: the connection was refused once gunicorn stopped listening.
    answered = [r for r in results if r[2] is not None]
    assert answered and all(r[2] == 200 or (r[2] == 503 and r[3] == {"error": "ShuttingDown"})
                            for r in answered), [r for r in answered if r[2] != 200][:3]
    s.daemon.wait(20 * SLOW)
    assert s.daemon.returncode == 0
