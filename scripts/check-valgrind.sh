#!/bin/sh
# check-valgrind.sh: runs each test binary under memcheck (make check-valgrind), with one retry for a timing failure only.
#
#   VALGRIND="libtool --mode=execute valgrind FLAGS" check-valgrind.sh TEST...
#
# Any memcheck error or leak fails the test: valgrind's --error-exitcode.
# A test whose own assertions failed while memcheck found nothing is run
# once more, and passes only if that second run is clean: the scenario tests
# measure real processes, sockets and timers on a shared two-core machine
# that memcheck slows 20-50x, and a bound missed once in many runs under that
# load is a fact about the load, not a defect.  A memcheck error, a crash
# ("Process terminating") or a second failure is never retried or forgiven.
# Every retry is printed with the first run's failed assertions, and its
# first logs are kept as TEST.valgrind.first.{out,log}, so a flake stays
# visible to whoever reads the output: it is named again in the last lines.
# Scripts (*.sh) are not run under valgrind.
set -u
: "${VALGRIND:?set VALGRIND to the memcheck command line}"
here=$(dirname "$0")
failed=0
passed=0
failed_tests=
retried_tests=

# 0 when the memcheck log has an error record or a crash in any process.
memcheck_clean() {
    ! grep -q -E 'ERROR SUMMARY: [1-9]|Process terminating' "$1" 2>/dev/null
}

run_once() {
    export MONGOSUP_UNDER_VALGRIND=1 MONGOSUP_VALGRIND_DAEMON=1
    # shellcheck disable=SC2086 # VALGRIND is a command line
    $VALGRIND --log-file="$1.valgrind.log" "./$1" >"$1.valgrind.out" 2>&1
}

for t in "$@"; do
    case $t in *.sh) echo "== $t is a script: not run under valgrind"; continue ;; esac
    echo "== valgrind $t"
    run_once "$t"
    rc=$?
    if [ $rc -ne 0 ] && memcheck_clean "$t.valgrind.log"; then
        echo "RETRY: $t (exit $rc, no memcheck error: its assertions failed; the first run's failures follow, then one more run)"
        sh "$here/show-failures.sh" --recap "$t.valgrind.out" "$t.valgrind.log"
        mv "$t.valgrind.out" "$t.valgrind.first.out"
        mv "$t.valgrind.log" "$t.valgrind.first.log"
        retried_tests="$retried_tests $t"
        run_once "$t"
        rc=$?
    fi
    if [ $rc -ne 0 ]; then
        echo "FAIL: $t (valgrind exit $rc; see $t.valgrind.log)"
        sh "$here/show-failures.sh" "$t.valgrind.out" "$t.valgrind.log"
        failed=$((failed + 1))
        failed_tests="$failed_tests $t"
    else
        echo "PASS: $t under valgrind"
        passed=$((passed + 1))
    fi
done
if [ $failed -ne 0 ]; then
    echo "==== failed in check-valgrind:"
    for t in $failed_tests; do
        sh "$here/show-failures.sh" --recap "$t.valgrind.out" "$t.valgrind.log"
    done
fi
for t in $retried_tests; do
    echo "==== flaky under memcheck: $t failed its first run (see $t.valgrind.first.out), its retry is reported above"
done
echo "check-valgrind: $passed passed, $failed failed"
test $failed -eq 0
