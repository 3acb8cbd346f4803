#!/bin/sh
# What the browser playback test needs (make test-browser): Debian's Chromium and ChromeDriver,
# Node.js's npm, and hls.js, Shaka Player and video.js from the npm registry at the versions tests/browser/package-lock.json pins.
set -eu
cd "$(dirname "$0")/.."
scripts/ensure-packages.sh chromium=chromium chromedriver=chromium-driver npm=nodejs,npm
player=tests/browser
# npm ci writes node_modules/.package-lock.json: newer than the lock file means up to date
if [ ! "$player/node_modules/.package-lock.json" -nt "$player/package-lock.json" ]; then
    npm ci --prefix "$player" --no-audit --no-fund --loglevel=error
fi
