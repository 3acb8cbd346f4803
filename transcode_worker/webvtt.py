"""WebVTT for players (pure): the cues of an extracted track, cut into segments that line up with
the video's, each carrying the X-TIMESTAMP-MAP that ties its cue times to the video's timestamps.

Cue times stay in film time (the source's own); the map in every segment says which MPEG-TS
timestamp (90 kHz) film time 0 has: one constant of the job (grid.py's clock, whichever run made
the video), so a cue shows on the frame where the source shows it, after any seek.
"""
import re
from dataclasses import dataclass

from .playlist import media_playlist

_TIMING = re.compile(r"^\s*((?:\d+:)?\d{1,2}:\d{2}\.\d{3})\s+-->\s+((?:\d+:)?\d{1,2}:\d{2}\.\d{3})(.*)$")
# a cue overlapping a segment's edge by less than this still goes into the neighbour too (a
# player that joins there shows it either way)
EDGE_S = 0.5


@dataclass(frozen=True)
class Cue:
    start: float
    end: float
    settings: str  # position, alignment... as WebVTT says them ("" for none)
    text: str


def seconds(stamp):
    parts = [float(p) for p in stamp.split(":")]
    return sum(value * 60 ** power for power, value in enumerate(reversed(parts)))


def stamp(seconds_):
    millis = max(0, round(seconds_ * 1000))
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    return f"{hours:02d}:{minutes:02d}:{rest // 1000:02d}.{rest % 1000:03d}"


def parse(text):
    """The cues of a WebVTT file, in order of start. A cue's text ends, as a player reads it, at
    an empty line or at a line with "-->" (the next cue's timings: FFmpeg writes a styled
    track's text as it is, and segment() writes no cue text a player would read otherwise)."""
    cues, lines = [], text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    i = 0
    while i < len(lines):
        match = _TIMING.match(lines[i])
        i += 1
        if not match:
            continue
        body = []
        while i < len(lines) and lines[i].strip() and "-->" not in lines[i]:
            body.append(lines[i])
            i += 1
        start, end = seconds(match.group(1)), seconds(match.group(2))
        if end > start and body:
            cues.append(Cue(start, end, match.group(3).rstrip(), "\n".join(body)))
    return sorted(cues, key=lambda c: c.start)


def segment(cues, start_s, end_s, mpegts, local_s):
    """One WebVTT segment: the cues shown between movie times start_s and end_s, with the map
    from movie time `local_s` (ms precision) to MPEG-TS timestamp `mpegts`. `local_s` is where
    the run starts: a cue over before it is left out, one still running is in."""
    lines = ["WEBVTT", f"X-TIMESTAMP-MAP=MPEGTS:{mpegts},LOCAL:{stamp(local_s)}", ""]
    for cue in cues:
        if cue.end > max(start_s - EDGE_S, local_s) and cue.start < end_s + EDGE_S:
            lines += [f"{stamp(cue.start)} --> {stamp(cue.end)}{cue.settings}", cue.text, ""]
    return "\n".join(lines) + "\n"


def playlist(grid, job_id, stream, start_s=0.0):
    """The subtitle media playlist of rendition `stream`: the video's grid, each segment's WebVTT
    twin in its place, so the two line up segment for segment."""
    return media_playlist(grid, lambda number: f"{job_id}_sub{stream}_{number}.vtt", start_s)


# ASS places a subtitle on a numpad grid (\an1-9; 2, bottom centre, is the default); WebVTT says
# it with cue settings: the row by `line`, the column by `position` and `align`.
_ROWS = {0: "", 1: " line:50%,center", 2: " line:0"}
_COLUMNS = {0: " position:5% align:start", 1: "", 2: " position:95% align:end"}
_ANCHOR = re.compile(r"\\an([1-9])")


def ass_positions(ass_text):
    """[(start seconds, cue settings)] of an ASS script's events, from their style's alignment
    or their own \\an override; events at the default place are left out."""
    styles, fields, placed = {}, [], []
    section = ""
    for line in ass_text.replace("\r\n", "\n").split("\n"):
        line = line.strip()
        if line.startswith("["):
            section = line.lower()
        elif line.startswith("Format:"):
            fields = [f.strip().lower() for f in line[7:].split(",")]
        elif line.startswith("Style:") and "styles" in section and "alignment" in fields:
            values = [v.strip() for v in line[6:].split(",")]
            if len(values) == len(fields):
                styles[values[fields.index("name")]] = values[fields.index("alignment")]
        elif line.startswith("Dialogue:") and {"start", "style", "text"} <= set(fields):
            values = line[9:].split(",", len(fields) - 1)
            if len(values) != len(fields):
                continue
            text = values[fields.index("text")]
            anchor = _ANCHOR.search(text)
            alignment = anchor.group(1) if anchor else styles.get(values[fields.index("style")].strip(), "2")
            if alignment.isdigit() and alignment != "2" and 1 <= int(alignment) <= 9:
                row, column = divmod(int(alignment) - 1, 3)
                placed.append((seconds(values[fields.index("start")].strip()), _ROWS[row] + _COLUMNS[column]))
    return placed


def with_positions(cues, positions):
    """The cues with the settings of the ASS event that starts with each (ASS counts centiseconds)."""
    placed = []
    for cue in cues:
        settings = next((s for start, s in positions if abs(start - cue.start) <= 0.011), "")
        placed.append(Cue(cue.start, cue.end, cue.settings or settings, cue.text) if settings else cue)
    return placed
