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
"""

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


def filters(video, size=None):
    """The filters from the HDR picture to 8-bit-ready BT.709 SDR, as a list; scaled to `size`
    ((width, height), None: as it is) on the way."""
    resize = [f"w={size[0]}", f"h={size[1]}"] if size else []
    linear = ":".join([*resize,
        f"tin={TRANSFERS[video.color_transfer]}",
        f"min={MATRICES.get(video.color_space, '2020_ncl')}",
        f"pin={PRIMARIES.get(video.color_primaries, '2020')}",
        f"rin={'full' if video.color_range == 'pc' else 'limited'}", "t=linear", "p=709", f"npl={SDR_WHITE_NITS}",
    ])
    return [f"zscale={linear}", "format=gbrpf32le", "tonemap=mobius:desat=0",
            "zscale=t=709:m=709:r=limited"]
