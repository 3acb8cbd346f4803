"""The grid: where a job's segments begin and end, in seconds of film (pure, no I/O).

A job's grid is a function of its source and its configuration only, never of the run of FFmpeg
that fills it nor of the worker it runs on: segment k is the same span of film whichever run, on
whichever worker, makes it. So a player's VOD playlist can list the whole film before FFmpeg has
written anything, and a run can start at any segment.

- A transcode's boundaries are whole frames: segment_duration_s rounded to frames (3.003 s at
  24000/1001 fps for 3 s), after a ramp of short first segments (first_segment_s, then each as
  long as all before it) so a player starts sooner; FFmpeg forces a keyframe on each.
- A remux can only cut where the source has a keyframe: its boundaries are keyframes (keyframes.py
  reads them from the container's index), grouped so each segment is as near segment_duration_s
  as the keyframes allow; a long GOP is a long segment, and the target duration covers it.

One clock: FFmpeg keeps the source's own timestamps (-copyts), moved so that film time 0 is
CLOCK_S (the MPEG-TS muxer adds its own MPEGTS_DELAY_S on top), whichever run writes them, so segments of different runs join without an
EXT-X-DISCONTINUITY and a WebVTT cue's X-TIMESTAMP-MAP is one constant.
"""
import bisect
import math
from dataclasses import dataclass
from fractions import Fraction

CLOCK_S = 10.0  # added to every timestamp: keeps a B-frame's decode time and AAC's priming positive
MPEGTS_DELAY_S = 1.4  # FFmpeg's MPEG-TS muxer starts its clock this late (its default muxdelay, twice)
DEFAULT_FPS = Fraction(25)
CUT_MARGIN_S = 0.001  # see Grid.cut  # a source that does not say its frame rate


def frame_rate(fps):
    """The frame rate as an exact fraction: 23.976... is 24000/1001, as the source meant it."""
    if not fps or fps <= 0 or not math.isfinite(fps):
        return DEFAULT_FPS
    return Fraction(fps).limit_denominator(1001)


@dataclass(frozen=True)
class Grid:
    starts: tuple  # film seconds where each segment begins; starts[0] == 0
    end_s: float  # the film's end: where the last segment ends
    frame_s: float  # one frame: FFmpeg cuts within half of one of each boundary
    remux: bool = False
    origin_s: float = 0.0  # the source's first timestamp, which is film time 0 (FFmpeg's start_time)

    def __len__(self):
        return len(self.starts)

    def start(self, n):
        return self.starts[n]

    def end(self, n):
        return self.starts[n + 1] if n + 1 < len(self.starts) else self.end_s

    def duration(self, n):
        return self.end(n) - self.start(n)

    def durations(self):
        return [self.duration(n) for n in range(len(self.starts))]

    def segment_at(self, seconds):
        """The segment that holds film time `seconds` (the first or the last outside the film)."""
        return min(max(bisect.bisect_right(self.starts, seconds + 1e-6) - 1, 0), len(self.starts) - 1)

    @property
    def target_s(self):
        """EXT-X-TARGETDURATION: no segment is longer (Apple HLS Authoring 7.7)."""
        return max(1, math.ceil(max(self.durations()) - 1e-6))

    def cut(self, n):
        """Where FFmpeg decides segment n begins: its first frame is the first at or after this
        film time (half a frame before the boundary, a millisecond on, so a frame that sits just
        half a frame off the grid falls the same way in the seek, the keyframe and the cut)."""
        return self.starts[n] - self.frame_s / 2 + CUT_MARGIN_S


def _seconds(frames, fps):
    return round(float(frames / fps), 6)


def for_transcode(duration_s, fps, segment_s, first_s=0.0, origin_s=0.0):
    """The grid of a transcode: whole frames of `fps`, a ramp from first_s (0: none), then
    segment_s each, up to duration_s."""
    rate = frame_rate(fps)
    total = max(1, round(duration_s * rate))
    per_segment = max(1, round(segment_s * rate))
    frames = [0]
    step = round(first_s * rate) if 0 < first_s < segment_s else 0
    if step:
        frames.append(step)
        while frames[-1] * 2 < per_segment + frames[-1] and frames[-1] < per_segment:
            frames.append(frames[-1] * 2)
    while frames[-1] + per_segment < total:
        frames.append(frames[-1] + per_segment)
    frames = [f for f in frames if f < total]
    return Grid(tuple(_seconds(f, rate) for f in frames), round(float(duration_s), 6), float(1 / rate),
                origin_s=origin_s)


def for_remux(keyframes, duration_s, segment_s, fps=None, origin_s=0.0):
    """The grid of a remux: cuts on the source's keyframes (in the source's timestamps, whose
    first, origin_s, is film time 0), each segment as near segment_s as they allow."""
    frame_s = float(1 / frame_rate(fps))
    # the first keyframe is where the video begins: nothing before it to cut from
    film = sorted(t - origin_s for t in keyframes)[1:]
    usable = sorted({round(t, 6) for t in film if frame_s / 2 < t < duration_s - frame_s / 2})
    starts = [0.0]
    i = 0
    while i < len(usable):
        last = starts[-1]
        # the keyframes after `last` up to the target, and the first past it
        j = bisect.bisect_right(usable, last + segment_s + 1e-6, lo=i)
        below = usable[j - 1] if j > i else None
        above = usable[j] if j < len(usable) else None
        if above is None and below is None:
            break
        if below is not None and (above is None or (last + segment_s) - below <= above - (last + segment_s)):
            cut, i = below, j
        else:
            cut, i = above, j + 1
        starts.append(cut)
    return Grid(tuple(starts), round(float(duration_s), 6), frame_s, remux=True, origin_s=origin_s)
