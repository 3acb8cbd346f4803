"""The names of a job's HLS files, on disk and in URLs: the only names the worker serves.

- ``<job>.m3u8``: the multivariant playlist (the URL players and the orchestrator are given);
  the worker writes it, from what FFmpeg wrote (multivariant.py).
- ``<job>.media.m3u8``: FFmpeg's media playlist (the dot keeps it apart from any job id).
- ``<job>_<n>.ts``: MPEG-TS segments (H.264); ``<job>_<n>.m4s``: fMP4 segments (HEVC), whose
  init segment is ``<job>_init_<n>.mp4``, n the first segment number of the run that wrote it.
- ``<job>.sub<k>.m3u8`` and ``<job>_sub<k>_<n>.vtt``: the WebVTT rendition of the source's
  subtitle track k (its position among the file's subtitles), segment n beside video segment n;
  the worker writes them when asked, nothing is on disk.
FFmpeg writes each under ``<name>.tmp`` first (``temp_file``) and renames it. A job that burns
text subtitles also holds ``<job>.burn.<ass|vtt>`` (the track) and ``<job>.fonts`` (a link to
the fonts of its file), never served.
"""
import re

_ID = r"[A-Za-z0-9_-]{1,64}"
MULTIVARIANT = re.compile(rf"({_ID})\.m3u8")
MEDIA_PLAYLIST = re.compile(rf"({_ID})\.media\.m3u8")
SEGMENT = re.compile(rf"({_ID})_(\d{{1,9}})\.(ts|m4s)")
INIT = re.compile(rf"({_ID})_init_(\d{{1,9}})\.mp4")
SUBTITLE_PLAYLIST = re.compile(rf"({_ID})\.sub(\d{{1,3}})\.m3u8")
SUBTITLE_SEGMENT = re.compile(rf"({_ID})_sub(\d{{1,3}})_(\d{{1,9}})\.vtt")
# Anything FFmpeg or the worker leaves in a job's folder (crash recovery knows its own by this).
ANY_FILE = re.compile(rf"{_ID}(\.m3u8|\.media\.m3u8|_\d+\.(ts|m4s)|_init_\d+\.mp4|\.burn\.(ass|vtt)|\.fonts)(\.tmp)?")


def multivariant(job_id):
    return f"{job_id}.m3u8"


def media_playlist(job_id):
    return f"{job_id}.media.m3u8"


def segment(job_id, number, extension):
    return f"{job_id}_{number}.{extension}"


def init_segment(job_id, start_number):
    return f"{job_id}_init_{start_number}.mp4"


def subtitle_playlist(job_id, stream):
    return f"{job_id}.sub{stream}.m3u8"


def burn_file(job_id, extension):
    return f"{job_id}.burn.{extension}"


def fonts_dir(job_id):
    return f"{job_id}.fonts"


def segment_pattern(job_id):
    """Matches the job's segments, finished (group 2 empty) or being written: group 1 the number."""
    return re.compile(rf"{re.escape(job_id)}_(\d+)\.(?:ts|m4s)(\.tmp)?")
