"""What this machine's FFmpeg can do: its version, the video encoders a job may ask for, and the
hardware acceleration it proved by trial (hardware.py).

Software encoders count when the build has them; hardware encoders only once a trial encode has
proved them on this machine. Found once at start and kept for the life of the process.
"""
import logging
import re
import subprocess
from dataclasses import dataclass, field

from . import bounded, hardware

log = logging.getLogger(__name__)

SOFTWARE_ENCODERS = ("libx264", "libx265")
_ENCODER_LINE = re.compile(r"^\s*V[A-Z.]{5}\s+(\S+)\s", re.MULTILINE)
_VERSION = re.compile(r"ffmpeg version (\S+)")


@dataclass(frozen=True)
class Capabilities:
    ffmpeg_version: str | None  # None: FFmpeg could not be run
    encoders: tuple[str, ...]   # the values a job's `encoder` may take
    hardware_acceleration: tuple[str, ...] = ()
    vaapi_device: str | None = None
    hardware_tonemap: tuple[str, ...] = ()  # "opencl", "vaapi": HDR can be tone-mapped on the GPU
    trials: tuple = field(default=(), compare=False)  # hardware.TrialResult, for `probe`
    skipped: tuple = field(default=(), compare=False)

    @property
    def ffmpeg_ok(self):
        return self.ffmpeg_version is not None

    def report(self):
        """The whole finding, as `transcode-worker probe` prints it."""
        return {
            "ffmpeg_version": self.ffmpeg_version,
            "encoders": list(self.encoders),
            "hardware_acceleration": list(self.hardware_acceleration),
            "vaapi_device": self.vaapi_device,
            "hardware_tonemap": list(self.hardware_tonemap),
            "trials": [r.to_dict() for r in self.trials],
            "not_tried": [{"api": api, "what": what, "reason": why} for api, what, why in self.skipped],
        }


def parse_encoders(text):
    """Names of the video encoders in `ffmpeg -encoders` output (pure)."""
    return _ENCODER_LINE.findall(text)


def parse_hwaccels(text):
    """Names in `ffmpeg -hwaccels` output (pure)."""
    lines = text.splitlines()
    start = next((i + 1 for i, line in enumerate(lines) if line.strip().endswith("methods:")), len(lines))
    return [line.strip() for line in lines[start:] if line.strip()]


def _run(ffmpeg, option):
    # no -hide_banner: the banner on stderr carries the version
    proc = bounded.run([ffmpeg, option], 30)
    return proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace")


def detect(ffmpeg, render_nodes=None):
    """List FFmpeg's encoders, keep the software ones it has, and prove the hardware ones by trial."""
    try:
        encoders_out, banner = _run(ffmpeg, "-encoders")
        hwaccels_out, _ = _run(ffmpeg, "-hwaccels")
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.error("cannot run FFmpeg (%s): %s", ffmpeg, exc)
        return Capabilities(ffmpeg_version=None, encoders=())
    version = _VERSION.search(banner)
    listed = parse_encoders(encoders_out)
    found = hardware.find(ffmpeg, listed, parse_hwaccels(hwaccels_out), render_nodes)
    return Capabilities(
        ffmpeg_version=version.group(1) if version else "unknown",
        encoders=tuple(e for e in SOFTWARE_ENCODERS if e in listed) + found.encoders,
        hardware_acceleration=found.hardware_acceleration,
        vaapi_device=found.vaapi_device,
        hardware_tonemap=found.tonemap,
        trials=found.results,
        skipped=found.skipped,
    )
