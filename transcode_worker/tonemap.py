"""HDR to SDR: the filters that show an HDR10, HDR10+, HLG or Dolby Vision (with an HDR10 or
HLG base layer) source right on an SDR screen, and the tags that say the result is BT.709.

The chain (libzimg's zscale and FFmpeg's tonemap, both in Debian's FFmpeg), on the picture at
its output size (tone-mapping a 4K frame costs four times a 1080p one):
  1. zscale: scaled down to the output size (zimg's own resampler, in the same pass: 20 % faster
     end to end than FFmpeg's scale filter before it, measured on a 4K HDR10 film), and from the
     source's transfer (PQ or HLG), matrix and primaries to linear light in BT.709 primaries,
     100 nits to 1.0 (SDR reference white);
  2. tonemap=mobius: linear up to SDR white and a smooth roll-off above it, so highlights keep
     their gradation up to the source's peak (read from its MaxCLL / mastering metadata, or
     FFmpeg's default for the transfer without any) instead of clipping; desat=0 keeps the
     colours: the grey, flat look of HDR shown as SDR is what this is for;
  3. zscale: to the BT.709 transfer and matrix, limited range; then 8-bit 4:2:0.
Measured on the test pictures (tests/test_real_films.py): mean luma and saturation within a
few percent of the SDR picture the HDR one was made from; hable keeps less of both.

For a source whose peak the probe read (HDR10, HDR10+, HLG, Dolby Vision on an HDR10 or HLG
base layer), steps 2 and 3 are one 3D LUT (lut_filters): zscale scales the picture and takes it
to BT.709 primaries PQ-coded (16-bit RGB: out-of-gamut colours clipped there; HLG too, through
the same absolute light its step 1 gives), and lut3d does the tone-map and the BT.709 transfer.
Its points are the exact chain's own answers for a grid of colours (make_lut: the grid run
through FFmpeg with the source's peak), so it agrees with the chain within a level in RGB:
lut3d's tetrahedra fall on the planes where the brightest channel changes, the only kinks left.
About 24 % faster than the chain (tests/test_tonemap.py holds it to the chain, PQ and HLG).
"""

import array
import logging
import os
import subprocess
import tempfile
import time

from . import bounded

log = logging.getLogger(__name__)

# zscale's names for ffprobe's colour properties (they agree but for the unknown/unset cases)
TRANSFERS = {"smpte2084": "smpte2084", "arib-std-b67": "arib-std-b67"}
MATRICES = {"bt2020nc": "2020_ncl", "bt2020c": "2020_cl", "bt709": "709"}
PRIMARIES = {"bt2020": "2020", "bt709": "709"}
SDR_WHITE_NITS = 100
OUTPUT_TAGS = ["-color_primaries", "bt709", "-color_trc", "bt709", "-colorspace", "bt709",
               "-color_range", "tv"]


def needed(video):
    """True when a transcode of this video must be tone-mapped (its transfer is PQ or HLG)."""
    return video.color_transfer in TRANSFERS


def _from_source(video, size):
    """zscale's options that read the source's picture (scaled to `size` on the way)."""
    resize = [f"w={size[0]}", f"h={size[1]}"] if size else []
    return [*resize,
        f"tin={TRANSFERS[video.color_transfer]}",
        f"min={MATRICES.get(video.color_space, '2020_ncl')}",
        f"pin={PRIMARIES.get(video.color_primaries, '2020')}",
        f"rin={'full' if video.color_range == 'pc' else 'limited'}",
    ]


def filters(video, size=None):
    """The filters from the HDR picture to 8-bit-ready BT.709 SDR, as a list; scaled to `size`
    ((width, height), None: as it is) on the way."""
    linear = ":".join([*_from_source(video, size), "t=linear", "p=709", f"npl={SDR_WHITE_NITS}"])
    return [f"zscale={linear}", "format=gbrpf32le", "tonemap=mobius:desat=0",
            "zscale=t=709:m=709:r=limited"]


# -- the LUT ---------------------------------------------------------------------------------------
LUT_SIZE = 33  # points per side: within 0.6 of a level of the chain (65: 0.4, and 15 times the load)
UNSAFE_IN_FILTER = set("\\':,;[]=")  # characters a path would need escaped in a filter graph
# LUTs kept (one per peak, about 1 MB each): past it, the ones used least recently go. A library
# of HDR films has nearly as many peaks as films (each its own MaxCLL); a film played again after
# its LUT went pays the 0.15 s once more.
MAX_LUTS = 32
STALE_TEMPORARY_S = 600  # a .cube being written older than this was cut short by a crash


