"""How FFmpeg and ffprobe open a source: as one file, read by a media container's demuxer, never
by a demuxer that follows what the file says.

A path inside a media root is not enough: a text file named ``film.mkv`` that holds an HLS
playlist (``#EXTM3U`` ... ``../../etc/secret.ts``) or an ffconcat list is read by FFmpeg's hls
or concat demuxer, which then opens the files it names, wherever they are. So every call that
opens a source gives FFmpeg two whitelists, which it hands on to anything it opens inside:
- protocols: ``file`` only (no ``http:``, ``concat:``, ``pipe:``, ``crypto:``... even when named
  inside the file);
- formats: the demuxers of media containers and raw video streams, none of which opens another
  file (the mov demuxer could follow an external data reference, but only with enable_drefs,
  which is off). Playlists (hls, dash), lists (concat, ffmetadata), picture sequences (image2),
  network descriptions (sdp, rtsp, rtp) and text (tty) are not on it.
"""
import re

# FFmpeg's demuxer names: a name on the list matches a demuxer whose own name lists it
# ("matroska" is the "matroska,webm" demuxer, "mov" the "mov,mp4,m4a,3gp,3g2,mj2" one).
CONTAINERS = ("matroska", "mov", "mpegts", "mpeg", "avi", "flv", "asf", "ogg", "mxf", "nut", "rm", "wtv",
              "dv", "ivf", "nsv", "h264", "hevc", "mpegvideo", "m4v", "vc1", "obu")
GUARD = ("-protocol_whitelist", "file", "-format_whitelist", ",".join(CONTAINERS))

# What a refused demuxer reads, for the error a user sees
_REFUSED = {
    "hls": "an HLS playlist",
    "dash": "a DASH manifest",
    "concat": "an ffconcat list",
    "ffmetadata": "an FFmpeg metadata file",
    "image2": "a picture or a numbered sequence of pictures",
    "sdp": "a network session description",
    "tty": "a text file",
}
_NOT_ON_LIST = re.compile(r"\[([\w,]+) @ 0x[0-9a-f]+\] Format not on whitelist")


def url(path):
    """The source as FFmpeg's input: "file:" makes it read a path, never a protocol such as
    concat: or http:, whatever the path looks like."""
    return f"file:{path}"


def refusal(stderr):
    """Why FFmpeg refused to open a source (its stderr), when the whitelist refused it; else None."""
    match = _NOT_ON_LIST.search(stderr)
    if match is None:
        return None
    return _why(match.group(1))


def check_format(format_name):
    """Raise ValueError when FFmpeg's format of a probed file is not a media container (a probe
    made before the whitelist, kept in a cache, or a build whose demuxer names differ)."""
    names = set(format_name.split(","))
    if not names & set(CONTAINERS) or names & set(_REFUSED):
        raise ValueError(_why(format_name))


def _why(format_name):
    what = _REFUSED.get(format_name.split(",")[0], "not a media container")
    return (f"the file is {what} (FFmpeg's format {format_name!r}): only media containers are played, "
            "never a file that names other files")
