"""The rules that keep the worker safe, applied to a job command before anything is spawned.

The orchestrator's paths are not trusted: a source must resolve (symlinks included) to a
regular, playable file inside a media root; an output folder must resolve strictly inside
segment_root. Every failing field is reported at once.
"""
import os
import stat
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from . import hls_names, media, tonemap
from .ffmpeg_command import PLAYER_SAFE_VIDEO, delivers_hevc
from .schemas import seek_seconds
from .tracks import TrackChoiceError, choose_audio, choose_subtitle
from .untrusted import BIDI_CONTROLS


@dataclass(frozen=True)
class JobSpec:
    """A validated job command with every default applied: what FFmpeg will be asked to do."""

    job_id: str
    source: Path           # resolved, inside a media root
    folder: Path           # resolved, strictly inside segment_root
    seek_time: str
    bitrate_bps: int
    encoder: str
    force_remux: bool
    media: media.MediaInfo
    source_path: str       # as the orchestrator sent it
    output_path: str | None
    audio: media.AudioStream | None = None  # the track played (None: a silent source)
    audio_chosen_by: str | None = None      # audio_stream, audio_language, default, first
    audio_stream: int | None = None         # as the command asked
    audio_language: str | None = None
    subtitle: media.SubtitleStream | None = None  # shown by default (None: none)
    burn: bool = False                      # the subtitle is drawn into the picture
    subtitle_chosen_by: str | None = None   # subtitle_stream, forced
    subtitle_stream: int | None = None      # as the command asked
    burn_subtitles: bool = False
    segment_s: float = 4.0        # the grid's segment_duration_s and first_segment_s: the command's,
    first_segment_s: float = 1.0  # else this worker's settings
    step: object = None  # speed_guard.Step this run is made at (None: as asked); not part of the command

    @property
    def seek_s(self):
        return seek_seconds(self.seek_time)

    def same_command(self, other):
        """True when `other` asks for exactly what this one does (a retry, not a change)."""
        return self._identity() == other._identity()

    def other_subtitles_only(self, other):
        """True when `other` changes only which subtitles are shown or burned (the same seek_time
        too): the viewer switched subtitles while watching."""
        return self._identity()[:-2] == other._identity()[:-2] and not self.same_command(other)

    def same_stream(self, other):
        """True when `other` asks for the same pictures (perhaps from another seek_time, with
        another audio track or other subtitles chosen: renditions beside them): the same grid,
        the same segments."""
        return self._picture() == other._picture()

    def _picture(self):
        burned = self.subtitle.index if self.burn and self.subtitle else None
        return (self.job_id, self.source, self.folder, self.bitrate_bps, self.encoder, self.force_remux, burned,
                self.segment_s, self.first_segment_s)

    def _identity(self):
        return (self.job_id, self.source, self.folder, self.seek_s, self.bitrate_bps,
                self.encoder, self.force_remux, self.segment_s, self.first_segment_s, self.audio and self.audio.index,
                self.subtitle and self.subtitle.index, self.burn)

    def configuration(self):
        """The command's configuration with every default applied; the track choices as asked
        (absent when not)."""
        asked = {key: getattr(self, key) for key in ("audio_stream", "audio_language", "subtitle_stream")
                 if getattr(self, key) is not None}
        if self.burn_subtitles:
            asked["burn_subtitles"] = True
        return {"seek_time": self.seek_time, "bitrate_bps": self.bitrate_bps,
                "encoder": self.encoder, "force_remux": self.force_remux,
                "segment_duration_s": self.segment_s, "first_segment_s": self.first_segment_s, **asked}

    @property
    def tone_mapped(self):
        return not self.force_remux and tonemap.needed(self.media.video)

    def tracks(self):
        """What the job's answer says about the tracks it plays."""
        video = self.media.video
        out_range = "SDR" if self.tone_mapped else video.video_range
        audio = self.audio
        return {
            "video": {"codec": video.codec if self.force_remux else ("hevc" if delivers_hevc(self) else "h264"),
                      "encoder": None if self.force_remux else self.encoder, "hdr": video.hdr,
                      "tone_mapped": self.tone_mapped, "range": out_range},
            "audio": audio and {
                "stream": audio.stream, "rendition": hls_names.audio_rendition(audio.stream),
                "language": audio.language, "title": audio.title,
                "codec": audio.codec, "channels": audio.channels, "chosen_by": self.audio_chosen_by,
                # (its stereo rendition, the DEFAULT: surround folded down)
                "downmixed": (audio.channels or 3) > 2,
            },
            "subtitles": [
                {"stream": s.stream, "language": s.language, "title": s.title, "codec": s.codec,
                 "default": s == self.subtitle, "burned": s == self.subtitle and self.burn,
                 "chosen_by": self.subtitle_chosen_by if s == self.subtitle else None}
                for s in self.media.subtitles if s.text or (s == self.subtitle and self.burn)
            ],
        }


