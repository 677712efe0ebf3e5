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
show_failures() {
    failing=$(grep -l -E '^:test-result: (FAIL|ERROR)' tests/*.trs tests/*/*.trs 2>/dev/null || true)
    for trs in $failing; do
        echo "==== ${trs%.trs}.log (failed)"
        sh ../scripts/show-failures.sh "${trs%.trs}.log" || true
    done
    echo "==== failed in make check:"
    for trs in $failing; do
        sh ../scripts/show-failures.sh --recap "${trs%.trs}.log" || true
    done
}
make -j"$(nproc)" check || { show_failures; exit 1; }
make check-valgrind
