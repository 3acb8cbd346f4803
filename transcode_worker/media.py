"""What a source file holds, as ffprobe reports it (library.py decides when to ask)."""
import dataclasses
import json
import shutil
import subprocess
from dataclasses import dataclass

PROBE_TIMEOUT_S = 20
# ffprobe's field orders of interlaced video (the others: progressive, unknown)
INTERLACED = frozenset({"tt", "bb", "tb", "bt"})
_ENTRIES = (
    "format=duration,format_name"
    ":stream=index,codec_type,codec_name,profile,pix_fmt,width,height,field_order,channels"
    ":stream_disposition=default,attached_pic"
    ":stream_tags=language"
)


class ProbeError(Exception):
    """The file is not media FFmpeg can play; str() says why in one line."""


@dataclass(frozen=True)
class AudioStream:
    index: int
    codec: str
    channels: int | None
    default: bool
    language: str | None


@dataclass(frozen=True)
class MediaInfo:
    duration_s: float
    format_name: str
    video_index: int
    video_codec: str
    pix_fmt: str | None
    width: int | None
    height: int | None
    audio: tuple[AudioStream, ...]
    interlaced: bool = False  # broadcast recordings, DVDs: a transcode deinterlaces

    @property
    def main_audio(self):
        """The track a player would pick: the one flagged default, else the first; None if silent."""
        return next((a for a in self.audio if a.default), self.audio[0] if self.audio else None)


def parse_probe(data):
    """Build MediaInfo from ffprobe's JSON (pure); raise ProbeError when it is not playable video."""
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
    if duration <= 0:
        raise ProbeError("zero duration")
    audio = tuple(
        AudioStream(
            index=s["index"], codec=s.get("codec_name", "unknown"), channels=s.get("channels"),
            default=bool((s.get("disposition") or {}).get("default")),
            language=(s.get("tags") or {}).get("language"),
        )
        for s in streams if s.get("codec_type") == "audio"
    )
    v = video[0]
    return MediaInfo(
        duration_s=duration, format_name=fmt.get("format_name", ""), video_index=v["index"],
        video_codec=v.get("codec_name", "unknown"), pix_fmt=v.get("pix_fmt"),
        width=v.get("width"), height=v.get("height"), audio=audio,
        interlaced=v.get("field_order") in INTERLACED,
    )


def run_ffprobe(ffprobe, path, prefix=()):
    """Probe the file at `path` (already resolved and checked by the caller) with a fresh ffprobe.

    `prefix` goes before the command (the library scan runs it through ``nice``)."""
    exe = shutil.which(ffprobe)
    if exe is None:  # found here: behind a prefix, a missing ffprobe would read like a bad file
        raise ProbeError(f"cannot run ffprobe ({ffprobe}): not found")
    argv = [*prefix, exe, "-v", "error", "-show_entries", _ENTRIES, "-of", "json", "file:" + path]
    try:
        proc = subprocess.run(argv, capture_output=True, timeout=PROBE_TIMEOUT_S, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise ProbeError(f"ffprobe took longer than {PROBE_TIMEOUT_S}s") from None
    except OSError as exc:
        raise ProbeError(f"cannot run ffprobe ({ffprobe}): {exc.strerror}") from None
    if proc.returncode != 0:
        last = proc.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["unknown error"]
        raise ProbeError(last[0].replace("file:" + path + ": ", ""))
    try:
        return parse_probe(json.loads(proc.stdout))
    except json.JSONDecodeError:
        raise ProbeError("ffprobe printed no readable report") from None


def info_to_dict(info):
    return dataclasses.asdict(info)


def info_from_dict(data):
    """The inverse of info_to_dict (for the library's cache on disk)."""
    return MediaInfo(**{**data, "audio": tuple(AudioStream(**a) for a in data["audio"])})
