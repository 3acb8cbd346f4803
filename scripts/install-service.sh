#!/bin/sh
# Install transcode-worker as a systemd service (as root): FFmpeg and nginx if missing, a system user,
# /var/lib/transcode-worker/{segments,spool}, a venv under /opt/transcode-worker, the
# configuration /etc/transcode-worker/worker.toml (kept if it exists), and the unit. Run again to
# upgrade: the package is reinstalled and the service restarted; the configuration is kept.
set -eu
PYTHON=${PYTHON:-python3}
PREFIX=${PREFIX:-/opt/transcode-worker}
CONF_DIR=${CONF_DIR:-/etc/transcode-worker}
STATE=/var/lib/transcode-worker
SERVICE_USER=transcode-worker
UNIT_DIR=${UNIT_DIR:-/etc/systemd/system}
SRC=$(cd "$(dirname "$0")/.." && pwd)

if [ "$(id -u)" -ne 0 ]; then
    echo "install-service: run as root (sudo make install-service)" >&2
    exit 1
fi
"$SRC/scripts/ensure-packages.sh" ffmpeg=ffmpeg ffprobe=ffmpeg
"$SRC/scripts/ensure-nginx.sh"  # the front: nginx, run by the service itself

if ! id -u "$SERVICE_USER" >/dev/null 2>&1; then
    useradd --system --home-dir "$STATE" --no-create-home --shell /usr/sbin/nologin "$SERVICE_USER"
fi
for group in render video; do  # VAAPI/QSV render nodes
    if getent group "$group" >/dev/null; then usermod -aG "$group" "$SERVICE_USER"; fi
done
install -d -o "$SERVICE_USER" -g "$SERVICE_USER" -m 0750 "$STATE" "$STATE/segments" "$STATE/spool"

"$PYTHON" -m venv "$PREFIX/venv"
"$PREFIX/venv/bin/pip" install --quiet --upgrade pip
"$PREFIX/venv/bin/pip" install --quiet "$SRC"

install -d -m 0755 "$CONF_DIR"
if [ ! -e "$CONF_DIR/worker.toml" ]; then
    sed -e "s|^media_roots = .*|media_roots = [\"/srv/media\"]|" \
        -e "s|^segment_root = .*|segment_root = \"$STATE/segments\"|" \
        -e "s|^spool_dir = .*|spool_dir = \"$STATE/spool\"|" \
        "$SRC/conf/worker.toml" > "$CONF_DIR/worker.toml"
    chmod 0640 "$CONF_DIR/worker.toml"  # it may hold api_token
    chgrp "$SERVICE_USER" "$CONF_DIR/worker.toml"
    echo "install-service: wrote $CONF_DIR/worker.toml: set media_roots (and orchestrator_url) there"
fi
"$PREFIX/venv/bin/transcode-worker" check-config --config "$CONF_DIR/worker.toml" >/dev/null

sed "s|/opt/transcode-worker|$PREFIX|g; s|/etc/transcode-worker|$CONF_DIR|g" \
    "$SRC/conf/transcode-worker.service" > "$UNIT_DIR/transcode-worker.service"
chmod 0644 "$UNIT_DIR/transcode-worker.service"
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    systemctl enable transcode-worker.service
    systemctl restart transcode-worker.service
    echo "install-service: transcode-worker is running: systemctl status transcode-worker; journalctl -u transcode-worker -f"
else
    echo "install-service: unit installed in $UNIT_DIR; systemd is not running here, so it was not started"
fi
