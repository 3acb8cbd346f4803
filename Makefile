# Two commands on a fresh machine:  `make run` (the worker) and `make test` (the tests).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# `make test-browser`: hls.js in headless Chromium (installs Chromium, ChromeDriver and hls.js)
.PHONY: run test test-browser unit bench demo install install-service ffmpeg gstreamer nginx clean

run: install
	$(BIN)/transcode-worker serve

test: install gstreamer
	$(BIN)/python -m pytest

test-browser: install
	@scripts/ensure-browser.sh
	$(BIN)/python -m pytest -m browser

unit: install
	$(BIN)/python -m pytest -m "not integration and not browser"

# speed beside FFmpeg by hand, Jellyfin's settings and nginx alone (installs wrk)
bench: install
	@scripts/ensure-packages.sh wrk=wrk
	$(BIN)/python scripts/bench.py

# the reference orchestrator and two workers on loopback; Ctrl-C stops it all
demo: install
	$(BIN)/python scripts/demo.py

# FFmpeg and nginx (the front) from Debian when missing, the package in a venv
install: ffmpeg nginx $(STAMP)

# as root: the systemd service for operators (user, folders, /opt venv, /etc config, unit)
install-service:
	scripts/install-service.sh

ffmpeg:
	@scripts/ensure-packages.sh ffmpeg=ffmpeg ffprobe=ffmpeg

# the network front (front = "nginx", the default): Debian's nginx-light
nginx:
	@scripts/ensure-nginx.sh

# a second real player for the tests (HLS with HEVC in fMP4)
gstreamer:
	@scripts/ensure-packages.sh gst-launch-1.0=gstreamer1.0-tools,gstreamer1.0-plugins-good,gstreamer1.0-plugins-bad,gstreamer1.0-libav

$(STAMP): setup.cfg setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache docs/_build

# the manual (docs/, Sphinx, alabaster) into docs/_build/html; any warning fails it.
# It installs the `docs` extra of setup.cfg into the venv when Sphinx is missing there.
.PHONY: docs
docs: $(STAMP)
	@$(BIN)/python -c 'import sphinx' 2>/dev/null || $(BIN)/pip install -q -e '.[docs]'
	$(BIN)/sphinx-build -W --keep-going -b html docs docs/_build/html
