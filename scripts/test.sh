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
make -j"$(nproc)" check || { cat tests/*.log tests/*/*.log 2>/dev/null | tail -200; exit 1; }
make check-valgrind
