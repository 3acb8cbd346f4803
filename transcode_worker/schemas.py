"""Schemas of the payloads on the wire: the shape and types of a job command.

Rules that need the filesystem or FFmpeg (paths inside the roots, a playable source, a usable
encoder, a seek within the movie) live in validation.py.
"""
from marshmallow import Schema, ValidationError, fields, validate

from .config import MAX_BITRATE_BPS, MIN_BITRATE_BPS

JOB_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
SEEK_PATTERN = r"^(\d{1,3}):([0-5]\d):([0-5]\d)(\.\d{1,3})?$"
MAX_PATH_LENGTH = 4096


class StrictBoolean(fields.Field):
    """JSON true or false only: marshmallow's Boolean also takes "yes", 1 and "on"."""

    default_error_messages = {"invalid": "Not a valid boolean: use true or false."}

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


class ConfigurationSchema(Schema):
    seek_time = fields.String(
        load_default="00:00:00",
        validate=validate.Regexp(SEEK_PATTERN, error="must be HH:MM:SS or HH:MM:SS.mmm"),
    )
    bitrate_bps = fields.Integer(
        strict=True, load_default=None, validate=validate.Range(MIN_BITRATE_BPS, MAX_BITRATE_BPS),
    )
    encoder = fields.String(load_default=None, validate=validate.Length(1, 64))
    force_remux = StrictBoolean(load_default=False)


class JobCommandSchema(Schema):
    """A job command, as the orchestrator posts it (unknown fields are refused: a typo must not
    be silently ignored)."""

    job_id = fields.String(
        required=True, validate=validate.Regexp(JOB_ID_PATTERN, error="must be 1-64 of A-Z a-z 0-9 _ -"),
    )
    source_path = fields.String(required=True, validate=validate.Length(1, MAX_PATH_LENGTH))
    output_path = fields.String(load_default=None, allow_none=True, validate=validate.Length(1, MAX_PATH_LENGTH))
    configuration = fields.Nested(ConfigurationSchema, load_default=None, allow_none=True)


def seek_seconds(seek_time):
    """'HH:MM:SS(.mmm)' -> seconds (the string already matched SEEK_PATTERN)."""
    hours, minutes, seconds = seek_time.split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def flatten_errors(messages, prefix=""):
    """marshmallow's nested error dict -> {"configuration.seek_time": [...], ...}."""
    flat = {}
    for key, value in messages.items():
        name = f"{prefix}{key}" if key != "_schema" else (prefix.rstrip(".") or "body")
        if isinstance(value, dict):
            flat.update(flatten_errors(value, f"{name}."))
        else:
            flat[name] = list(value)
    return flat


def load_job_command(data):
    """Validate the shape of a decoded JSON body; return a dict with every default filled in.

    Raises ValidationError with messages flattened to dotted field names.
    """
    try:
        command = JobCommandSchema().load(data)
    except ValidationError as err:
        raise ValidationError(flatten_errors(err.messages)) from None
    if command["configuration"] is None:
        command["configuration"] = ConfigurationSchema().load({})
    return command
