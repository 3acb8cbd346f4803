"""The speed guard: a transcode that falls behind real time steps down until it keeps ahead of
its viewer, or says it cannot (pure: no I/O, no clocks; jobs.py acts on what it decides).

A job's steps go from what was asked (step 0) to the lightest the worker will make: x264 first
keeps its size and bitrate with a light analysis (veryfast with Jellyfin's x264 settings: the
cheapest motion search and partitions, a short lookahead; about 15 % faster on 4K HDR10 to 1080p,
SSIM between veryfast's and ultrafast's; a heavy source at veryfast has it from its first step,
ffmpeg_command.light_from_start), then x264 and x265 drop to their fastest preset at the same
size, then each next step is the next lower rung of the bitrate ladder
(ffmpeg_command.BITRATE_LADDER), at its bitrate, down to the lowest. Hardware encoders have no
presets to drop: their steps are the rungs. Every step lighter than the first, and a heavy
source from its first, decodes a source it halves (or more) without the decoder's loop filters
(ffmpeg_command.light_decode).

The decision reads FFmpeg's own clock: (wall seconds, output seconds) samples from its progress
reports. Speed is measured over a sliding WINDOW_S; samples from the first segment (the warm-up:
FFmpeg opening the source and filling its pipeline) do not count, nor anything before a throttled
job was resumed (the caller starts its samples anew then). Waiting for the whole ramp of short
segments instead put a heavy film's step after its viewer's tenth second, where the restart shows
as a stall; the first segment is all the warm-up there is. A job whose speed has stayed
below real time for `behind_s` takes the next step; one at its last step reports that it cannot
keep up, which makes the worker STRESSED.
"""
from dataclasses import dataclass, replace

from .ffmpeg_command import BITRATE_LADDER, LIGHT_PRESET

WINDOW_S = 4.0  # the sliding window FFmpeg's speed is measured over
REAL_TIME = 1.0
FASTEST_PRESET = "ultrafast"  # x264's and x265's
PRESET_ENCODERS = frozenset({"libx264", "libx265"})
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow",
                "placebo")
LOWEST_BITRATE_BPS = 600_000  # the lowest rung's bitrate (its ladder floor is 0)


@dataclass(frozen=True)
class Step:
    number: int
    preset: str | None  # None: the encoder's own (hardware encoders)
    height: int
    bitrate_bps: int
    light: bool = False  # x264's light analysis (ffmpeg_command.LIGHT_X264)

    def describe(self):
        preset = f", {self.preset}" if self.preset else ""
        light = ", light analysis" if self.light else ""
        return f"step {self.number}: {self.height}p at {self.bitrate_bps / 1e6:g} Mb/s{preset}{light}"


def steps(encoder, preset, height, bitrate_bps, light=False):
    """The job's steps: [what was asked, then lighter and lighter]. `light`: the first step
    analyses lightly already (ffmpeg_command.light_from_start), so no step does it again."""
    preset = preset if encoder in PRESET_ENCODERS else None
    found = [Step(0, preset, height, bitrate_bps, light=light)]
    if encoder == "libx264" and preset in X264_PRESETS and not light and (
            X264_PRESETS.index(preset) >= X264_PRESETS.index(LIGHT_PRESET)):
        found.append(Step(1, LIGHT_PRESET, height, bitrate_bps, light=True))
    if preset is not None and preset != FASTEST_PRESET:
        found.append(Step(len(found), FASTEST_PRESET, height, bitrate_bps))
        preset = FASTEST_PRESET
    for floor, rung in BITRATE_LADDER:
        if rung < height:
            bitrate = min(bitrate_bps, max(floor, LOWEST_BITRATE_BPS))
            found.append(Step(len(found), preset, rung, bitrate))
    return found


def on_one_stream(found, fmp4=False):
    """The steps a job may take without changing what players were told: a VOD playlist announces
    one picture size, so the lower rungs wait for the quality ladder; and an fMP4 (HEVC) job's
    one init segment holds the parameter sets of the encoder as it began (x265's ultrafast has
    other CTU sizes and tools: its segments would not decode with it), so it keeps its first step
    (the guard still says when it cannot keep up)."""
    kept = [s for s in found if s.height == found[0].height][:1 if fmp4 else None]
    return [replace(s, number=n) for n, s in enumerate(kept)]


def windowed_speeds(samples, window_s=WINDOW_S):
    """[(wall, speed)]: at each sample, output seconds per wall second over the window ending
    there (from the first sample at least window_s before it; none until there is one)."""
    found = []
    first = 0
    for wall, out in samples:
        while first + 1 < len(samples) and samples[first + 1][0] <= wall - window_s:
            first += 1
        start_wall, start_out = samples[first]
        if wall - start_wall >= window_s:
            found.append((wall, (out - start_out) / (wall - start_wall)))
    return found


@dataclass(frozen=True)
class Decision:
    behind_for_s: float  # how long the speed has stayed below real time (0: it keeps up)
    speed: float | None  # the latest windowed speed
    step: int  # the step to run at: the current one, or the next when it falls behind
    reason: str | None  # why it steps down, or why it cannot keep up
    stressed: bool  # behind at the last step: nothing lighter is left


def decide(samples, *, warmup_out_s, behind_s, step, last_step, window_s=WINDOW_S):
    """The guard's decision for a job at `step` (of 0..last_step) from its progress samples
    [(wall seconds, output seconds)] of this run."""
    measured = windowed_speeds([s for s in samples if s[1] >= warmup_out_s], window_s)
    if not measured:
        return Decision(0.0, None, step, None, False)
    wall, speed = measured[-1]
    behind_since = None
    for at, value in reversed(measured):
        if value >= REAL_TIME:
            break
        behind_since = at
    behind_for = 0.0 if behind_since is None else wall - behind_since
    if behind_since is None or behind_for < behind_s:
        return Decision(behind_for, speed, step, None, False)
    if step < last_step:
        return Decision(behind_for, speed, step + 1,
                        f"{speed:.2f}x real time for {behind_for:.0f}s: stepped down", False)
    return Decision(behind_for, speed, step,
                    f"{speed:.2f}x real time for {behind_for:.0f}s at its lightest step", True)


HEADROOM = 2.0  # a job this many times faster than real time could run a step heavier
HEADROOM_SPAN_S = 30.0


def has_headroom(samples, *, warmup_out_s, span_s=HEADROOM_SPAN_S, window_s=WINDOW_S):
    """True when the job has run at HEADROOM times real time or more, throughout the last
    span_s of its measured samples."""
    measured = windowed_speeds([s for s in samples if s[1] >= warmup_out_s], window_s)
    if not measured or measured[-1][0] - measured[0][0] < span_s:
        return False
    recent = [speed for wall, speed in measured if wall >= measured[-1][0] - span_s]
    return min(recent) >= HEADROOM
