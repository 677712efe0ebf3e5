#!/bin/sh
# install-deps.sh: installs every Debian package that mongosup's build, tests and demo need (idempotent).
set -eu
PACKAGES="build-essential autoconf automake libtool pkg-config
  libmongoc-dev libbson-dev libconfig-dev libcunit1-dev libjson-c-dev libmicrohttpd-dev libncurses-dev
  valgrind python3 python3-mockupdb tmux curl procps prometheus strace
  apache2 apache2-dev apache2-utils
  etcd-server etcd-client libcurl4-openssl-dev openssl

  python3-pymongo python3-motor python3-pytest gunicorn"
missing=""
for p in $PACKAGES; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "install-deps: installing:$missing"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
else
  echo "install-deps: everything is installed"
fi