class FieldErrors(Exception):
    """{field: [messages]} for a command that fails the rules."""

    def __init__(self, errors):
        super().__init__(errors)
        self.errors = errors


class SourceMissing(ValueError):
    """The source path names no file (inside the roots)."""


def is_inside(path, root, *, strictly=False):
    """True when resolved `path` lies within resolved `root` (strictly: and is not root itself)."""
    path, root = Path(path), Path(root)
    return path.is_relative_to(root) and not (strictly and path == root)


def resolve_source(raw, media_roots):
    """The real path of `raw` if it is a readable regular file inside a media root, else ValueError."""
    if "\0" in raw:
        raise ValueError("contains a NUL byte")
    if not os.path.isabs(raw):
        raise ValueError("must be an absolute file path (URLs and protocols such as concat: or http: are refused)")
    real = Path(os.path.realpath(raw))
    if not any(is_inside(real, os.path.realpath(root), strictly=True) for root in media_roots):
        raise ValueError("is outside the media roots (after resolving symlinks)")
    try:
        st = os.stat(real)
    except FileNotFoundError:
        raise SourceMissing("no such file") from None
    except OSError as exc:
        raise ValueError(f"cannot be read: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise ValueError("is not a regular file")
    if not os.access(real, os.R_OK):
        raise ValueError("is not readable by the worker")
    return real


# Characters no output folder may hold: control characters (a newline would reach log lines and
# the death note as a line of its own), line and paragraph separators, unpaired surrogates (no
# file name can hold one) and bidi overrides (a name that reads as another).
_NOT_IN_PATHS = ("Cc", "Zl", "Zp", "Cs")


def _printable_path(raw):
    """ValueError naming the first character of `raw` that no output path may hold."""
    for char in raw:
        if unicodedata.category(char) in _NOT_IN_PATHS or char in BIDI_CONTROLS:
            if char == "\0":
                raise ValueError("contains a NUL byte")
            raise ValueError(f"contains U+{ord(char):04X} (a control character, line break or bidi override)")


def _limit(folder, name, fallback):
    """The file system's limit `name` (PC_NAME_MAX, PC_PATH_MAX) at `folder`; `fallback` when it
    cannot say (no such folder yet, or no limit)."""
    try:
        value = os.pathconf(folder, name)
    except (OSError, ValueError):
        return fallback
    return value if value and value > 0 else fallback


def _within_limits(real, root):
    """ValueError when `real` could not be made: a folder name longer than the file system's
    NAME_MAX, or the whole path longer than PATH_MAX. (realpath and lexists take ENAMETOOLONG
    for "no such file", so without this the folder fails only when the job makes it.)"""
    name_max = _limit(root, "PC_NAME_MAX", 255)
    path_max = _limit(root, "PC_PATH_MAX", 4096)
    for name in real.relative_to(root).parts:
        if len(os.fsencode(name)) > name_max:
            raise ValueError(f"has a folder name of {len(os.fsencode(name))} bytes: "
                             f"at most {name_max} fit in this file system")
    if len(os.fsencode(str(real))) >= path_max:  # PATH_MAX counts the terminating NUL
        raise ValueError(f"is {len(os.fsencode(str(real)))} bytes long inside segment_root: "
                         f"paths of at most {path_max - 1} fit in this file system")


def resolve_output(raw, job_id, segment_root):
    """The real folder for the job's segments: strictly inside segment_root, a folder the file
    system can make, else ValueError."""
    root = Path(os.path.realpath(segment_root))
    if raw is not None:
        _printable_path(raw)
    # an absolute `raw` replaces root; a link in the way is followed (and must stay inside)
    real = Path(os.path.realpath(os.path.join(root, raw if raw is not None else job_id)))
    if not is_inside(real, root, strictly=True):
        raise ValueError(f"must be a folder inside segment_root ({root})")
    _within_limits(real, root)
    for folder in (real, *real.parents):  # the folder, and every folder it would be made in
        if folder == root:
            break
        if os.path.lexists(folder) and not folder.is_dir():
            raise ValueError("exists and is not a folder" if folder == real else
                             f"passes through {str(folder.relative_to(root))!r}, which is not a folder")
    return real


def validate_command(command, settings, capabilities, probe):
    """Apply every rule to a schema-valid command dict; return a JobSpec or raise FieldErrors.

    `probe(path)` gives the source's MediaInfo (MediaLibrary.info: usually known already)."""
    errors = {}
    conf = command["configuration"]
    source = folder = info = None
    try:
        source = resolve_source(command["source_path"], settings.media_roots)
    except ValueError as exc:
        errors["source_path"] = [f"{command['source_path']!r} {exc}"]
    try:
        folder = resolve_output(command["output_path"], command["job_id"], settings.segment_root)
    except ValueError as exc:
        errors["output_path"] = [str(exc)]
    encoder = conf["encoder"] or settings.default_encoder
    # A remux copies the video: the default encoder matters only when one is asked for.
    if encoder not in capabilities.encoders and (conf["encoder"] or not conf["force_remux"]):
        usable = ", ".join(capabilities.encoders) or "none: FFmpeg is missing or has no usable encoder"
        errors["configuration.encoder"] = [f"{encoder!r} is not usable on this worker (usable: {usable})"]
    if source is not None:
        try:
            info = probe(str(source))
        except media.ProbeError as exc:
            errors["source_path"] = [f"not playable media: {exc}"]
        except OSError as exc:
            errors["source_path"] = [f"cannot be read: {exc.strerror}"]
    if info is not None and conf["force_remux"] and info.video.codec not in PLAYER_SAFE_VIDEO:
        errors["configuration.force_remux"] = [
            f"the source's video is {info.video.codec}, which HLS players cannot decode: only "
            f"{' and '.join(sorted(PLAYER_SAFE_VIDEO))} can be copied (leave force_remux out to transcode)"]
    if info is not None and not conf["force_remux"] and not info.video.tone_mappable:
        errors["source_path"] = [
            f"Dolby Vision profile {info.video.dovi_profile} has no HDR10, HLG or SDR base layer: its "
            "colours cannot be tone-mapped to SDR here (a remux, force_remux, plays it on Dolby Vision screens)"]
    audio = chosen_by = subtitle = subtitle_by = None
    burn = False
    if info is not None:
        try:
            audio, chosen_by = choose_audio(info, conf.get("audio_stream"), conf.get("audio_language"))
        except TrackChoiceError as exc:
            errors[exc.field] = [str(exc)]
        try:
            subtitle, burn, subtitle_by = choose_subtitle(
                info, audio, conf.get("subtitle_stream"), conf.get("burn_subtitles", False), conf["force_remux"])
        except TrackChoiceError as exc:
            errors[exc.field] = [str(exc)]
    seek_s = seek_seconds(conf["seek_time"])
    if info is not None and seek_s >= info.duration_s:
        errors["configuration.seek_time"] = [
            f"{conf['seek_time']} is at or past the end of the source ({info.duration_s:.3f}s long)"]
    if errors:
        raise FieldErrors(errors)
    return JobSpec(
        job_id=command["job_id"], source=source, folder=folder, seek_time=conf["seek_time"],
        bitrate_bps=conf["bitrate_bps"] or settings.default_bitrate_bps, encoder=encoder,
        force_remux=conf["force_remux"], media=info,
        source_path=command["source_path"], output_path=command["output_path"],
        audio=audio, audio_chosen_by=chosen_by,
        audio_stream=conf.get("audio_stream"), audio_language=conf.get("audio_language"),
        subtitle=subtitle, burn=burn, subtitle_chosen_by=subtitle_by,
        subtitle_stream=conf.get("subtitle_stream"), burn_subtitles=conf.get("burn_subtitles", False),
        segment_s=_given(conf.get("segment_duration_s"), settings.segment_duration_s),
        first_segment_s=_given(conf.get("first_segment_s"), settings.first_segment_s),
    )


def _given(value, default):
    return default if value is None else value