def lut_chain(peak):
    """The chain from PQ-coded BT.709 RGB (the LUT's input) to BT.709 RGB, with the tonemap's
    peak given (the source's frames carry it; the grid does not)."""
    return (f"zscale=tin=smpte2084:pin=709:min=gbr:rin=full:t=linear:p=709:m=gbr:r=full:npl={SDR_WHITE_NITS},"
            f"format=gbrpf32le,tonemap=mobius:desat=0:peak={peak:g},zscale=t=709:m=gbr:r=full,format=gbrpf32le")


def lut_name(peak):
    return f"pq-mobius-peak{peak:g}-{LUT_SIZE}.cube"


def make_lut(path, peak, ffmpeg="ffmpeg"):
    """Write the .cube of the chain at `peak` to `path` (atomically): every grid colour, red
    changing fastest as .cube wants, through FFmpeg, as 16-bit planar RGB in and float out."""
    n = LUT_SIZE
    width, height = n * n, n
    def plane(value_of):
        return array.array("H", [round(value_of(x, y) * 65535 / (n - 1)) for y in range(height) for x in range(width)])
    red, green, blue = plane(lambda x, y: x % n), plane(lambda x, y: x // n), plane(lambda x, y: y)
    raw = green.tobytes() + blue.tobytes() + red.tobytes()  # gbrp16le's plane order
    argv = [ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "gbrp16le",
            "-s", f"{width}x{height}", "-i", "-", "-vf", lut_chain(peak), "-f", "rawvideo", "-"]
    made = bounded.run(argv, 60, input=raw)
    if made.returncode:
        raise subprocess.CalledProcessError(made.returncode, argv, made.stdout, made.stderr)
    out = made.stdout
    size = width * height
    if len(out) != 3 * 4 * size:
        raise ValueError(f"FFmpeg gave {len(out)} bytes for a {width}x{height} frame")
    g, b, r = (array.array("f", out[i * 4 * size:(i + 1) * 4 * size]) for i in range(3))
    def clamped(channel):
        return [0.0 if v < 0.0 else 1.0 if v > 1.0 else v for v in channel]
    lines = [f"LUT_3D_SIZE {n}", *map("%.6f %.6f %.6f".__mod__, zip(clamped(r), clamped(g), clamped(b)))]
    folder = os.path.dirname(path)
    fd, temporary = tempfile.mkstemp(dir=folder, prefix=".cube-")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write("\n".join(lines) + "\n")
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def lut_for(video, folder, ffmpeg="ffmpeg"):
    """The path of the LUT for this video, made in `folder` the first time (about 0.15 s), or
    None where the chain must run: not HDR, peak unknown, a path the filter graph cannot hold,
    or FFmpeg failing to make it. One LUT serves PQ and HLG alike (lut_filters)."""
    if video.color_transfer not in TRANSFERS or not video.signal_peak:
        return None
    path = os.path.join(folder, lut_name(video.signal_peak))
    if UNSAFE_IN_FILTER & set(path):
        return None
    try:
        os.utime(path)  # used now: the last to go (prune)
        return path
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.warning("tone-map LUT %s not marked used (%s)", path, exc)
        return path
    try:
        os.makedirs(folder, exist_ok=True)
        make_lut(path, video.signal_peak, ffmpeg)
    except (OSError, ValueError, subprocess.SubprocessError) as exc:
        log.warning("tone-map LUT for peak %g not made (%s): the chain runs instead", video.signal_peak, exc)
        return None
    prune(folder, keep=path)
    return path


def prune(folder, keep):
    """Remove the LUTs used least recently past MAX_LUTS (never `keep`, the one just made), and
    temporary files a crash left behind. A LUT removed while a job had it is safe: FFmpeg read
    it when it started, and the job's next run makes it again."""
    now = time.time()
    luts = []
    for entry in os.scandir(folder):
        try:
            used = entry.stat().st_mtime
            if entry.name.endswith(".cube") and not entry.name.startswith("."):
                luts.append((used, entry.path))
            elif entry.name.startswith(".cube-") and now - used > STALE_TEMPORARY_S:
                os.unlink(entry.path)
        except FileNotFoundError:
            continue  # another worker thread's removal or rename came first
    luts.sort(reverse=True)
    for _, path in [lut for lut in luts if lut[1] != keep][MAX_LUTS - 1:]:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def lut_filters(video, lut, size=None):
    """filters() with a LUT (lut_for) in place of the tone-map and the transfer back. The LUT
    reads PQ whatever the source's transfer: zscale takes HLG there through the absolute light
    (HLG's 1,000-nit display) that the chain's linear step gives, so the same LUT answers."""
    to_709 = ":".join([*_from_source(video, size), "t=smpte2084", "p=709", "m=gbr", "r=full"])
    return [f"zscale={to_709}", "format=gbrp16le", f"lut3d=file={lut}:interp=tetrahedral",
            "zscale=tin=709:t=709:min=gbr:m=709:rin=full:r=limited"]
