#!/bin/bash
# demo.sh: the main job end to end: a local test cluster, mongosupd, a prefork server under load, and the monitor.
#
#   ./scripts/demo.sh                 installs, builds, and runs the demo on its embedded default:
#                                     test peers "users" (standalone) and "analytics" (3-member
#                                     replica set), with faults: users killed and brought back,
#                                     an analytics failover, then a coordinated graceful shutdown.
#   ./scripts/demo.sh -c FILE [-e ENV]  the same against real clusters (the file's clusters must
#                                     include "users" and "analytics"), without the faults.
#   ./scripts/demo.sh --apache [...]  the same with Apache httpd (prefork, 4 children) and mod_mongosup's
#                                     demo handler as the server (docs/apache.md), its status page shown too.
#   MONGOSUP_DEMO_NO_BUILD=1          skip the install and build steps (use ./build as it is).
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)

conf="" env="" apache=0
args=()
for a in "$@"; do if [ "$a" = --apache ]; then args+=(-a); else args+=("$a"); fi; done
set -- ${args[@]+"${args[@]}"}
while getopts "ac:e:h" opt; do
  case $opt in
    a) apache=1 ;;
    c) conf=$OPTARG ;;
    e) env=$OPTARG ;;
    h) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "usage: $0 [--apache] [-c FILE [-e ENV]]" >&2; exit 64 ;;
  esac
done

if [ -z "${MONGOSUP_DEMO_NO_BUILD:-}" ]; then
  ./scripts/install-deps.sh
  [ -x configure ] || autoreconf -fi >/dev/null 2>&1
  mkdir -p build
  (cd build && { [ -f Makefile ] || ../configure --quiet; } && make -j"$(nproc)" >/dev/null)
fi
B=${MONGOSUP_BUILDDIR:-$top/build}
for p in supervisor/mongosupd tools/mongosup-top tools/mongosupctl examples/mongosup-demo-server examples/mongosup-demo-load; do
  [ -x "$B/$p" ] || { echo "demo: $B/$p is missing: build first (drop MONGOSUP_DEMO_NO_BUILD)" >&2; exit 1; }
done

module=$B/apache/.libs/mod_mongosup.so
httpd=$(command -v apache2 || echo /usr/sbin/apache2)
if [ $apache = 1 ] && { [ ! -r "$module" ] || [ ! -x "$httpd" ]; }; then
  echo "demo: --apache needs apache2 and $module (install apache2 apache2-dev, then build)" >&2; exit 1
fi
# Run as root, Apache's children switch to www-data: they own the segment,
# so mongosupd and the tools run as www-data too (docs/apache.md).
svc=()
if [ $apache = 1 ] && [ "$(id -u)" = 0 ]; then svc=(setpriv --reuid=www-data --regid=www-data --clear-groups); fi

# Debian's libmongoc keeps per-process counters in /dev/shm/mongoc-<pid>,
# removed only by mongoc_cleanup: an interrupted demo would leave them.
export MONGOC_DISABLE_SHM=1
work=$(mktemp -d /tmp/mongosup-demo.XXXXXX)
pids=()
say() { printf '\n\033[1m=== %s\033[0m\n' "$*"; }
snapshot() { say "$1"; ${svc[@]+"${svc[@]}"} "$B/tools/mongosup-top" -c "$conf" ${env:+-e "$env"} --once -i 1 || true; }

failures() { # cluster: its failure counters by class, from the JSON export
  ${svc[@]+"${svc[@]}"} "$B/tools/mongosup-top" -c "$conf" ${env:+-e "$env"} --json | /usr/bin/python3 -c '
import json, sys
doc = json.load(sys.stdin)
c = [c for c in doc["clusters"] if c["name"] == sys.argv[1]][0]
f = {k: v for k, v in c["failures"].items() if v and k != "total"}
print("%s failures by class: %s" % (sys.argv[1], ", ".join("%s %d" % kv for kv in sorted(f.items())) or "none"))' "$1"
}

