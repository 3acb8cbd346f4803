"""Reading FFmpeg's `-progress` output and the playlist it writes (pure functions)."""
import math
from dataclasses import dataclass

from . import hls_names


@dataclass(frozen=True)
class Progress:
    """One `-progress` block: how far the output is, and how fast it got there."""

    out_time_s: float | None
    speed: str | None  # "1.8x"
    frame: int | None
    ended: bool        # FFmpeg's last block (progress=end)


def _number(value, kind):
    try:
        return kind(value)
    except (TypeError, ValueError):  # "N/A" before the first frame
        return None


def format_speed(raw):
    """FFmpeg's "1.83x" or "  12x" -> "1.8x"; None when unknown."""
    value = _number((raw or "").strip().rstrip("x"), float)
    if value is None or not math.isfinite(value) or value < 0:  # "N/A", "inf" at the very start
        return None
    return f"{value:.1f}x"


class ProgressParser:
    """Feed it lines of `-progress pipe:1`; it returns a Progress when a block completes."""

    def __init__(self):
        self._block = {}

    def feed(self, line):
        key, sep, value = line.strip().partition("=")
        if not sep:
            return None
        self._block[key] = value
        if key != "progress":
            return None
        block, self._block = self._block, {}
        micros = _number(block.get("out_time_us"), int)
        return Progress(
            out_time_s=max(micros, 0) / 1e6 if micros is not None else None,
            speed=format_speed(block.get("speed")),
            frame=_number(block.get("frame"), int),
            ended=value == "end",
        )


def percent(seek_s, out_time_s, duration_s):
    """Share of the whole movie done, counting the seek offset; None when unknown."""
    if out_time_s is None or not duration_s:
        return None
    return round(min(100.0, max(0.0, 100.0 * (seek_s + out_time_s) / duration_s)), 1)


def segment_numbers(playlist_text, job_id):
    """Sequence numbers of the segments a playlist lists, in order."""
    pattern = hls_names.segment_pattern(job_id)
    return [int(m.group(1)) for line in playlist_text.splitlines()
            if (m := pattern.fullmatch(line.strip())) and not m.group(2)]
