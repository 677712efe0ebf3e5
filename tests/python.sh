#!/bin/sh
# tests/python.sh: the Python package's pytest suite (tests/python/) against the build tree; fails when any test fails or none ran.
set -u
src="${MONGOSUP_TEST_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}"
build="${MONGOSUP_TEST_BUILDDIR:-$(pwd)}"
py=/usr/bin/python3   # Debian's: python3-pytest, -pymongo, -motor, -mockupdb and gunicorn (scripts/install-deps.sh)
for mod in pytest pymongo motor mockupdb gunicorn; do
  if ! "$py" -c "import $mod" 2>/dev/null; then
    echo "python.sh: $py cannot import $mod: run scripts/install-deps.sh" >&2
    exit 1
  fi
done
lib="$build/lib/.libs/libmongosup.so.0"
[ -e "$lib" ] || { echo "python.sh: $lib is not built (run make)" >&2; exit 1; }
export MONGOSUP_TEST_SRCDIR="$src" MONGOSUP_TEST_BUILDDIR="$build" MONGOSUP_LIBRARY="$lib" MONGOC_DISABLE_SHM=1
export PYTHONPATH="$src/python" PYTHONDONTWRITEBYTECODE=1
# No cache in the source tree (it may be read-only: make distcheck); pytest's exit 5 (no test ran) fails too.
"$py" -m pytest -p no:cacheprovider -q -rs "$src/tests/python"
rc=$?
[ $rc -eq 0 ] || echo "python.sh: pytest exit status $rc" >&2
exit $rc
