"""What a source file holds, as ffprobe reports it (library.py decides when to ask).

Each stream the worker may play is described once here: the video (with its HDR kind), every
audio track and every subtitle track, numbered by their position among their own kind (the
``stream`` of ``GET /v1/media`` and of the job fields audio_stream / subtitle_stream).
"""
import dataclasses
import json
import math
import re
import shutil
import subprocess
from dataclasses import dataclass
from fractions import Fraction

import pycountry

from . import bounded, inputs, tonemap, untrusted

PROBE_TIMEOUT_S = 20
# The longest source played: a whole-film playlist lists every segment of it (48 hours of 4 s
# segments: 43 200), so a header that claims years is refused, not listed.
MAX_DURATION_S = 48 * 3600
# ffprobe's field orders of interlaced video (the others: progressive, unknown)
INTERLACED = frozenset({"tt", "bb", "tb", "bt"})
_ENTRIES = (
    "format=duration,format_name,bit_rate,start_time"
    ":stream=index,codec_type,codec_name,profile,pix_fmt,width,height,field_order,channels,"
    "channel_layout,avg_frame_rate,r_frame_rate,bits_per_raw_sample,color_range,color_space,"
    "color_transfer,color_primaries,bit_rate"
    ":stream_disposition:stream_tags=language,title,filename,mimetype:stream_side_data_list"
)
# Colour transfers of HDR video, by the name HLS gives their range in VIDEO-RANGE.
PQ, HLG = "smpte2084", "arib-std-b67"
VIDEO_RANGE = {PQ: "PQ", HLG: "HLG"}
# Dolby Vision's base layer by its signal compatibility id (ETSI GS CCM 001 / the dvcC box):
# the picture a player without Dolby Vision shows. 0 (profile 5): none such, IPTPQc2 colour.
DOVI_BASE_LAYER = {1: "HDR10", 2: "SDR", 4: "HLG", 6: "HDR10"}
HDR10_PLUS_SIDE_DATA = "HDR Dynamic Metadata SMPTE2094-40 (HDR10+)"
DOVI_SIDE_DATA = "DOVI configuration record"
# Subtitle codecs that are text (a player can be given them as WebVTT); the rest are pictures.
TEXT_SUBTITLES = frozenset({"subrip", "srt", "ass", "ssa", "webvtt", "mov_text", "text", "microdvd",
                            "subviewer", "subviewer1", "sami", "realtext", "jacosub", "mpl2", "pjs",
                            "stl", "vplayer", "eia_608", "ttml"})
# Fonts embedded in a Matroska file (attachments), which styled (ASS) subtitles are drawn with
FONT_TYPES = re.compile(r"font|truetype|opentype|\.(ttf|otf|ttc)$", re.IGNORECASE)
_COMMENTARY = re.compile(r"\bcomment", re.IGNORECASE)
_DESCRIPTION = re.compile(r"\b(audio ?description|described|descriptive|\bAD\b)", re.IGNORECASE)


class ProbeError(Exception):
    """The file is not media FFmpeg can play; str() says why in one line."""


@dataclass(frozen=True)
class VideoStream:
    index: int                        # FFmpeg's stream index in the file (for -map)
    codec: str
    profile: str | None = None
    width: int | None = None
    height: int | None = None
    frame_rate: float | None = None
    pix_fmt: str | None = None
    bit_depth: int | None = None
    color_transfer: str | None = None
    color_primaries: str | None = None
    color_space: str | None = None    # the matrix
    color_range: str | None = None    # tv (limited) or pc (full)
    hdr: str = "SDR"                  # SDR, HDR10, HDR10+, HLG, DOVI
    dovi_profile: int | None = None
    dovi_base_layer: str | None = None  # what a Dolby Vision stream shows without it; None: nothing
    interlaced: bool = False          # broadcast recordings, DVDs: a transcode deinterlaces
    bit_rate: int | None = None
    signal_peak: float | None = None  # an HDR10 or HLG stream's peak as FFmpeg's tonemap reads it (x SDR white)

    @property
    def video_range(self):
        """HLS's VIDEO-RANGE of the stream as it is: SDR, PQ or HLG."""
        if self.hdr == "DOVI" and self.dovi_base_layer is None:
            return "PQ"  # profile 5: PQ-coded, in Dolby's own colour
        return VIDEO_RANGE.get(self.color_transfer, "SDR")

    @property
    def tone_mappable(self):
        """False only for HDR that the zscale/tonemap filters cannot read (Dolby Vision profile 5)."""
        return not (self.hdr == "DOVI" and self.dovi_base_layer is None)


