"""What this machine's FFmpeg can do: its version and the video encoders a job may ask for.

Software encoders count when the build has them. Hardware encoders count only once a trial
encode has proved them (the orchestrator-link work adds that trial); until then there are none.
"""
import logging
import re
import subprocess
from dataclasses import dataclass

log = logging.getLogger(__name__)

SOFTWARE_ENCODERS = ("libx264", "libx265")
_ENCODER_LINE = re.compile(r"^\s*V[A-Z.]{5}\s+(\S+)\s", re.MULTILINE)
_VERSION = re.compile(r"ffmpeg version (\S+)")


@dataclass(frozen=True)
class Capabilities:
    ffmpeg_version: str | None  # None: FFmpeg could not be run
    encoders: tuple[str, ...]   # the values a job's `encoder` may take
    hardware_acceleration: tuple[str, ...] = ()

    @property
    def ffmpeg_ok(self):
        return self.ffmpeg_version is not None


def parse_encoders(text):
    """Names of the video encoders in `ffmpeg -encoders` output (pure)."""
    return _ENCODER_LINE.findall(text)


def detect(ffmpeg):
    """Run `ffmpeg -encoders` once and keep the software encoders it has."""
    try:
        proc = subprocess.run([ffmpeg, "-encoders"], capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.error("cannot run FFmpeg (%s): %s", ffmpeg, exc)
        return Capabilities(ffmpeg_version=None, encoders=())
    version = _VERSION.search(proc.stderr.decode(errors="replace"))
    available = set(parse_encoders(proc.stdout.decode(errors="replace")))
    return Capabilities(
        ffmpeg_version=version.group(1) if version else "unknown",
        encoders=tuple(e for e in SOFTWARE_ENCODERS if e in available),
    )