cleanup() {
  set +e
  exec 3>&- 4>&- 2>/dev/null
  # On an early exit: ask first (the server's master passes SIGTERM on to its
  # workers), then make sure; the workers also die with their master.
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
  sleep 0.5
  for p in "${pids[@]}"; do pkill -KILL -P "$p" 2>/dev/null; kill -KILL "$p" 2>/dev/null; done
  wait 2>/dev/null
  [ -n "${segment:-}" ] && rm -f "/dev/shm${segment}" "/dev/shm${segment}.stats" # the control and the stats object
  [ -n "${MONGOSUP_DEMO_KEEP:-}" ] && echo "demo: kept $work" || rm -rf "$work"
}
trap cleanup EXIT

# A peer: python MockupDB child driven through a FIFO on its stdin.
start_peer() { # name mode members [ports]
  local name=$1 mode=$2 members=$3 ports=${4:-}
  rm -f "$work/$name.ctl"
  mkfifo "$work/$name.ctl"
  /usr/bin/python3 "$top/tests/peer/mongopeer.py" --mode "$mode" --members "$members" ${ports:+--ports "$ports"} \
    < "$work/$name.ctl" > "$work/$name.out" 2> "$work/$name.err" &
  local pid=$!
  pids+=("$pid")
  eval "${name}_pid=$pid"
  # Hold the FIFO open for writing: closing it makes the peer exit.
  if [ "$name" = users ]; then exec 3> "$work/$name.ctl"; else exec 4> "$work/$name.ctl"; fi
  for _ in $(seq 100); do grep -q '^READY' "$work/$name.out" 2>/dev/null && break; sleep 0.05; done
  grep -q '^READY' "$work/$name.out" || { echo "demo: peer $name did not start: $(cat "$work/$name.err")" >&2; exit 1; }
  eval "${name}_ports=$(sed -n 's/^READY .*"ports": *\[\([0-9, ]*\)\].*/\1/p' "$work/$name.out" | tr -d ' ')"
}

wait_for() { # seconds description command...
  local t=$1 what=$2; shift 2
  local start=$SECONDS
  until "$@" >/dev/null 2>&1; do
    if (( SECONDS - start >= t )); then echo "demo: timed out waiting for $what" >&2; return 1; fi
    sleep 0.2
  done
  echo "($what after $(( SECONDS - start )) s)"
}

cluster_state() { # cluster STATE
  ${svc[@]+"${svc[@]}"} "$B/tools/mongosup-top" -c "$conf" ${env:+-e "$env"} --json | /usr/bin/python3 -c '
import json, sys
doc = json.load(sys.stdin)
c = [c for c in doc["clusters"] if c["name"] == sys.argv[1]][0]
sys.exit(0 if c["state"] == sys.argv[2] else 1)' "$1" "$2"
}

all_acked() { # cluster
  ${svc[@]+"${svc[@]}"} "$B/tools/mongosup-top" -c "$conf" ${env:+-e "$env"} --json | /usr/bin/python3 -c '
import json, sys
doc = json.load(sys.stdin)
c = [c for c in doc["clusters"] if c["name"] == sys.argv[1]][0]
r = c["reconnect"]
sys.exit(0 if r["generation"] > 0 and r["workers_acked"] == r["workers_live"] > 0 else 1)' "$1"
}

faults=1
if [ -z "$conf" ]; then
  say "starting the local test cluster (MockupDB peers)"
  start_peer users standalone 1
  start_peer analytics rs 3
  echo "users: 127.0.0.1:$users_ports   analytics (rs0): 127.0.0.1:${analytics_ports//,/, 127.0.0.1:}"
  segment="/mongosup-demo-$$"
  conf=$work/demo.conf
  hosts=$(echo "$analytics_ports" | sed 's/\([0-9]*\)/127.0.0.1:\1/g')
  cat > "$conf" <<EOF
