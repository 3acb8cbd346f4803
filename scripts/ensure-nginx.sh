#!/bin/sh
# nginx for the worker's front (front = "nginx"): Debian's nginx-light, installed when missing.
# The worker runs nginx itself, as a child of `transcode-worker serve` on a configuration of its
# own; the package's own nginx.service (a default site on port 80) is not needed, so when this
# script installs the package it disables that service again. An nginx installed before is left
# as it is.
set -eu
PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
command -v nginx >/dev/null 2>&1 && exit 0
"$(dirname "$0")/ensure-packages.sh" nginx=nginx-light
if [ -d /run/systemd/system ] && systemctl is-enabled --quiet nginx.service 2>/dev/null; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO systemctl disable --now --quiet nginx.service
    echo "ensure-nginx: the package's own nginx.service (port 80) is disabled: the worker runs nginx itself" >&2
fi
