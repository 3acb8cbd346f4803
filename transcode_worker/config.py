"""The worker's configuration: each setting declared once, loaded from TOML and the environment.

Precedence, lowest first: the defaults declared here (the embedded configuration: standalone,
folders under the user's data directory), the TOML file named by ``--config`` or
``TRANSCODE_WORKER_CONFIG``, then ``TRANSCODE_WORKER_<KEY>`` environment variables (lists are
separated by ``:`` like PATH). A bad value raises ConfigError naming the key.
"""
import json
import os
import socket
import tomllib
from pathlib import Path
from types import SimpleNamespace

from marshmallow import Schema, ValidationError, fields, validate, validates, validates_schema

ENV_PREFIX = "TRANSCODE_WORKER_"
CONFIG_ENV = ENV_PREFIX + "CONFIG"

# Bounds a job's bitrate must fall in: below, nothing watchable; above, no home network carries it.
MIN_BITRATE_BPS = 64_000
MAX_BITRATE_BPS = 150_000_000
SHUTDOWN_MARGIN_S = 8.0
ENCODER_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow")


class ConfigError(Exception):
    """A configuration that cannot run; str() is one line that names the key."""


def data_dir(app="transcode-worker"):
    """Where the embedded configuration keeps its folders (XDG data home)."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / app


def worker_data_dir():
    """The worker's embedded folders: data_dir(), but for root /var/lib/transcode-worker, as a
    system service's: root's home is closed to nginx's workers, which run as nginx_user then."""
    if os.geteuid() == 0 and not os.environ.get("XDG_DATA_HOME"):
        return Path("/var/lib/transcode-worker")
    return data_dir()


def listen_address(value):
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValidationError("must be host:port, for example 0.0.0.0:8081")
    return host.strip("[]"), int(port)


def _absolute(value):
    if not os.path.isabs(os.path.expanduser(value)):
        raise ValidationError(f"{value!r} must be an absolute path")


_URL = validate.URL(require_tld=False, schemes={"http", "https"})


def _url_or_empty(value):
    if value:
        _URL(value)


_LABEL = r"[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?"
_HOST_NAME = validate.Regexp(rf"^(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*$",
                             error="{input!r} is no host name (letters, digits, - _ and .; no port)")


def _setting(field_cls, default, help, **kwargs):
    return field_cls(load_default=default, metadata={"help": help}, **kwargs)


