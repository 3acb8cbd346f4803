"""GET /v1/media?source_path=: what a source holds, so an orchestrator can offer its tracks
(audio languages, subtitles) before it posts a job. Same path rules and token as a job command."""
from flask import Blueprint, request

from ..media import ProbeError, language_name
from ..validation import SourceMissing, resolve_source
from . import context
from .jobs import error, refuse_foreign_host, refuse_foreign_origin, require_token

bp = Blueprint("media", __name__)
bp.before_request(refuse_foreign_origin)
bp.before_request(refuse_foreign_host)
bp.before_request(require_token)


@bp.get("/v1/media")
def describe_source():
    raw = request.args.get("source_path")
    if not raw:
        return error(400, "give ?source_path=<absolute path of a file in a media root>")
    try:
        source = resolve_source(raw, context().settings.media_roots)
    except SourceMissing as exc:
        return _refused(404, f"{raw!r}: {exc}")
    except ValueError as exc:
        return _refused(422, f"{raw!r} {exc}")
    try:
        info = context().library.info(str(source))
    except ProbeError as exc:
        return _refused(422, f"not playable media: {exc}")
    except OSError as exc:
        return _refused(422, f"cannot be read: {exc.strerror}")
    return describe(raw, info)


def _refused(status, why):
    return error(status, why, fields={"source_path": [why]})


def describe(source_path, info):
    """The answer of GET /v1/media for a source's MediaInfo."""
    v = info.video
    return {
        "source_path": source_path,
        "duration_s": info.duration_s,
        "format": info.format_name,
        "bit_rate": info.bit_rate,
        "video": {
            "codec": v.codec, "profile": v.profile, "width": v.width, "height": v.height,
            "frame_rate": v.frame_rate, "bit_depth": v.bit_depth, "pix_fmt": v.pix_fmt,
            "color_transfer": v.color_transfer, "color_primaries": v.color_primaries,
            "color_space": v.color_space, "hdr": v.hdr, "range": v.video_range,
            "dolby_vision": v.hdr == "DOVI" and {"profile": v.dovi_profile, "base_layer": v.dovi_base_layer} or None,
            "interlaced": v.interlaced,
        },
        "audio": [
            {"stream": a.stream, "codec": a.codec, "channels": a.channels, "layout": a.layout,
             "language": a.language, "language_name": language_name(a.language), "title": a.title,
             "default": a.default, "commentary": a.commentary, "description": a.description}
            for a in info.audio
        ],
        "subtitles": [
            {"stream": s.stream, "codec": s.codec, "language": s.language,
             "language_name": language_name(s.language), "title": s.title, "default": s.default,
             "forced": s.forced, "hearing_impaired": s.hearing_impaired, "text": s.text}
            for s in info.subtitles
        ],
    }
