"""Schemas of the payloads on the wire: the shape and types of a job command.

Rules that need the filesystem or FFmpeg (paths inside the roots, a playable source, a usable
encoder, a seek within the movie) live in validation.py.
"""
from marshmallow import Schema, ValidationError, fields, validate

from .config import MAX_BITRATE_BPS, MIN_BITRATE_BPS
from .media import language_code, language_name

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


def _language(code):
    if not (2 <= len(code) <= 3 and code.isalpha() and language_name(language_code(code))):
        raise ValidationError(f"{code!r} is not an ISO 639-1 or 639-2 language code (such as de, ger or deu)")


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
    # which audio track (tracks.py has the rule); absent: the default one
    audio_stream = fields.Integer(strict=True, load_default=None, validate=validate.Range(min=0))
    audio_language = fields.String(load_default=None, validate=_language)
    # which subtitle track is shown by default, and whether it is drawn into the picture
    subtitle_stream = fields.Integer(strict=True, load_default=None, validate=validate.Range(min=0))
    burn_subtitles = StrictBoolean(load_default=False)
    # the grid (absent: this worker's settings): an orchestrator names them so that every worker
    # cuts the same segments, and a stream can move between workers of other settings
    segment_duration_s = fields.Float(load_default=None, validate=validate.Range(1, 30))
    first_segment_s = fields.Float(load_default=None, validate=validate.Range(0, 30))



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


def seek_time(seconds):
    """12.5 -> "00:00:12.500": the inverse of seek_seconds."""
    ms = int(round(max(0.0, seconds) * 1000))
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}.{ms:03d}"


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


# -- outbound: worker -> orchestrator (the endpoint map's shapes plus DESIGN.md's additions) -----
# The worker builds these payloads in heartbeat.py; these schemas are the contract tests hold it
# to, and what an orchestrator loads them with (unknown fields refused: a drift shows at once).
WORKER_STATUSES = ("IDLE", "BUSY", "STRESSED", "ERROR")
JOB_STATES = ("STARTING", "RUNNING", "STOPPING", "COMPLETED", "FAILED", "STOPPED")


def _nullable(field_cls, **kwargs):
    return field_cls(required=True, allow_none=True, **kwargs)


class StaticSpecsSchema(Schema):
    cpu_model = _nullable(fields.String)
    total_threads = _nullable(fields.Integer, strict=True, validate=validate.Range(min=1))
    hardware_acceleration = fields.List(
        fields.String(validate=validate.OneOf(("nvenc", "vaapi", "qsv", "cuda"))), required=True)


class RegistrationSchema(Schema):
    id = fields.String(required=True, validate=validate.Regexp(r"^[A-Za-z0-9._-]{1,64}$"))
    static_specs = fields.Nested(StaticSpecsSchema, required=True)
    url = fields.Url(required=True, require_tld=False)
    max_concurrent_jobs = fields.Integer(required=True, strict=True, validate=validate.Range(min=1))
    version = fields.String(required=True)
    encoders = fields.List(fields.String(), required=True)
    lost_jobs = fields.List(fields.String(validate=validate.Regexp(JOB_ID_PATTERN)), required=True)
    unclean_restart = StrictBoolean(required=True)


class TelemetrySchema(Schema):
    cpu_usage = _nullable(fields.Float, validate=validate.Range(0, 100))
    gpu_usage = _nullable(fields.Float, validate=validate.Range(0, 100))
    ram_free_bytes = _nullable(fields.Integer, strict=True, validate=validate.Range(min=0))
    temp_c = _nullable(fields.Float)
    gpu_temp_c = _nullable(fields.Float)


class SpeedGuardSchema(Schema):
    step = fields.Integer(required=True, strict=True, validate=validate.Range(min=0))
    steps = fields.Integer(required=True, strict=True, validate=validate.Range(min=1))
    height = fields.Integer(required=True, strict=True, validate=validate.Range(min=1))
    bitrate_bps = fields.Integer(required=True, strict=True, validate=validate.Range(min=1))
    preset = _nullable(fields.String)
    light_analysis = fields.Boolean(required=True)
    reason = _nullable(fields.String)
    speed = _nullable(fields.Float, validate=validate.Range(min=0))
    cannot_keep_up = _nullable(fields.String)


class JobContextSchema(Schema):
    """One job in a heartbeat. A stream is made in pieces (runs of FFmpeg that start where players
    ask), so the place fields speak of the run that is writing now."""
    active_job_id = fields.String(required=True, validate=validate.Regexp(JOB_ID_PATTERN))
    progress = _nullable(fields.Float, validate=validate.Range(0, 100),
                         metadata={"description": "position_s as a percentage of the whole film"})
    speed = _nullable(fields.String, validate=validate.Regexp(r"^\d+(\.\d+)?x$"))
    last_segment_id = _nullable(fields.Integer, strict=True, validate=validate.Range(min=0), metadata={
        "description": "the grid number of the last segment the running run made (null: none yet); "
                       "segments before the run's first may be made too, by earlier runs"})
    state = fields.String(required=True, validate=validate.OneOf(JOB_STATES))
    position_s = fields.Float(required=True, validate=validate.Range(min=0), metadata={
        "description": "the film time (seconds from the film's start, whatever seek_time says) the "
                       "running run has reached"})
    error = _nullable(fields.String)
    speed_guard = fields.Nested(SpeedGuardSchema, allow_none=True, load_default=None)  # None: a remux
    watched_s = fields.Float(load_default=None, allow_none=True, validate=validate.Range(min=0), metadata={
        "description": "where the job's viewer is: the film time of the segment a player asked for last "
                       "(null: no player has asked yet); a job moved to another worker starts there"})


class HeartbeatSchema(Schema):
    status = fields.String(required=True, validate=validate.OneOf(WORKER_STATUSES))
    reason = _nullable(fields.String)
    telemetry = fields.Nested(TelemetrySchema, required=True)
    job_context = fields.Nested(JobContextSchema, required=True, allow_none=True)
    active_jobs = fields.Integer(required=True, strict=True, validate=validate.Range(min=0))
    jobs = fields.List(fields.Nested(JobContextSchema), required=True)
    recorded_at = fields.AwareDateTime(required=True)
    replayed = StrictBoolean(load_default=False)
    spool_dropped = fields.Integer(strict=True, load_default=0, validate=validate.Range(min=0))


class DeathNoteSchema(Schema):
    status = fields.String(required=True, validate=validate.Equal("OFFLINE"))
    reason = fields.String(required=True, validate=validate.OneOf(("SHUTDOWN", "ERROR")))
    message = fields.String(load_default=None, allow_none=True)
