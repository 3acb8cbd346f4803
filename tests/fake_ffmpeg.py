"""A stand-in for FFmpeg in supervisor tests. Modes (argv[1]):
  stubborn  - prints progress, ignores SIGTERM, runs until killed
  fail      - writes error lines to stderr and exits 1
  nothing   - exits 0 without writing a playlist
  playlist  - writes a playlist with two segments, a progress block, exits 0
"""
import signal
import sys
import time

mode = sys.argv[1]
if mode == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    print("ready", flush=True)
    while True:
        print("out_time_us=1000000\nspeed=1.0x\nprogress=continue", flush=True)
        time.sleep(0.2)
elif mode == "fail":
    for i in range(60):
        print(f"noise line {i}", file=sys.stderr)
    print("file:/x.mkv: Invalid data found when processing input", file=sys.stderr)
    sys.exit(1)
elif mode == "nothing":
    sys.exit(0)
elif mode == "playlist":
    with open("j1.media.m3u8", "w") as fh:  # the media playlist, as FFmpeg names it
        fh.write("#EXTM3U\n#EXTINF:2.0,\nj1_0.ts\n#EXTINF:2.0,\nj1_1.ts\n#EXT-X-ENDLIST\n")
    print("out_time_us=4000000\nspeed=2.5x\nprogress=end", flush=True)