class SettingsSchema(Schema):
    """Every key of conf/worker.toml, with its type, default, bounds and meaning."""

    worker_id = _setting(
        fields.String, socket.gethostname,
        "this worker's id in the orchestrator's pool (letters, digits, . _ -)",
        validate=validate.Regexp(r"^[A-Za-z0-9._-]{1,64}$", error="must be 1-64 of A-Z a-z 0-9 . _ -"),
    )
    listen = _setting(fields.String, "0.0.0.0:8081", "host:port the HTTP server binds to")
    advertise_url = _setting(
        fields.String, "",
        "URL players and the orchestrator use to reach this worker (empty: derived from listen)",
        validate=_url_or_empty,
    )
    allowed_hosts = _setting(
        fields.List, list,
        "host names the job API (/v1/) answers to besides its own (advertise_url's, listen's, this "
        "machine's names and localhost; any IP address): a Host naming another is 400, so a page "
        "that DNS rebinding pointed at the worker cannot read it",
        cls_or_instance=fields.String(validate=_HOST_NAME),
    )
    orchestrator_url = _setting(
        fields.String, "", "orchestrator base URL (empty: standalone, no heartbeats)", validate=_url_or_empty,
    )
    api_token = _setting(fields.String, "", "shared bearer token for job commands (empty: no auth)")
    media_roots = _setting(
        fields.List, lambda: [str(worker_data_dir() / "media")],
        "folders sources may come from; nothing outside them is read",
        cls_or_instance=fields.String(validate=_absolute), validate=validate.Length(min=1),
    )
    segment_root = _setting(
        fields.String, lambda: str(worker_data_dir() / "segments"),
        "folder for HLS output; nothing outside it is created or deleted", validate=_absolute,
    )
    spool_dir = _setting(
        fields.String, lambda: str(worker_data_dir() / "spool"),
        "folder for the worker's own state: records kept while the orchestrator is unreachable, "
        "the probe cache", validate=_absolute,
    )
    max_concurrent_jobs = _setting(
        fields.Integer, 2, "jobs FFmpeg runs at once; more get 503", validate=validate.Range(1, 64),
    )
    heartbeat_interval_s = _setting(
        fields.Float, 10.0, "seconds between heartbeats", validate=validate.Range(1, 300),
    )
    spool_max_records = _setting(
        fields.Integer, 8640,
        "heartbeats kept on disk while the orchestrator is unreachable (8640: a day at 10 s); "
        "past it the oldest are dropped and counted", validate=validate.Range(10, 1_000_000),
    )
    stressed_cpu_percent = _setting(
        fields.Float, 90.0, "status STRESSED at or above this CPU use (%)", validate=validate.Range(1, 100),
    )
    stressed_ram_free_bytes = _setting(
        fields.Integer, 512 * 1024 * 1024, "status STRESSED at or below this much available memory (bytes)",
        validate=validate.Range(min=0),
    )
    stressed_temp_c = _setting(
        fields.Float, 90.0, "status STRESSED when the CPU or a GPU is at or above this temperature (°C)",
        validate=validate.Range(30, 150),
    )
    min_free_disk_bytes = _setting(
        fields.Integer, 2 * 1024 ** 3,
        "free space segment_root must keep (bytes); below it the status is ERROR and new jobs get 503",
        validate=validate.Range(min=0),
    )
    health_check_timeout_s = _setting(
        fields.Float, 5.0,
        "how long a health check (a stat of a media root, a write to segment_root) may take before "
        "it counts as failed: a dead network mount hangs", validate=validate.Range(0.1, 120),
    )
    ffmpeg_path = _setting(fields.String, "ffmpeg", "FFmpeg executable", validate=validate.Length(min=1))
    ffprobe_path = _setting(fields.String, "ffprobe", "ffprobe executable", validate=validate.Length(min=1))
    subtitle_cache_mb = _setting(
        fields.Integer, 512,
        "megabytes of text subtitle tracks (and the fonts of their files) kept in spool_dir, each "
        "extracted once per file and shared by its jobs; the least recently used go first",
        validate=validate.Range(1, 1 << 20),
    )
    library_scan_interval_s = _setting(
        fields.Float, 900.0,
        "seconds between background probes of new files under media_roots, so a play never waits "
        "on ffprobe (0: no scan; each file is probed when first played)",
        validate=validate.Range(0, 7 * 86400),
    )
    segment_duration_s = _setting(
        fields.Float, 4.0, "target HLS segment length in seconds", validate=validate.Range(1, 30),
    )
    first_segment_s = _setting(
        fields.Float, 1.0,
        "length of a transcode's first segment, so a player starts sooner; each next one is as long "
        "as all before it, up to segment_duration_s (0: every segment segment_duration_s long); "
        "a heavy source (above 1080p, or HDR tone-mapped on the CPU) starts with half of it",
        validate=validate.Range(0, 30),
    )
    playlist_wait_s = _setting(
        fields.Float, 20.0,
        "how long a playlist or segment request waits for a running job to write it",
        validate=validate.Range(0, 120),
    )
    stop_grace_s = _setting(
        fields.Float, 5.0, "seconds FFmpeg gets after SIGTERM before SIGKILL", validate=validate.Range(0.1, 60),
    )
    stall_timeout_s = _setting(
        fields.Float, 60.0,
        "a running FFmpeg whose output time has not moved for this long is killed and its job "
        "marked FAILED (0: never)", validate=validate.Range(0, 3600),
    )
    idle_job_timeout_s = _setting(
        fields.Float, 300.0,
        "a running job nobody has asked a playlist or segment of for this long is stopped and "
        "its folder removed (0: never)", validate=validate.Range(0, 86400),
    )
    finished_job_timeout_s = _setting(
        fields.Float, 300.0,
        "a completed, failed or stopped job's folder is removed after this long unwatched (0: never)",
        validate=validate.Range(0, 86400),
    )
    speed_guard_s = _setting(
        fields.Float, 3.0,
        "a transcode whose speed stays below real time this long steps down (a faster preset, then "
        "a lower rung of the bitrate ladder) and continues where it was (0: never)",
        validate=validate.Range(0, 600),
    )
    throttle_lead_s = _setting(
        fields.Float, 180.0,
        "pause (SIGSTOP) a job's FFmpeg while it is more than this many seconds of movie ahead of the "
        "furthest segment any player asked for; resume below half (0: never pause)",
        validate=validate.Range(0, 86400),
    )
    job_disk_limit_mb = _setting(
        fields.Integer, 4096,
        "the made segments a job keeps, in MiB: past it, the ones furthest from where its viewer is "
        "are removed (made again if a player asks for them); 0: no limit",
        validate=validate.Range(0, 10_000_000),
    )
    shutdown_timeout_s = _setting(
        fields.Float, 25.0,
        "bound on the whole shutdown (stop taking jobs, stop FFmpeg, death note); at least "
        "stop_grace_s + 8", validate=validate.Range(5, 600),
    )
    log_format = _setting(
        fields.String, "text", "text, or json: one JSON object per line (job lines carry job_id)",
        validate=validate.OneOf(("text", "json")),
    )
    front = _setting(
        fields.String, "nginx",
        "what faces the network: \"nginx\" (nginx on listen, gunicorn behind it on loopback; nginx "
        "sends ready segments and holds slow clients) or \"none\" (gunicorn on listen, for a machine "
        "without nginx or behind a proxy of its own)",
        validate=validate.OneOf(("nginx", "none")),
    )
    nginx_path = _setting(fields.String, "nginx", "the nginx executable of front = \"nginx\"")
    nginx_user = _setting(
        fields.String, "nobody",
        "the user nginx's worker processes (those that parse every request) run as when the service "
        "is started as root, in that user's primary group; started as another user, they run as it",
        validate=validate.Length(min=1),
    )
    playlist_wait_share = _setting(
        fields.Float, 0.5,
        "share of http_threads that requests waiting for FFmpeg may hold at once; past it they get "
        "503 with Retry-After at once, so job commands and /healthz always find a thread",
        validate=validate.Range(0.05, 0.9),
    )
    http_threads = _setting(
        fields.Integer, 32, "request threads of the single gunicorn worker process",
        validate=validate.Range(2, 1024),
    )
    default_encoder = _setting(
        fields.String, "libx264", "video encoder used when a job names none", validate=validate.Length(min=1),
    )
    default_bitrate_bps = _setting(
        fields.Integer, 4_000_000, "video bitrate used when a job names none",
        validate=validate.Range(MIN_BITRATE_BPS, MAX_BITRATE_BPS),
    )
    encoder_preset = _setting(
        fields.String, "veryfast", "x264/x265 speed preset", validate=validate.OneOf(ENCODER_PRESETS),
    )
    log_level = _setting(
        fields.String, "info", "debug, info, warning or error",
        validate=validate.OneOf(("debug", "info", "warning", "error")),
    )

    @validates("listen")
    def _check_listen(self, value, **kwargs):
        listen_address(value)

    @validates_schema
    def _check_shutdown_bound(self, data, **kwargs):
        # FFmpeg's grace, the death note (3 s) and the threads' joins must fit in the bound
        if data["shutdown_timeout_s"] < data["stop_grace_s"] + SHUTDOWN_MARGIN_S:
            raise ValidationError(
                f"must be at least stop_grace_s + {SHUTDOWN_MARGIN_S:g} ({data['stop_grace_s'] + SHUTDOWN_MARGIN_S:g})",
                "shutdown_timeout_s")


