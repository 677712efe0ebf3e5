#!/bin/sh
# python_install.sh: make install DESTDIR=... puts the Python package where python3 looks for the prefix, and the installed package imports and finds the library installed with it.
set -u
build=${MONGOSUP_TEST_BUILDDIR:?run me through make check}
py=/usr/bin/python3
# The configured directories, as the Makefile has them (${prefix}-relative).
var() { sed -n "s/^$1 = //p" "$build/Makefile"; }
[ -n "$(var mongosuppydir)" ] || { echo "SKIP: configure skipped the Python package (see its summary)"; exit 77; }
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
fail=0
check() { if eval "$1"; then echo "ok: $2"; else echo "FAIL: $2"; fail=1; fi; }
# Only the variables of this build: not make check's (-j, jobserver) nor the test environment's.
submake() { env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u MONGOSUP_LIBRARY -u PYTHONPATH make -s -C "$build" "$@"; }

if ! submake install DESTDIR="$stage" > "$stage.log" 2>&1; then
  cat "$stage.log"; rm -f "$stage.log"; echo "FAIL: make install DESTDIR=$stage"; exit 1
fi
rm -f "$stage.log"
prefix=$(var prefix)
eval "exec_prefix=\"$(var exec_prefix)\""
eval "libdir=\"$(var libdir)\""
init=$(find "$stage" -path '*/mongosup/__init__.py')
check '[ "$(echo "$init" | wc -l)" -eq 1 ] && [ -n "$init" ]' "one installed package ($init)"
pkg=$(dirname "$init")
site=${pkg#"$stage"}
site=${site%/mongosup}
check '[ -f "$pkg/_install.py" ] && [ -f "$pkg/manager.py" ] && [ -f "$pkg/gunicorn.py" ]' "the package's modules and _install.py"
# The right site directory: one that python3 searches when it searches any for this prefix (Debian:
# PREFIX/lib/python3.X/dist-packages for /usr/local, /usr/lib/python3/dist-packages for /usr).
searched=$("$py" -c 'import site, sys
p = sys.argv[1]
print(any(d in sys.path for d in site.getsitepackages([p]) if d.startswith(p + "/lib/")))' "$prefix")
if [ "$searched" = True ]; then
  check '"$py" -c "import sys; sys.exit(sys.argv[1] not in sys.path)" "$site"' "$site is on $py's sys.path"
else
  echo "ok: $py searches no site directory under $prefix (the package went to $site)"
fi
check '! grep -rq --include="*.py" -- "$build" "$pkg"' "no build path in the installed package"
check 'grep -q "^LIBDIR = .$libdir.$" "$pkg/_install.py"' "_install.py names the configured libdir ($libdir), not the staging directory"

# The installed tree alone: no MONGOSUP_LIBRARY, no source tree on the path, another directory.
out=$(cd / && env -u MONGOSUP_LIBRARY PYTHONPATH="$stage$site" PYTHONDONTWRITEBYTECODE=1 "$py" -c '
import sys, mongosup
from mongosup import _native
print(mongosup.__file__)
print(mongosup.library_path)
print(_native.lib.mongosup_version().decode())
' 2>&1)
echo "$out" | sed 's/^/  import: /'
check '[ "$(echo "$out" | sed -n 1p)" = "$pkg/__init__.py" ]' "python3 imports the installed package"
check '[ "$(echo "$out" | sed -n 2p)" = "$stage$libdir/libmongosup.so.0" ]' "it loads the library installed with it"
check 'echo "$out" | sed -n 3p | grep -q "^[0-9]"' "the library answers (mongosup_version)"

if submake uninstall DESTDIR="$stage" > /dev/null 2>&1; then
  left=$(find "$stage" -path '*/mongosup/*' -type f)
  check '[ -z "$left" ]' "make uninstall removes the package${left:+ (left: $left)}"
else
  echo "FAIL: make uninstall DESTDIR=$stage"; fail=1
fi
exit $fail
