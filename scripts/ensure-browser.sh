#!/bin/sh
# What the browser playback test needs (make test-browser): Debian's Chromium and ChromeDriver,
# Node.js's npm, and hls.js from the npm registry at the version tests/browser/package-lock.json pins.
set -eu
cd "$(dirname "$0")/.."
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
missing=""
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
command -v chromedriver >/dev/null 2>&1 || missing="$missing chromium-driver"
command -v npm >/dev/null 2>&1 || missing="$missing nodejs npm"
if [ -n "$missing" ]; then
    echo "installing Debian's$missing for the browser test" >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi
player=tests/browser
# npm ci writes node_modules/.package-lock.json: newer than the lock file means up to date
if [ ! "$player/node_modules/.package-lock.json" -nt "$player/package-lock.json" ]; then
    npm ci --prefix "$player" --no-audit --no-fund --loglevel=error
fi