# The demo's configuration: two clusters, fast health checks.
segment = { name = "$segment"; max_workers = 16; };
supervisor = { log_level = "info"; drain_timeout_ms = 5000; escalate = "$([ $apache = 1 ] && echo none || echo term-kill)"; escalate_grace_ms = 1000; };
default_environment = "demo";
defaults = {
  max_pool_size = 4; wait_queue_timeout_ms = 2000;
  server_selection_timeout_ms = 2000; connect_timeout_ms = 1000; socket_timeout_ms = 5000;
  heartbeat_frequency_ms = 500;
  check_interval_ms = 1000; check_fastinter_ms = 250; check_downinter_ms = 500; check_timeout_ms = 500;
  rise = 2; fall = 2; reconnect_window_ms = 1500; reconnect_min_interval_ms = 1000;
  retry_max_attempts = 5; retry_deadline_ms = 4000; retry_backoff_ms = 100;
};
environments = {
  demo = {
    clusters = {
      # users: a host-wide budget of 32 sockets, at most 4 handshakes at once.
      users = { mongo_uri = "mongodb://127.0.0.1:$users_ports/?directConnection=true"; database_name = "app";
                max_connections = 32; max_connecting = 4; };
      analytics = { mongo_uri = "mongodb://$hosts/?replicaSet=rs0"; database_name = "metrics"; };
    };
  };
};
EOF
else
  faults=0
  segment=$("$B/supervisor/mongosupd" -c "$conf" ${env:+-e "$env"} --check-config | sed -n 's/^ *name = "\(\/[^"]*\)";.*/\1/p' | head -1)
fi

say "mongosupd: checking the configuration"
"$B/supervisor/mongosupd" -c "$conf" ${env:+-e "$env"} --check-config | sed -n '1,12p'

