"""The orchestrator's configuration, declared once like the worker's (conf/orchestrator.toml)."""
import os
from functools import lru_cache
from types import SimpleNamespace

from marshmallow import Schema, fields, validate, validates

from ..config import ConfigError, _setting, _url_or_empty, data_dir, listen_address, load_config
from ..origins import listen_origins, machine_names, origin_of

ENV_PREFIX = "TRANSCODE_ORCHESTRATOR_"


class OrchestratorSettingsSchema(Schema):
    """Every key of conf/orchestrator.toml."""

    listen = _setting(fields.String, "0.0.0.0:8080", "host:port the HTTP server binds to")
    public_url = _setting(
        fields.String, "",
        "URL programs and players reach the orchestrator at: a browser page's Origin must be its "
        "origin to change anything (empty: http://<listen host>:<port>, or, listening on every "
        "interface, this machine's names and addresses and localhost at that port)",
        validate=_url_or_empty,
    )
    database = _setting(fields.String, lambda: str(data_dir("transcode-orchestrator") / "orchestrator.db"),
                        "the SQLite file that keeps workers and jobs across restarts")
    api_token = _setting(fields.String, "", "shared bearer token, both directions (empty: no auth)")
    seen_within_s = _setting(fields.Float, 30.0, "a worker is selectable only if heard from within this",
                             validate=validate.Range(0.5, 3600))
    offline_after_s = _setting(fields.Float, 45.0, "a silent worker becomes OFFLINE and its jobs are re-queued",
                               validate=validate.Range(0.5, 3600))
    check_interval_s = _setting(fields.Float, 5.0, "how often silent workers and queued jobs are looked at",
                                validate=validate.Range(0.1, 300))
    worker_timeout_s = _setting(fields.Float, 10.0, "timeout of each call to a worker",
                                validate=validate.Range(0.5, 120))
    default_bitrate_bps = _setting(fields.Integer, 4_000_000, "bitrate of a play request that names none",
                                   validate=validate.Range(64_000, 150_000_000))
    segment_duration_s = _setting(fields.Float, 4.0,
                                  "the grid every worker cuts a job on (the job command's segment_duration_s), "
                                  "so a stream can move between workers", validate=validate.Range(1, 30))
    first_segment_s = _setting(fields.Float, 1.0, "the job command's first_segment_s, for the same reason",
                               validate=validate.Range(0, 30))
    prefer_same_subnet = _setting(fields.Boolean, True,
                                  "among equally loaded workers, prefer one on the player's /24 (IPv4) or /64")
    log_level = _setting(fields.String, "info", "debug, info, warning or error",
                         validate=validate.OneOf(("debug", "info", "warning", "error")))

    @validates("listen")
    def _check_listen(self, value, **kwargs):
        listen_address(value)


@lru_cache(maxsize=4)
def own_origins(public_url, listen):
    """The (scheme, host, port) origins of the orchestrator's own pages: public_url's, else
    those derived from listen. Never the Host a request names: a page that DNS rebinding
    pointed here names its own domain in both Host and Origin."""
    if public_url:
        return frozenset({origin_of(public_url)})
    host, port = listen_address(listen)
    return listen_origins(host, port, machine_names())


def own_host_names(public_url, listen):
    """The names its reads answer to: public_url's host, the listen address, and this machine's
    names and addresses (loopback included). A page that DNS rebinding pointed here names its own
    domain as Host, which is none of these."""
    names = {listen_address(listen)[0].strip("[]").lower()}
    if public_url:
        names.add(origin_of(public_url)[1])
    return frozenset(names | machine_names())


def load_orchestrator_settings(path=None, environ=None):
    data, path = load_config(OrchestratorSettingsSchema(), ENV_PREFIX, "conf/orchestrator.toml", path, environ)
    data["database"] = os.path.expanduser(data["database"])
    if not os.path.isabs(data["database"]):
        raise ConfigError(f"database: {data['database']!r} must be an absolute path")
    return SimpleNamespace(**data, config_file=path)

