"""Where a job's run sits on the movie's timeline: which video timestamp (90 kHz, as players see it
in the segments) shows which moment of the source. WebVTT segments carry it (X-TIMESTAMP-MAP),
so subtitles stay on their frames after every seek.

Nothing here assumes FFmpeg's offsets (its muxer delay, the shift that keeps timestamps
positive, a remux starting on the keyframe before the seek point): both sides are read.
- The first video timestamp of the run: the PTS of the first video PES packet of its first
  MPEG-TS segment, or the first sample's decode time plus composition offset in its first fMP4
  fragment (scaled from the track's timescale in the init segment).
- The movie time of that frame, from the source's own packet timestamps around the seek point
  (ffprobe): a transcode starts on the first frame at or after seek_time (FFmpeg drops the
  frames before it); a remux on the keyframe at or before it (it can only copy from one).
Movie time counts from the file's start, as the extracted WebVTT cues do.
"""
import json
import shutil
import struct
import subprocess
from dataclasses import dataclass

from . import containers, inputs

PROBE_TIMEOUT_S = 20
KEYFRAME_WINDOW_S = 30  # how far before the seek point a keyframe is looked for
TS_VIDEO_TYPES = (0x1B, 0x24)  # H.264, HEVC
MPEGTS_HZ = 90000


@dataclass(frozen=True)
class Timeline:
    mpegts: int      # a video timestamp of this run, 90 kHz
    local_s: float   # the movie time shown at it, whole milliseconds


def first_video_pts(segment, init=None):
    """The first video timestamp (90 kHz) in a segment's bytes; `init`: its fMP4 init segment."""
    if init is not None:
        return _first_fmp4_pts(init, segment)
    video = {pid for kind, pid in containers.ts_streams(segment) if kind in TS_VIDEO_TYPES}
    for pid, start, payload in containers.ts_packets(segment):
        if pid in video and start:
            return containers.pes_pts(payload)
    return None


def _video_track(init):
    """(track id, timescale) of the init segment's video track."""
    moov = containers.child(init, 0, len(init), "moov")
    for kind, start, end in containers.boxes(init, *moov) if moov else ():
        if kind != "trak":
            continue
        hdlr = containers.child(init, start, end, "mdia", "hdlr")
        mdhd = containers.child(init, start, end, "mdia", "mdhd")
        tkhd = containers.child(init, start, end, "tkhd")
        if hdlr and mdhd and tkhd and init[hdlr[0] + 8:hdlr[0] + 12] == b"vide":
            long = init[mdhd[0]] == 1  # version 1: 64-bit times
            timescale = struct.unpack(">I", init[mdhd[0] + (20 if long else 12):][:4])[0]
            track = struct.unpack(">I", init[tkhd[0] + (20 if init[tkhd[0]] == 1 else 12):][:4])[0]
            return track, timescale
    return None


def _first_fmp4_pts(init, segment):
    track = _video_track(init)
    moof = containers.child(segment, 0, len(segment), "moof")
    if track is None or moof is None:
        return None
    for kind, start, end in containers.boxes(segment, *moof):
        tfhd = containers.child(segment, start, end, "tfhd") if kind == "traf" else None
        if tfhd is None or struct.unpack(">I", segment[tfhd[0] + 4:tfhd[0] + 8])[0] != track[0]:
            continue
        tfdt, trun = containers.child(segment, start, end, "tfdt"), containers.child(segment, start, end, "trun")
        if tfdt is None:
            return None
        decode = struct.unpack(">Q" if segment[tfdt[0]] == 1 else ">I",
                               segment[tfdt[0] + 4:tfdt[0] + (12 if segment[tfdt[0]] == 1 else 8)])[0]
        return round((decode + _first_composition_offset(segment, trun)) * MPEGTS_HZ / track[1])
    return None


def _first_composition_offset(data, trun):
    """The first sample's composition time offset in a trun box (0 without one)."""
    if trun is None:
        return 0
    version, flags = data[trun[0]], int.from_bytes(data[trun[0] + 1:trun[0] + 4], "big")
    if not flags & 0x800:
        return 0
    position = trun[0] + 8 + (4 if flags & 0x1 else 0) + (4 if flags & 0x4 else 0)
    position += 4 * bin(flags & 0x700).count("1")  # duration, size, flags come first
    return struct.unpack(">i" if version == 1 else ">I", data[position:position + 4])[0]


def first_frame_time(packets, start_time, seek_s, remux):
    """Movie time of the first video frame a run writes (pure), from the source's video packets
    around the seek point: [(pts seconds, keyframe)], and the file's start time."""
    times = [(pts - start_time, key) for pts, key in packets]
    if remux:
        keyframes = [t for t, key in times if key]
        before = [t for t in keyframes if t <= seek_s + 1e-6]
        return max(before) if before else min(keyframes, default=seek_s)
    after = [t for t, _ in times if t >= seek_s - 1e-6]
    return min(after, default=seek_s)


def source_packets(ffprobe, source, video_index, seek_s):
    """([(pts seconds, keyframe)], start time) of the source's video around seek_s (ffprobe)."""
    exe = shutil.which(ffprobe) or ffprobe
    interval = f"{max(0.0, seek_s - KEYFRAME_WINDOW_S):.3f}%{seek_s + 3:.3f}"
    proc = subprocess.run(
        [exe, "-v", "error", "-of", "json", "-select_streams", str(video_index), "-read_intervals", interval,
         "-show_entries", "packet=pts_time,flags:format=start_time", *inputs.GUARD, inputs.url(source)],
        capture_output=True, timeout=PROBE_TIMEOUT_S, stdin=subprocess.DEVNULL, check=True)
    report = json.loads(proc.stdout)
    packets = [(float(p["pts_time"]), p.get("flags", "").startswith("K"))
               for p in report.get("packets", []) if p.get("pts_time") not in (None, "N/A")]
    return packets, float((report.get("format") or {}).get("start_time") or 0.0)


def timeline(first_pts, movie_s):
    """The map for WebVTT: LOCAL in whole milliseconds, MPEG-TS moved to match."""
    local = int(movie_s * 1000) / 1000
    return Timeline(first_pts - round((movie_s - local) * MPEGTS_HZ), local)