# the folders the worker writes: ~ expanded here, created and locked at start (cli, app)
FOLDER_KEYS = ("segment_root", "spool_dir")


def wait_slots(settings):
    """How many requests may wait for FFmpeg at once (playlist_wait_share of http_threads)."""
    return max(1, int(settings.http_threads * settings.playlist_wait_share))


class Settings(SimpleNamespace):
    """The validated configuration: one attribute per key of SettingsSchema, plus
    ``listen_host``, ``listen_port`` and ``config_file`` (None on the embedded default)."""


def _one_line(messages):
    parts = []
    for key in sorted(messages, key=str):
        value = messages[key]
        if isinstance(value, dict):  # list items: {index: [messages]}
            value = [f"item {i}: {' '.join(m)}" for i, m in sorted(value.items())]
        parts.append(f"{key}: {' '.join(map(str, value))}")
    return "; ".join(parts)


def _read_toml(path):
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"config file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path}: {exc}") from None


def _from_environ(environ, schema, prefix, example):
    list_keys = {name for name, field in schema.fields.items() if isinstance(field, fields.List)}
    raw = {}
    for name, value in environ.items():
        if not name.startswith(prefix) or name == prefix + "CONFIG":
            continue
        key = name[len(prefix):].lower()
        if key not in schema.fields:
            raise ConfigError(f"{name}: unknown setting (see {example} for the keys)")
        raw[key] = [p for p in value.split(":") if p] if key in list_keys else value
    return raw


