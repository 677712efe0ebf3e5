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
# On failure, the logs of the failing tests only: CI shows the end of the output,
# and the log of a failing test must be in it (check-valgrind prints its own).
show_failures() {
    for trs in $(grep -l -E '^:test-result: (FAIL|ERROR)' tests/*.trs tests/*/*.trs 2>/dev/null); do
        echo "==== ${trs%.trs}.log (failed)"
        tail -150 "${trs%.trs}.log"
    done
}
make -j"$(nproc)" check || { show_failures; exit 1; }
make check-valgrind
