#!/bin/sh
# demo_test.sh: runs the README's demo against the built tree and checks what it must show.
set -eu
src=${MONGOSUP_TEST_SRCDIR:?run me through make check}
build=${MONGOSUP_TEST_BUILDDIR:?run me through make check}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
start=$(date +%s)
if ! MONGOSUP_DEMO_NO_BUILD=1 MONGOSUP_BUILDDIR="$build" timeout 90 "$src/scripts/demo.sh" > "$out" 2>&1; then
  cat "$out"
  echo "FAIL: the demo exited non-zero"
  exit 1
fi
took=$(( $(date +%s) - start ))
fail=0
expect() {
  if grep -q -- "$1" "$out"; then echo "ok: $2"; else echo "FAIL: $2 (no '$1' in the output)"; fail=1; fi
}
expect "users DOWN after" "the killed users peer is marked DOWN"
expect "failures by class: circuit_open" "workers fail fast with circuit_open while users is DOWN"
expect "every worker acknowledged the reconnect" "every worker acknowledges the reconnect after users is back"
expect "mongosupd exited 0" "the supervisor drains and exits 0"
expect "final: cluster users" "the final summary names each cluster"
expect "no process and no segment left behind" "nothing is left behind"
if [ "$took" -ge 60 ]; then echo "FAIL: the demo took $took s (it must stay under a minute)"; fail=1; fi
[ $fail -eq 0 ] || { cat "$out"; exit 1; }

# The same demo pointed at "real" clusters (here: two peers that the demo
# does not own, so it must not fault them): no faults, a clean exit, and
# the peers are still serving afterwards.
work=$(mktemp -d)
cleanup() { exec 7>&- 8>&- 2>/dev/null; rm -rf "$work" "$out"; }
trap cleanup EXIT
mkfifo "$work/u.ctl" "$work/a.ctl"
/usr/bin/python3 "$src/tests/peer/mongopeer.py" --mode standalone < "$work/u.ctl" > "$work/u.out" 2>/dev/null &
/usr/bin/python3 "$src/tests/peer/mongopeer.py" --mode rs < "$work/a.ctl" > "$work/a.out" 2>/dev/null &
exec 7> "$work/u.ctl" 8> "$work/a.ctl"
for _ in $(seq 100); do grep -q READY "$work/u.out" && grep -q READY "$work/a.out" && break; sleep 0.05; done
uport=$(sed -n 's/^READY .*"ports": *\[\([0-9]*\).*/\1/p' "$work/u.out")
ahosts=$(sed -n 's/^READY .*"ports": *\[\([0-9, ]*\)\].*/\1/p' "$work/a.out" | tr -d ' ' | sed 's/\([0-9][0-9]*\)/127.0.0.1:\1/g')
cat > "$work/real.conf" <<CONF
segment = { name = "/mongosup-demo-real-$$"; max_workers = 8; };
default_environment = "production";
defaults = { check_interval_ms = 500; check_fastinter_ms = 250; check_timeout_ms = 400; rise = 1; };
environments = {
  staging = { clusters = { users = { mongo_uri = "mongodb://staging.invalid/"; }; analytics = { mongo_uri = "mongodb://staging.invalid/"; }; }; };
  production = { clusters = {
    users = { mongo_uri = "mongodb://127.0.0.1:$uport/?directConnection=true"; database_name = "app"; };
    analytics = { mongo_uri = "mongodb://$ahosts/?replicaSet=rs0"; database_name = "metrics"; };
  }; };
};
CONF
if ! MONGOSUP_DEMO_NO_BUILD=1 MONGOSUP_BUILDDIR="$build" timeout 90 "$src/scripts/demo.sh" -c "$work/real.conf" -e production > "$out" 2>&1; then
  cat "$out"; echo "FAIL: the demo against a given configuration exited non-zero"; exit 1
fi
expect "steady state" "against a given configuration: the demo reaches the steady state"
if grep -q "fault 1" "$out"; then echo "FAIL: the demo injected faults into clusters it does not own"; fail=1; else echo "ok: no faults against a given configuration"; fi
expect "mongosupd exited 0" "against a given configuration: the supervisor drains and exits 0"
expect "no process and no segment left behind" "against a given configuration: nothing is left behind"
if echo '{"cmd":"ping"}' >&7 && sleep 0.3 && grep -q '"ok": *true' "$work/u.out"; then
  echo "ok: the given clusters still serve"
else
  echo "FAIL: the demo stopped a cluster it does not own"; fail=1
