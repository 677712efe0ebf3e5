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
echo "demo: 7 passed, 0 failed ($took s)"
