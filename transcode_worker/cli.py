"""The `transcode-worker` command: serve, probe, check-config."""
import argparse
import json
import os
import sys

from . import __version__, capabilities, front, logs
from .config import FOLDER_KEYS, ConfigError, check_report, load_settings
from .runstate import FolderInUse, lock_folder
from .telemetry import Nvml, Telemetry, static_specs

PROG = "transcode-worker"


def _fail(message):
    print(f"{PROG}: {message}", file=sys.stderr)
    return 2


def _make_folders(settings):
    for key in FOLDER_KEYS:
        try:
            front.make_own_folder(getattr(settings, key), settings)
        except OSError as exc:
            raise ConfigError(f"{key}: cannot create {getattr(settings, key)}: {exc.strerror}") from None
        if not os.access(getattr(settings, key), os.W_OK):
            raise ConfigError(f"{key}: {getattr(settings, key)} is not writable")


def _prepare_folders(settings):
    _make_folders(settings)
    for key in FOLDER_KEYS:
        try:  # the worker process takes the lock for good; this only makes the refusal one clear line
            lock_folder(getattr(settings, key)).close()
        except FolderInUse as exc:
            raise ConfigError(f"{key}: {exc}") from None


def _reread(path):
    """The configuration for a SIGHUP (the running worker still holds its folders' locks)."""
    settings = load_settings(path)
    _make_folders(settings)
    return settings


def _first_run_hint(settings):
    """On the embedded configuration: make sure there is something to play, and say how."""
    from .sample import ensure_sample
    root = settings.media_roots[0]
    print(f"{PROG}: embedded configuration (standalone); media from {root}", file=sys.stderr)
    try:
        video = ensure_sample(root, settings.ffmpeg_path)
    except Exception as exc:  # the hint is a convenience: never stop the service for it
        print(f"{PROG}: could not make a sample clip ({exc}); put a video in {root}", file=sys.stderr)
        return
    local = f"http://127.0.0.1:{settings.listen_port}"
    body = json.dumps({"job_id": "demo", "source_path": str(video)})
    print(f"""
  Try it:
    curl -X POST {local}/v1/jobs -H 'Content-Type: application/json' -d '{body}'
    ffplay {local}/demo.m3u8        (or open it in VLC, Safari, mpv)
    curl -X DELETE {local}/v1/jobs/demo
""", file=sys.stderr)


def cmd_serve(args):
    settings = load_settings(args.config)
    logs.configure(settings.log_level, settings.log_format)
    try:
        _prepare_folders(settings)
    except ConfigError as exc:  # the settings are readable: the orchestrator can be told
        from .app import send_fatal_death_note
        send_fatal_death_note(settings, f"the worker cannot start: {exc}")
        raise
    if settings.front == "nginx" and front.find_nginx(settings.nginx_path) is None:
        print(f"{PROG}: nginx ({settings.nginx_path}) not found: install nginx-light (make test does) "
              'or set front = "none"', file=sys.stderr)
        return 2
    if settings.front == "nginx":
        front.check_reachable(settings)  # nginx's workers, as nginx_user when root, reach the folders
    if settings.config_file is None:
        _first_run_hint(settings)
    from .server import WorkerApplication
    WorkerApplication(settings, reread=lambda: _reread(args.config)).run()
    return 0


def cmd_probe(args):
    settings = load_settings(args.config)
    found = capabilities.detect(settings.ffmpeg_path)
    report = {
        "worker_id": settings.worker_id,
        "version": __version__,
        "ffmpeg": settings.ffmpeg_path,
        **found.report(),
        "static_specs": static_specs(found),
        "gpus": Nvml().names(),
        "telemetry": Telemetry().collect(),
    }
    print(json.dumps(report, indent=2, ensure_ascii=False))
    return 0 if found.ffmpeg_ok else 1


def cmd_check_config(args):
    settings = load_settings(args.config)
    print(check_report(settings))
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog=PROG, description="On-demand FFmpeg-to-HLS transcode worker.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, func, help_text in (
        ("serve", cmd_serve, "run the worker under gunicorn"),
        ("probe", cmd_probe, "print what this machine's FFmpeg can do"),
        ("check-config", cmd_check_config, "validate the configuration and print the effective settings"),
    ):
        cmd = sub.add_parser(name, help=help_text)
        cmd.add_argument("--config", metavar="FILE", help="TOML configuration (default: $TRANSCODE_WORKER_CONFIG, "
                                                           "else the embedded configuration)")
        cmd.set_defaults(func=func)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as exc:
        return _fail(f"configuration error: {exc}")


if __name__ == "__main__":
    sys.exit(main())
