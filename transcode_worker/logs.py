"""Logging set-up: text for a terminal, or one JSON object per line for journald, Loki or
Elasticsearch. Every line about a job carries its id: in the text ("job <id>: ...") and, in JSON,
as a `job_id` field (passed as ``extra={"job_id": ...}``)."""
import json
import logging
from datetime import datetime, timezone

TEXT_FORMAT = "%(asctime)s [%(process)d] [%(levelname)s] %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    def format(self, record):
        entry = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "pid": record.process,
            "message": record.getMessage(),
        }
        job_id = getattr(record, "job_id", None)
        if job_id is not None:
            entry["job_id"] = job_id
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def formatter(log_format):
    return JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)


def configure(log_level, log_format="text"):
    """The root logger for our own lines (gunicorn's use gunicorn_logconfig)."""
    handler = logging.StreamHandler()
    handler.setFormatter(formatter(log_format))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(log_level.upper())


def gunicorn_logconfig(settings):
    """gunicorn's logconfig_dict: its error log in the same format as ours (no access log)."""
    if settings.log_format != "json":
        return None
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "transcode_worker.logs.JsonFormatter"}},
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json",
                                 "stream": "ext://sys.stderr"}},
        "loggers": {"gunicorn.error": {"handlers": ["console"], "level": settings.log_level.upper(),
                                       "propagate": False}},
        "root": {"handlers": ["console"], "level": settings.log_level.upper()},
    }
