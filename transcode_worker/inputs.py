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
import errno
import os
import re
import stat

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


class SourceUnavailable(ValueError):
    """The source cannot be opened for now (no descriptor left, a share that does not answer or
    went stale): a later try may work, unlike a file that is gone or swapped."""


# errors of the moment: the process's or system's descriptors, a network share's hiccup
TRANSIENT = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.EAGAIN, errno.EINTR, errno.EIO,
                       errno.ESTALE, errno.ETIMEDOUT, errno.EHOSTDOWN, errno.EHOSTUNREACH, errno.ENOTCONN})


def _cannot_open(exc):
    kind = SourceUnavailable if exc.errno in TRANSIENT else ValueError
    return kind(f"cannot be opened: {exc.strerror}")


def open_source(path, media_roots):
    """The source, opened for a run of FFmpeg: a file descriptor of the regular file that `path`
    (validated and resolved when the command came) names now, checked again to lie inside a
    media root. A file swapped for a symlink since (or a folder on its path) opens nothing
    outside the roots: O_NOFOLLOW refuses a symlink in the last place, the file the handle holds
    is where the check looks, and only a regular file inside a root is opened for reading.
    ValueError says why not (SourceUnavailable when it may work later)."""
    try:  # a handle on the path only (O_PATH opens nothing: no device, no FIFO is touched)
        handle = os.open(path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise _cannot_open(exc) from None
    try:
        real = os.readlink(f"/proc/self/fd/{handle}")
        if not stat.S_ISREG(os.fstat(handle).st_mode):
            raise ValueError("is no longer a regular file")
        if not any(os.path.commonpath([real, os.path.realpath(root)]) == os.path.realpath(root)
                   and real != os.path.realpath(root) for root in media_roots):
            raise ValueError("is no longer inside the media roots")
        try:  # the very file the handle names, now opened for reading
            fd = os.open(f"/proc/self/fd/{handle}", os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise _cannot_open(exc) from None
    finally:
        os.close(handle)
    return fd


def fd_url(fd):
    """FFmpeg's input for a descriptor it inherits under the same number: it opens the very file
    the worker checked (the magic link of /proc), whatever the path names by then."""
    return url(f"/proc/self/fd/{fd}")


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