[ ${#svc[@]} -gt 0 ] && chown -R www-data "$work"
if [ $apache = 1 ]; then
  say "starting mongosupd, Apache httpd (prefork, 4 children, mod_mongosup) and the load (100 requests/s)"
else
  say "starting mongosupd, the prefork server (4 workers x 2 threads) and the load (100 requests/s)"
fi
${svc[@]+"${svc[@]}"} "$B/supervisor/mongosupd" -c "$conf" ${env:+-e "$env"} 2> "$work/mongosupd.log" &
sup_pid=$!; pids+=("$sup_pid")
if [ $apache = 1 ]; then
  port=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  modules=$(apxs -q LIBEXECDIR 2>/dev/null || echo /usr/lib/apache2/modules)
  {
    echo "# The demo's Apache: prefork, 4 children, mod_mongosup's demo handler at /, its status page."
    echo "ServerRoot \"$work\""
    echo "DefaultRuntimeDir \"$work\""
    echo "LoadModule mpm_prefork_module $modules/mod_mpm_prefork.so"
    echo "LoadModule authz_core_module $modules/mod_authz_core.so"
    echo "LoadModule authz_host_module $modules/mod_authz_host.so"
    echo "LoadModule mongosup_module $module"
    echo "Listen 127.0.0.1:$port"
    echo "ServerName 127.0.0.1"
    echo "PidFile \"$work/httpd.pid\""
    echo "ErrorLog \"$work/server.err\""
    [ ${#svc[@]} -gt 0 ] && printf 'User www-data\nGroup www-data\n'
    printf 'StartServers 4\nMinSpareServers 4\nMaxSpareServers 4\nMaxRequestWorkers 8\n'
    echo "MongosupConfig \"$conf\""
    [ -n "$env" ] && echo "MongosupEnvironment $env"
    printf '<Location "/">\n  SetHandler mongosup-demo\n</Location>\n'
    printf '<Location "/mongosup-status">\n  SetHandler mongosup-status\n  Require local\n</Location>\n'
  } > "$work/httpd.conf"
  # A session of its own: Apache signals its whole process group when it stops.
  setsid "$httpd" -f "$work/httpd.conf" -DFOREGROUND > "$work/server.out" 2>&1 &
  server_pid=$!; pids+=("$server_pid")
  wait_for 10 "Apache listening" curl -sf "http://127.0.0.1:$port/mongosup-status?json"
else
  "$B/examples/mongosup-demo-server" -c "$conf" ${env:+-e "$env"} -w 4 -t 2 -p 0 > "$work/server.out" 2> "$work/server.err" &
  server_pid=$!; pids+=("$server_pid")
  wait_for 10 "server listening" grep -q "listening on" "$work/server.out"
  port=$(sed -n 's/.*listening on 127.0.0.1:\([0-9]*\).*/\1/p' "$work/server.out")
fi
"$B/examples/mongosup-demo-load" -p "$port" -r 100 -d 300 -t 8 -q > "$work/load.out" 2>&1 &
load_pid=$!; pids+=("$load_pid")
wait_for 15 "every cluster UP" bash -c "$(declare -f cluster_state); $(declare -p svc); B=$B conf=$conf env=$env; cluster_state users UP && cluster_state analytics UP"
sleep 2
snapshot "steady state: both clusters UP, 4 $([ $apache = 1 ] && echo "Apache children" || echo workers) serving"

if [ $faults = 1 ]; then
  say "fault 1: SIGKILL the users peer"
  kill -9 "$users_pid"
  exec 3>&-
  wait_for 15 "users DOWN" cluster_state users DOWN
  sleep 1
  snapshot "users DOWN: workers fail fast (circuit_open) instead of waiting 2 s for server selection"
  failures users

  say "bringing the users peer back on the same port"
  start_peer users standalone 1 "$users_ports"
  wait_for 15 "users UP" cluster_state users UP
  wait_for 15 "every worker acknowledged the reconnect" all_acked users
  snapshot "users UP again: the reconnect generation moved and every worker rebuilt its pool"

  say "fault 2: the analytics primary steps down (failover to the next member)"
  echo '{"cmd":"stepdown"}' >&4
  sleep 3
  snapshot "after the failover: writes retried by mongosup_run, analytics still UP"
  failures analytics
fi

if [ $apache = 1 ]; then
  say "mod_mongosup's status page: curl http://127.0.0.1:$port/mongosup-status?text"
  curl -s "http://127.0.0.1:$port/mongosup-status?text" || true
  say "apache2 -k graceful-stop: requests in flight finish, every child detaches"
  kill -INT "$load_pid" 2>/dev/null || true
  "$httpd" -f "$work/httpd.conf" -k graceful-stop
  if wait "$server_pid"; then echo "Apache exited 0"; else echo "Apache exited $?"; fi
fi
say "coordinated graceful shutdown: mongosupctl shutdown --wait"
kill -INT "$load_pid" 2>/dev/null || true
${svc[@]+"${svc[@]}"} "$B/tools/mongosupctl" -c "$conf" ${env:+-e "$env"} shutdown --wait --timeout 30 || true
wait "$sup_pid" && echo "mongosupd exited 0" || echo "mongosupd exited $?"
kill -TERM "$server_pid" 2>/dev/null || true
wait "$server_pid" 2>/dev/null || true
say "the supervisor's final summary"
grep -E "final|shutdown|DRAINING|STOPPED" "$work/mongosupd.log" | tail -15 || true
say "the prefork server and the load generator"
tail -2 "$work/server.out"
tail -1 "$work/load.out"

# Nothing may be left behind.
left=""
for p in "$sup_pid" "$server_pid"; do kill -0 "$p" 2>/dev/null && left="$left $p"; done
if [ -n "$left" ]; then echo "demo: processes left behind:$left" >&2; exit 1; fi
if [ -e "/dev/shm$segment" ] || [ -e "/dev/shm$segment.stats" ]; then echo "demo: segment $segment left behind" >&2; exit 1; fi
say "demo finished: no process and no segment left behind"