@dataclass(frozen=True)
class AudioStream:
    stream: int                       # position among the file's audio streams
    index: int
    codec: str
    channels: int | None = None
    layout: str | None = None
    language: str | None = None       # ISO 639-2/T ("deu"), None when untagged
    title: str | None = None
    default: bool = False
    commentary: bool = False
    description: bool = False         # audio description for the visually impaired
    bit_rate: int | None = None


@dataclass(frozen=True)
class SubtitleStream:
    stream: int
    index: int
    codec: str
    language: str | None = None
    title: str | None = None
    default: bool = False
    forced: bool = False
    hearing_impaired: bool = False
    text: bool = True


@dataclass(frozen=True)
class MediaInfo:
    duration_s: float
    format_name: str
    video: VideoStream
    audio: tuple[AudioStream, ...] = ()
    subtitles: tuple[SubtitleStream, ...] = ()
    bit_rate: int | None = None       # the whole file's, bits per second
    fonts: tuple[int, ...] = ()       # stream indexes of the fonts attached to the file
    start_s: float = 0.0              # the file's first timestamp: film time 0 (FFmpeg's -ss counts from it)


def language_code(tag):
    """ISO 639-2/T code of a language tag in any ISO 639 form ("de", "ger", "deu" -> "deu"); any
    other well-formed language tag (RFC 5646: "pt-br", "qaa") lower-cased as it is; None for no
    tag, "und", and anything that is not a language tag (a file's tag is what its maker wrote)."""
    tag = tag.strip() if isinstance(tag, str) else ""
    if not untrusted.is_language_tag(tag) or tag.lower() in ("und", "unk", "xx"):
        return None
    tag = tag.lower()
    language = None
    if len(tag) == 2:
        language = pycountry.languages.get(alpha_2=tag)
    elif len(tag) == 3:
        language = pycountry.languages.get(alpha_3=tag) or pycountry.languages.get(bibliographic=tag)
    return language.alpha_3 if language else tag


def language_tag(code):
    """The language as HLS's LANGUAGE attribute wants it (RFC 5646: "de", else "gsw")."""
    language = pycountry.languages.get(alpha_3=code) if code and len(code) == 3 else None
    return getattr(language, "alpha_2", None) or code


def language_name(code):
    language = pycountry.languages.get(alpha_3=code) if code and len(code) == 3 else None
    return language.name if language else None


