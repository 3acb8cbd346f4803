"""The names of a job's HLS files, on disk and in URLs: the only names the worker serves.

- ``<job>.m3u8``: the multivariant playlist (the URL players and the orchestrator are given);
  the worker writes it, from what FFmpeg wrote (multivariant.py).
- ``<job>.media.m3u8``: the media playlist, the whole film (the dot keeps it apart from any job id).
- ``<job>_<n>.ts``: MPEG-TS segments (H.264); ``<job>_<n>.m4s``: fMP4 segments (HEVC), whose
  init segment is ``<job>_init_0.mp4`` (the same for every run of the job); n is the segment's
  place in the job's grid (grid.py).
- ``<job>.audio<k>.m3u8`` and ``<job>.audio<k>_<n>.ts`` (or ``.m4s``, with ``<job>.audio<k>_init.mp4``):
  the audio rendition of the source's audio track k (its position among the file's audio tracks),
  stereo AAC; ``<job>.audio<k>-<kind>...`` its other renditions (renditions.py: ``dialogue``,
  ``copy``, ``ac3``, ``surround``), segment n beside video segment n.
- ``<job>.sub<k>.m3u8`` and ``<job>_sub<k>_<n>.vtt``: the WebVTT rendition of the source's
  subtitle track k (its position among the file's subtitles), segment n beside video segment n;
  the worker writes them when asked, nothing is on disk.
A run of FFmpeg writes its segments into its own staging folder ``<job>.run<n>`` or
``<job>.run<n>-<k>`` (n: its first segment; k: the worker's count of runs, so a run being stopped
and the next one never share a folder), never served; segments.py moves each into the job's folder once the run's list says it
is complete, so a file there is always whole. A job that burns
text subtitles also holds ``<job>.burn.<ass|vtt>`` (the track) and ``<job>.fonts`` (a link to
the fonts of its file), never served.
"""
import re

_ID = r"[A-Za-z0-9_-]{1,64}"
MULTIVARIANT = re.compile(rf"({_ID})\.m3u8")
MEDIA_PLAYLIST = re.compile(rf"({_ID})\.media\.m3u8")
SEGMENT = re.compile(rf"({_ID})_(\d{{1,9}})\.(ts|m4s)")
INIT = re.compile(rf"({_ID})_init_(\d{{1,9}})\.mp4")
_AUDIO = r"audio\d{1,5}(?:-(?:dialogue|copy|ac3|surround))?"
AUDIO_PLAYLIST = re.compile(rf"({_ID})\.({_AUDIO})\.m3u8")
AUDIO_SEGMENT = re.compile(rf"({_ID})\.({_AUDIO})_(\d{{1,9}})\.(ts|m4s)")
AUDIO_INIT = re.compile(rf"({_ID})\.({_AUDIO})_init\.mp4")
SUBTITLE_PLAYLIST = re.compile(rf"({_ID})\.sub(\d{{1,3}})\.m3u8")
SUBTITLE_SEGMENT = re.compile(rf"({_ID})_sub(\d{{1,3}})_(\d{{1,9}})\.vtt")
# Anything FFmpeg or the worker leaves in a job's folder (crash recovery knows its own by this).
ANY_FILE = re.compile(rf"{_ID}(\.m3u8|\.{_AUDIO}(\.m3u8|_\d+\.(ts|m4s)|_init\.mp4)|\.media\.m3u8|_\d+\.(ts|m4s)|_init_\d+\.mp4|\.burn\.(ass|vtt)|\.fonts|\.run\d+(-\d+)?)(\.tmp)?")
# A deleted job's folder renamed aside at the top of segment_root, then removed (a start after a
# crash removes what is left of such folders).
REMOVING = ".removing-"
SEGMENT_LIST = "segments.csv"  # a run's list of the segments it has completed (FFmpeg's segment muxer)


def multivariant(job_id):
    return f"{job_id}.m3u8"


def media_playlist(job_id):
    return f"{job_id}.media.m3u8"


def segment(job_id, number, extension):
    return f"{job_id}_{number}.{extension}"


def init_segment(job_id, start_number):
    return f"{job_id}_init_{start_number}.mp4"


def staging(job_id, start_number, run_id=0):
    return f"{job_id}.run{start_number}" + (f"-{run_id}" if run_id else "")


def audio_rendition(stream, kind=""):
    """The name of an audio rendition of track `stream` (renditions.Rendition.name)."""
    return f"audio{stream}" + (f"-{kind}" if kind else "")


def audio_playlist(job_id, rendition):
    return f"{job_id}.{rendition}.m3u8"


def audio_segment(job_id, rendition, number, extension):
    return f"{job_id}.{rendition}_{number}.{extension}"


def audio_init(job_id, rendition):
    return f"{job_id}.{rendition}_init.mp4"


def subtitle_playlist(job_id, stream):
    return f"{job_id}.sub{stream}.m3u8"


def burn_file(job_id, extension):
    return f"{job_id}.burn.{extension}"


def fonts_dir(job_id):
    return f"{job_id}.fonts"


def segment_pattern(job_id):
    """Matches the job's segments, finished (group 2 empty) or being written: group 1 the number."""
    return re.compile(rf"{re.escape(job_id)}_(\d+)\.(?:ts|m4s)(\.tmp)?")
