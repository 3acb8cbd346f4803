"""The playlist players get: FFmpeg's, made to keep the promises RFC 8216 asks of a growing one.

FFmpeg recomputes EXT-X-TARGETDURATION from the longest segment so far, so a playlist's target can
grow while players poll it, which the RFC forbids; it writes EXT-X-ENDLIST on any orderly exit,
failed or stopped ones too. The worker decides both instead (pure functions, no I/O).
"""
import math

# A remux cuts only on the source's own keyframes: a segment can run one keyframe interval past
# its length. 10 s covers x264's default (250 frames at 24-25 fps); sources with keyframes further
# apart get longer segments, and should be transcoded instead.
REMUX_KEYFRAME_ALLOWANCE_S = 10.0
# Start at the beginning of the stream (the seek point), not at the live edge where players put
# the start of a playlist that is still growing.
START_TAG = "#EXT-X-START:TIME-OFFSET=0,PRECISE=YES"
TARGET_TAG = "#EXT-X-TARGETDURATION:"
ENDLIST_TAG = "#EXT-X-ENDLIST"


def target_duration(segment_s, remux):
    """The EXT-X-TARGETDURATION a job declares from its first playlist to its last: a transcode's
    segments are cut on keyframes forced every segment_s; a remux's where the source has one."""
    return math.ceil(segment_s + (REMUX_KEYFRAME_ALLOWANCE_S if remux else 0.0) - 1e-3)


def for_players(ffmpeg_text, target_s, completed):
    """FFmpeg's playlist with the job's fixed target duration, a start at its beginning, and
    EXT-X-ENDLIST when and only when the job completed."""
    lines = []
    for line in ffmpeg_text.splitlines():
        line = line.strip()
        if line.startswith(TARGET_TAG):
            lines += [f"{TARGET_TAG}{target_s}", START_TAG]
        elif line and line != ENDLIST_TAG:
            lines.append(line)
    if completed:
        lines.append(ENDLIST_TAG)
    return "\n".join(lines) + "\n"


# A playlist's segment lines begin with the first of these (or with a segment URI).
SEGMENT_TAGS = ("#EXTINF", "#EXT-X-MAP", "#EXT-X-DISCONTINUITY", "#EXT-X-BYTERANGE", "#EXT-X-PROGRAM-DATE-TIME")
DISCONTINUITY_TAG = "#EXT-X-DISCONTINUITY"


def split(text):
    """(header lines, segment lines) of a media playlist: what comes before its first segment,
    and its segments with their tags; EXT-X-ENDLIST left out."""
    lines = [line.strip() for line in text.splitlines()]
    lines = [line for line in lines if line and line != ENDLIST_TAG]
    first = next((n for n, line in enumerate(lines) if not line.startswith("#") or line.startswith(SEGMENT_TAGS)),
                 len(lines))
    return lines[:first], lines[first:]


def duration(segment_lines):
    """Seconds of media the segment lines list (their EXTINF durations)."""
    return sum(float(line[8:].split(",")[0]) for line in segment_lines if line.startswith("#EXTINF:"))


def joined(header, runs):
    """One media playlist: `header`, then each run's segment lines in order, with an
    EXT-X-DISCONTINUITY where one run ends and the next begins (its timestamps start anew, and
    its size or encoding may differ)."""
    lines = list(header)
    for n, segment_lines in enumerate(r for r in runs if r):
        if n:
            lines.append(DISCONTINUITY_TAG)
        lines += segment_lines
    return "\n".join(lines) + "\n"
