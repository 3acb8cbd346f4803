#!/usr/bin/env python3
"""A stand-in FFmpeg for the hardware trials: it lists every hardware encoder, like Debian's build,
and encodes only with the encoders named in $FAKE_FFMPEG_WORKS (comma-separated; "cuda",
"opencl" and "tonemap_vaapi" there make CUDA decoding and OpenCL or VAAPI tone-mapping work). Every call is
appended to $FAKE_FFMPEG_LOG."""
import os
import sys

args = sys.argv[1:]
with open(os.environ["FAKE_FFMPEG_LOG"], "a", encoding="utf-8") as log:
    log.write(" ".join(args) + "\n")
works = set(filter(None, os.environ.get("FAKE_FFMPEG_WORKS", "").split(",")))
if args == ["-encoders"]:
    print("ffmpeg version 9.9-fake Copyright (c) the fakes", file=sys.stderr)
    print("Encoders:\n ------")
    for name in ("libx264", "libx265", "h264_nvenc", "hevc_nvenc", "h264_vaapi", "hevc_vaapi", "h264_qsv"):
        print(f" V....D {name:20} fake {name}")
    print(" A....D aac                  AAC")
elif "-hwaccels" in args:
    print("Hardware acceleration methods:\ncuda\nvaapi\nqsv\nopencl\n")
elif "libx265" in args:  # the HEVC sample for the decoding trial
    open(args[-1], "wb").close()
elif "-c:v" in args and args[args.index("-c:v") + 1] in works:
    pass
elif "-hwaccel" in args and "cuda" in works:
    pass
elif "opencl=ocl" in args and "opencl" in works and "tonemap_opencl" in args[args.index("-vf") + 1]:
    pass
elif "-vf" in args and "tonemap_vaapi" in args[args.index("-vf") + 1] and "tonemap_vaapi" in works:
    pass
else:
    print("[AVHWDeviceContext @ 0x55d0c0ffee00] Cannot load libcuda.so.1", file=sys.stderr)
    print("Device creation failed: -1.", file=sys.stderr)
    sys.exit(1)