def load_config(schema, prefix, example, path=None, environ=None):
    """Defaults < TOML file (`path`, else $<prefix>CONFIG) < $<prefix><KEY>; validated by `schema`.
    Returns (data, path); raises ConfigError with one line naming the key. Shared by the worker
    and the reference orchestrator."""
    environ = os.environ if environ is None else environ
    path = path or environ.get(prefix + "CONFIG") or None
    raw = _read_toml(path) if path else {}
    raw.update(_from_environ(environ, schema, prefix, example))
    try:
        return schema.load(raw), path
    except ValidationError as err:
        raise ConfigError(_one_line(err.messages)) from None


def load_settings(path=None, environ=None):
    """Load, merge and validate the worker's configuration; raise ConfigError on anything wrong."""
    data, path = load_config(SettingsSchema(), ENV_PREFIX, "conf/worker.toml", path, environ)
    data["media_roots"] = [os.path.expanduser(p) for p in data["media_roots"]]
    data["allowed_hosts"] = [h.lower() for h in data["allowed_hosts"]]
    for key in FOLDER_KEYS:
        data[key] = os.path.expanduser(data[key])
    host, port = listen_address(data["listen"])
    if not data["advertise_url"]:
        data["advertise_url"] = f"http://{_reachable_host(host)}:{port}"
    return Settings(**data, listen_host=host, listen_port=port, config_file=path)


def _reachable_host(bind_host):
    """A host name players can use when none is configured: the bind address, or this machine's."""
    if bind_host not in ("0.0.0.0", "::", ""):
        return f"[{bind_host}]" if ":" in bind_host else bind_host
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return "127.0.0.1"


def describe(schema=None):
    """(key, default, help) for every setting of `schema` (the worker's unless named), in
    declaration order: for docs and check-config."""
    for name, field in (schema or SettingsSchema()).fields.items():
        default = field.load_default() if callable(field.load_default) else field.load_default
        yield name, default, field.metadata["help"]


def check_report(settings, schema=None, without_file="embedded configuration"):
    """What check-config prints: where the configuration came from, then every key's effective
    value with its help."""
    lines = [f"# {settings.config_file or without_file}: valid"]
    lines += [f"{key} = {json.dumps(getattr(settings, key))}  # {help_text}"
              for key, _default, help_text in describe(schema)]
    return "\n".join(lines)
