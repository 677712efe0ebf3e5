#!/bin/sh
# test.sh: the one command that sets up a fresh Debian 12 machine, builds mongosup and passes its tests.
set -eu
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
autoreconf -fi >/dev/null 2>&1 || autoreconf -fi
mkdir -p build
cd build
../configure --quiet ${MONGOSUP_CONFIGURE_FLAGS:-}
make -j"$(nproc)" >/dev/null
# On failure, why each failing test failed: CI shows only the end of the
# output, so its failed assertions come first, then a bounded tail of its
# log (scripts/show-failures.sh), and a recap of every failed assertion last.
# (check-valgrind prints the same for the tests that fail under memcheck.)
failing_tests() {
    grep -l -E '^:test-result: (FAIL|ERROR)' tests/*.trs tests/*/*.trs 2>/dev/null || true
}
show_failures() {
    failing=$(failing_tests)
    for trs in $failing; do
        echo "==== ${trs%.trs}.log (failed)"
        sh ../scripts/show-failures.sh "${trs%.trs}.log" || true
    done
    echo "==== failed in make check:"
    for trs in $failing; do
        sh ../scripts/show-failures.sh --recap "${trs%.trs}.log" || true
    done
}
# A test that failed its assertions (not a crash: a signal's exit status
# is 128 and up) gets one more run, as check-valgrind does (see
# scripts/check-valgrind.sh for why); its first log is kept as
# tests/X.first.log and it is named again at the end.
if ! make -j"$(nproc)" check; then
    show_failures
    first=$(failing_tests)
    [ -n "$first" ] || exit 1 # not a test that failed: the build, or make itself
    crashed=
    for trs in $first; do
        status=$(sed -n 's/.*(exit status: \([0-9]*\))$/\1/p' "${trs%.trs}.log" | tail -n 1)
        if [ -z "$status" ] || [ "$status" -ge 128 ]; then
            crashed="$crashed ${trs%.trs}"
        fi
        cp "${trs%.trs}.log" "${trs%.trs}.first.log"
    done
    if [ -n "$crashed" ]; then
        echo "==== crashed (not retried):$crashed"
        exit 1
    fi
    echo "==== one more run of the tests whose assertions failed:" $(echo "$first" | sed 's/\.trs//g')
    make -j"$(nproc)" recheck || { show_failures; exit 1; }
    for trs in $first; do
        echo "==== flaky: ${trs%.trs} failed its first run (see ${trs%.trs}.first.log), passed its retry"
    done
fi
make check-valgrind
