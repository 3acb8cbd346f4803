#!/bin/sh
# Install Debian packages for the commands that are missing:
#   scripts/ensure-packages.sh COMMAND=PACKAGE[,PACKAGE...] ...
# e.g. ffmpeg=ffmpeg nginx=nginx-light npm=nodejs,npm
set -eu
PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"  # Debian puts some commands (nginx) there
missing=""
for pair in "$@"; do
    command -v "${pair%%=*}" >/dev/null 2>&1 || missing="$missing $(echo "${pair#*=}" | tr ',' ' ')"
done
[ -n "$missing" ] || exit 0
echo "installing Debian's$missing" >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