fi
# The demo server stops on SIGTERM right after serving.  One connection
# wakes every idle worker polling the listening socket; those that lose the
# race must not block in accept() (with a blocking socket, 2 in 10 of these
# runs hung for good: SA_RESTART restarts the accept).  Bound per stop: the
# 5 s read timeout + the 10 s drain + 5 s.
hung=0
slowest=0
for i in 1 2 3 4 5 6 7 8 9 10; do
  "$build/examples/mongosup-demo-server" -c "$work/real.conf" -w 2 -t 1 -p 0 > "$work/ds.out" 2> "$work/ds.err" &
  ds=$!
  for _ in $(seq 200); do grep -q listening "$work/ds.out" && break; sleep 0.05; done
  dport=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$work/ds.out")
  for _ in 1 2 3 4 5 6 7 8 9 10; do curl -s -m 5 -X POST "http://127.0.0.1:$dport/events" > /dev/null || true; done
  kill -TERM "$ds"
  waited=0
  while kill -0 "$ds" 2>/dev/null && [ $waited -lt 200 ]; do sleep 0.1; waited=$((waited + 1)); done
  if kill -0 "$ds" 2>/dev/null; then
    hung=$((hung + 1))
    pkill -KILL -P "$ds" 2>/dev/null || true
    kill -KILL "$ds" 2>/dev/null || true
  fi
  wait "$ds" 2>/dev/null || true
  [ $waited -gt $slowest ] && slowest=$waited
done
rm -f "/dev/shm/mongosup-demo-real-$$" "/dev/shm/mongosup-demo-real-$$.stats"
if [ $hung -eq 0 ]; then
  echo "ok: the demo server stops on SIGTERM after serving (10 of 10, the slowest in about $((slowest / 10)).$((slowest % 10)) s)"
else
  echo "FAIL: the demo server did not stop within 20 s of SIGTERM in $hung of 10 runs"; cat "$work/ds.err"; fail=1
fi
# An interrupted demo (SIGTERM in the middle) cleans up too: no process of
# its session and no segment are left.
MONGOSUP_DEMO_NO_BUILD=1 MONGOSUP_BUILDDIR="$build" setsid "$src/scripts/demo.sh" > /dev/null 2>&1 &
demo=$!
sleep 6
kill -TERM "$demo" 2>/dev/null || true
wait "$demo" 2>/dev/null || true
sleep 2
# Zombies whose parent (the killed script) is gone do not count: init reaps them.
alive=$(ps -o pid=,stat=,args= -s "$demo" 2>/dev/null | awk '$2 !~ /^Z/' || true)
if [ -n "$alive" ]; then
  echo "FAIL: an interrupted demo left processes behind: $(echo "$alive" | tr '\n' ' ')"; fail=1
  pkill -KILL -s "$demo" || true
else
  echo "ok: an interrupted demo leaves no process"
fi
if [ -e /dev/shm/mongosup-demo-"$demo" ] || [ -e /dev/shm/mongosup-demo-"$demo".stats ]; then
  echo "FAIL: an interrupted demo left its segment"; fail=1; rm -f /dev/shm/mongosup-demo-"$demo" /dev/shm/mongosup-demo-"$demo".stats
else
  echo "ok: an interrupted demo leaves no segment"
fi
[ $fail -eq 0 ] || { cat "$out"; exit 1; }

# The second form: Apache httpd (prefork) with mod_mongosup as the server.
checks=15
if [ -x /usr/sbin/apache2 ] && [ -r "$build/apache/.libs/mod_mongosup.so" ]; then
  if ! MONGOSUP_DEMO_NO_BUILD=1 MONGOSUP_BUILDDIR="$build" timeout 90 "$src/scripts/demo.sh" --apache > "$out" 2>&1; then
    cat "$out"; echo "FAIL: demo.sh --apache exited non-zero"; exit 1
  fi
  expect "4 Apache children serving" "--apache: Apache's children serve through mod_mongosup"
  expect "failures by class: circuit_open" "--apache: children fail fast with circuit_open while users is DOWN"
  expect "every worker acknowledged the reconnect" "--apache: every child acknowledges the reconnect"
  expect "Apache exited 0" "--apache: graceful-stop ends Apache cleanly"
  expect "0 workers left attached" "--apache: every child detached before the supervisor stopped"
  expect "no process and no segment left behind" "--apache: nothing is left behind"
  checks=21
  [ $fail -eq 0 ] || { cat "$out"; exit 1; }
else
  echo "SKIP: demo.sh --apache (apache2 or mod_mongosup.so missing)"
fi
echo "demo: $checks passed, 0 failed ($took s for the local demo)"
