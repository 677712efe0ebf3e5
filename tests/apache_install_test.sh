#!/bin/sh
# apache_install_test.sh: mod_mongosup installed the Debian way (make install into a DESTDIR, a2enmod) and loaded by apache2 -t.
set -eu
build=${MONGOSUP_TEST_BUILDDIR:?run me through make check}
apache2=${MONGOSUP_TEST_APACHE2:-}
libexec=${MONGOSUP_TEST_APACHE_LIBEXECDIR:-}
a2enmod=$(command -v a2enmod || echo /usr/sbin/a2enmod)
a2dismod=$(command -v a2dismod || echo /usr/sbin/a2dismod)
for need in "$apache2" "$a2enmod" "$a2dismod"; do
  if [ -z "$need" ] || [ ! -x "$need" ]; then echo "SKIP: apache2, a2enmod or a2dismod not found (Debian: apache2)"; exit 77; fi
done
[ -r "$libexec/mod_mpm_prefork.so" ] || { echo "SKIP: the prefork MPM is missing"; exit 77; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail=0
ok() { echo "ok: $1"; }
bad() { echo "FAIL: $1"; fail=1; }
check() { if eval "$1"; then ok "$2"; else bad "$2"; fi; }

# make runs in the build tree from inside make check: the outer make's
# jobserver and flags are not this one's.
submake() { env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u MAKEOVERRIDES make -s -C "$build" "$@" > "$work/make.out" 2>&1 || { cat "$work/make.out"; return 1; }; }

# 1. make install DESTDIR=...: the .so in Apache's module folder (no .la),
# mods-available/mongosup.load naming the installed path (without DESTDIR),
# mongosup.conf beside it, the header for other modules.
dest=$work/dest
if ! submake install DESTDIR="$dest"; then echo "FAIL: make install DESTDIR=$dest"; exit 1; fi
so=$(find "$dest" -name mod_mongosup.so -type f)
load=$(find "$dest" -path '*/mods-available/mongosup.load' -type f)
check '[ -n "$so" ] && [ "$(echo "$so" | wc -l)" -eq 1 ]' "one mod_mongosup.so installed ($so)"
moddir=$(dirname "$so")
check '[ ! -e "$moddir/mod_mongosup.la" ]' "no libtool archive in the module folder"
check '[ -n "$load" ] && [ -f "$(dirname "$load")/mongosup.conf" ]' "mods-available/mongosup.load and mongosup.conf"
check 'grep -qx "LoadModule mongosup_module ${so#"$dest"}" "$load"' "mongosup.load names the installed .so without DESTDIR (${so#"$dest"})"
check '[ -n "$(find "$dest" -name mod_mongosup.h -type f)" ]' "mod_mongosup.h installed"
if ! submake uninstall DESTDIR="$dest"; then bad "make uninstall DESTDIR=$dest"; fi
check '[ ! -e "$so" ] && [ ! -e "$load" ] && [ ! -e "$(dirname "$load")/mongosup.conf" ]' \
  "make uninstall removes the .so, mongosup.load and mongosup.conf"

# 2. Into a live Apache layout (apachemoddir and apacheconfdir given to make
# install, as a package build does): a2enmod links both files, apache2 -t
# loads the module from where mongosup.load says and validates the
# MongosupConfig the operator uncommented.
etc=$work/etc/apache2
mods=$work/modules
if ! submake install-apachemodLTLIBRARIES install-apacheconf_modsDATA install-data-hook \
     apachemoddir="$mods" apacheconfdir="$etc"; then
  echo "FAIL: make install apachemoddir=$mods apacheconfdir=$etc"; exit 1
fi
check 'grep -qx "LoadModule mongosup_module $mods/mod_mongosup.so" "$etc/mods-available/mongosup.load"' \
  "mongosup.load follows apachemoddir given to make install"
mkdir -p "$etc/mods-enabled" "$work/state"
export APACHE_CONFDIR="$etc" APACHE_STATE_DIRECTORY="$work/state"
check '"$a2enmod" -q mongosup > "$work/a2enmod.out" 2>&1' "a2enmod mongosup"
check '[ -L "$etc/mods-enabled/mongosup.load" ] && [ -L "$etc/mods-enabled/mongosup.conf" ]' \
  "mods-enabled/mongosup.load and .conf are links"
cat > "$work/app.conf" <<EOF
default_environment = "prod";
environments = { prod = { clusters = { users = { mongo_uri = "mongodb://127.0.0.1:1/app"; }; }; }; };
EOF
sed -i "s|^ *#MongosupConfig .*|    MongosupConfig $work/app.conf|" "$etc/mods-enabled/mongosup.conf"
cat > "$etc/apache2.conf" <<EOF
ServerRoot "$work"
DefaultRuntimeDir "$work"
PidFile "$work/httpd.pid"
ErrorLog "$work/error.log"
ServerName 127.0.0.1
Listen 127.0.0.1:1
LoadModule mpm_prefork_module $libexec/mod_mpm_prefork.so
LoadModule authz_core_module $libexec/mod_authz_core.so
IncludeOptional $etc/mods-enabled/*.load
IncludeOptional $etc/mods-enabled/*.conf
EOF
"$apache2" -t -D DUMP_MODULES -f "$etc/apache2.conf" > "$work/t.out" 2>&1 && st=0 || st=$?
check '[ $st -eq 0 ] && grep -q "mongosup_module (shared)" "$work/t.out"' "apache2 -t loads mongosup_module from the installed .so"
# A broken mongosup file is now a configtest error naming both files.
echo 'environments = { prod = { clusters = { users = { mongo_uri = "mongodb://127.0.0.1:1/app"; max_pool_size = 0; }; }; }; };' \
  > "$work/app.conf"
"$apache2" -t -f "$etc/apache2.conf" > "$work/t2.out" 2>&1 && st=0 || st=$?
check '[ $st -ne 0 ] && grep -q "mods-enabled/mongosup.conf" "$work/t2.out" && grep -q "app.conf:1:" "$work/t2.out"' \
  "apache2 -t refuses a bad mongosup file, naming the Apache line and the mongosup file:line"
check '"$a2dismod" -q mongosup > /dev/null 2>&1 && [ ! -e "$etc/mods-enabled/mongosup.load" ]' "a2dismod mongosup"

if [ $fail -ne 0 ]; then
  for f in "$work/t.out" "$work/t2.out" "$work/a2enmod.out"; do [ -f "$f" ] && { echo "---- $f"; cat "$f"; }; done
  exit 1
fi
echo "PASS: installed the Debian way"