def _int(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _rate(stream):
    for key in ("avg_frame_rate", "r_frame_rate"):
        try:
            rate = Fraction(stream.get(key) or "")
        except (ValueError, ZeroDivisionError):
            continue
        if 0 < rate < 1000:
            return round(float(rate), 3)
    return None


def _bit_depth(stream):
    depth = _int(stream.get("bits_per_raw_sample"))
    if depth:
        return depth
    match = re.search(r"p(\d+)(le|be)$", stream.get("pix_fmt") or "")
    return int(match.group(1)) if match else (8 if stream.get("pix_fmt") else None)


def _side_data(stream, kind):
    return next((d for d in stream.get("side_data_list") or [] if d.get("side_data_type") == kind), None)


def _video(stream, hdr10_plus):
    name = lambda key: untrusted.ffmpeg_name(stream.get(key))  # noqa: E731
    transfer = name("color_transfer")
    dovi = _side_data(stream, DOVI_SIDE_DATA)
    if dovi is not None:
        hdr = "DOVI"
    elif transfer == PQ:
        hdr = "HDR10+" if hdr10_plus else "HDR10"
    elif transfer == HLG:
        hdr = "HLG"
    else:
        hdr = "SDR"
    return VideoStream(
        index=stream["index"], codec=name("codec_name") or "unknown", profile=name("profile"),
        width=stream.get("width"), height=stream.get("height"), frame_rate=_rate(stream),
        pix_fmt=name("pix_fmt"), bit_depth=_bit_depth(stream), color_transfer=transfer,
        color_primaries=name("color_primaries"), color_space=name("color_space"),
        color_range=name("color_range"), hdr=hdr,
        dovi_profile=_int(dovi.get("dv_profile")) if dovi else None,
        dovi_base_layer=DOVI_BASE_LAYER.get(_int(dovi.get("dv_bl_signal_compatibility_id"))) if dovi else None,
        interlaced=stream.get("field_order") in INTERLACED, bit_rate=_int(stream.get("bit_rate")),
    )


def _flags(stream):
    disposition, tags = stream.get("disposition") or {}, stream.get("tags") or {}
    return disposition, untrusted.title(tags.get("title")), language_code(tags.get("language"))


def _audio(position, stream):
    disposition, title, language = _flags(stream)
    return AudioStream(
        stream=position, index=stream["index"], codec=untrusted.ffmpeg_name(stream.get("codec_name")) or "unknown",
        channels=stream.get("channels"), layout=untrusted.ffmpeg_name(stream.get("channel_layout")),
        language=language,
        title=title, default=bool(disposition.get("default")),
        commentary=bool(disposition.get("comment")) or bool(title and _COMMENTARY.search(title)),
        description=bool(disposition.get("visual_impaired") or disposition.get("descriptions"))
        or bool(title and _DESCRIPTION.search(title)),
        bit_rate=_int(stream.get("bit_rate")),
    )


def _subtitle(position, stream):
    disposition, title, language = _flags(stream)
    codec = untrusted.ffmpeg_name(stream.get("codec_name")) or "unknown"
    return SubtitleStream(
        stream=position, index=stream["index"], codec=codec, language=language, title=title,
        default=bool(disposition.get("default")), forced=bool(disposition.get("forced")),
        hearing_impaired=bool(disposition.get("hearing_impaired")), text=codec in TEXT_SUBTITLES,
    )


def parse_probe(data, hdr10_plus=False):
    """Build MediaInfo from ffprobe's JSON (pure); raise ProbeError when it is not playable video.

    `hdr10_plus`: the first video frame carries HDR10+ dynamic metadata (a second probe's finding)."""
    fmt = data.get("format") or {}
    streams = data.get("streams") or []
    video = [s for s in streams if s.get("codec_type") == "video"
             and not (s.get("disposition") or {}).get("attached_pic")]  # cover art is not the movie
    if not video:
        raise ProbeError("no video stream")
    try:
        duration = float(fmt.get("duration"))
    except (TypeError, ValueError):
        raise ProbeError("no duration: a still image or an unfinished stream") from None
    if not math.isfinite(duration) or duration <= 0:
        raise ProbeError("no finite duration")
    if duration > MAX_DURATION_S:  # a header's claim: the grid would list it all (a segment each 4 s)
        raise ProbeError(f"claims to last {duration / 3600:.0f} hours (at most {MAX_DURATION_S // 3600} are played)")
    of_type = lambda kind: [s for s in streams if s.get("codec_type") == kind]  # noqa: E731
    return MediaInfo(
        duration_s=duration, format_name=untrusted.ffmpeg_name(fmt.get("format_name")) or "",
        video=_video(video[0], hdr10_plus),
        audio=tuple(_audio(n, s) for n, s in enumerate(of_type("audio"))),
        subtitles=tuple(_subtitle(n, s) for n, s in enumerate(of_type("subtitle"))),
        bit_rate=_int(fmt.get("bit_rate")), start_s=_start(fmt.get("start_time")),
        fonts=tuple(s["index"] for s in of_type("attachment")
                    if FONT_TYPES.search(" ".join((s.get("tags") or {}).get(k, "") for k in ("mimetype", "filename")))),
    )


def has_hdr10_plus(frames_report):
    """True when ffprobe's report of the first video frame holds HDR10+ metadata (pure)."""
    return any(d.get("side_data_type") == HDR10_PLUS_SIDE_DATA
               for frame in frames_report.get("frames") or [] for d in frame.get("side_data_list") or [])


def signal_peak(frames_report):
    """The peak FFmpeg's tonemap filter reads from the first frame's side data, in multiples of
    SDR white (pure): its MaxCLL, else its mastering display's peak, else None (no frame read;
    tonemap falls back to 10 for the linear frames zscale gives it)."""
    frames = frames_report.get("frames") or []
    if not frames:
        return None
    data = {d.get("side_data_type"): d for d in frames[0].get("side_data_list") or []}
    max_cll = (data.get("Content light level metadata") or {}).get("max_content") or 0
    if max_cll:
        return max_cll / tonemap.SDR_WHITE_NITS
    luminance = (data.get("Mastering display metadata") or {}).get("max_luminance")
    if luminance:
        number, _, denominator = str(luminance).partition("/")
        try:
            value = float(number) / float(denominator or 1)
        except (ValueError, ZeroDivisionError):
            value = 0
        if value > 0:
            return value / tonemap.SDR_WHITE_NITS
    return 10.0


def _run(argv):
    try:
        proc = bounded.run(argv, PROBE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise ProbeError(f"ffprobe took longer than {PROBE_TIMEOUT_S}s") from None
    except OSError as exc:
        raise ProbeError(f"cannot run ffprobe ({argv[0]}): {exc.strerror}") from None
    return proc


def run_ffprobe(ffprobe, path, prefix=()):
    """Probe the file at `path` (already resolved and checked by the caller) with a fresh ffprobe.

    `prefix` goes before the command (the library scan runs it through ``nice``). An HDR10 or
    HLG source (or Dolby Vision on such a base layer) is probed a second time, on its first
    keyframe: HDR10+ and the peak the tone-map reads live in per-frame metadata only."""
    exe = shutil.which(ffprobe)
    if exe is None:  # found here: behind a prefix, a missing ffprobe would read like a bad file
        raise ProbeError(f"cannot run ffprobe ({ffprobe}): not found")
    base = [*prefix, exe, "-v", "error", "-of", "json", *inputs.GUARD]
    proc = _run([*base, "-show_entries", _ENTRIES, inputs.url(path)])
    if proc.returncode != 0:
        stderr = proc.stderr.decode(errors="replace")
        last = stderr.strip().splitlines()[-1:] or ["unknown error"]
        raise ProbeError(inputs.refusal(stderr) or last[0].replace(inputs.url(path) + ": ", ""))
    try:
        info = parse_probe(json.loads(proc.stdout))
        inputs.check_format(info.format_name)
    except json.JSONDecodeError:
        raise ProbeError("ffprobe printed no readable report") from None
    except ValueError as exc:
        raise ProbeError(str(exc)) from None
    shown_as = info.video.dovi_base_layer if info.video.hdr == "DOVI" else info.video.hdr
    if shown_as in ("HDR10", "HLG"):
        # a few packets, the keyframe among them decoded alone (HDR10+ metadata comes with every
        # frame): decoding the first 8 frames of a 4K film too took 0.34 s, on the path of the
        # first playlist, against 0.08 s. An MP4's edit list would mark that keyframe as one to
        # drop (the B-frames' delay): ignored here (other demuxers ignore the option).
        frames = _run([*base, "-select_streams", str(info.video.index), "-read_intervals", "%+#8",
                       "-skip_frame", "nokey", "-ignore_editlist", "1", "-show_entries",
                       "frame_side_data=side_data_type,max_content,max_luminance", inputs.url(path)])
        try:
            report = json.loads(frames.stdout) if frames.returncode == 0 else {}
        except json.JSONDecodeError:
            report = {}  # the first probe's finding stands, without a peak
        video = dataclasses.replace(info.video, signal_peak=signal_peak(report))
        if video.hdr == "HDR10" and has_hdr10_plus(report):
            video = dataclasses.replace(video, hdr="HDR10+")
        info = dataclasses.replace(info, video=video)
    return info


def _start(value):
    try:
        start = float(value)
    except (TypeError, ValueError):
        return 0.0
    return start if math.isfinite(start) else 0.0


def info_to_dict(info):
    return dataclasses.asdict(info)


def info_from_dict(data):
    """The inverse of info_to_dict (for the library's cache on disk)."""
    return MediaInfo(**{
        **data, "video": VideoStream(**data["video"]),
        "audio": tuple(AudioStream(**a) for a in data["audio"]),
        "subtitles": tuple(SubtitleStream(**s) for s in data["subtitles"]),
        "fonts": tuple(data["fonts"]),
    })
