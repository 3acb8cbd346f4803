"""A stand-in for FFmpeg in supervisor tests. Modes (argv[1]):
  stubborn  - prints progress, ignores SIGTERM, runs until killed
  fail      - writes error lines to stderr and exits 1
  nothing   - exits 0 without writing a playlist
  playlist  - writes two segments and lists them, as FFmpeg's segment muxer does (in argv[2], the
              run's staging folder; else j1.run0), a progress block, exits 0
  at        - says it is argv[2] seconds into its output at argv[3] times real time, until killed
  ahead     - after argv[5] seconds, writes segment argv[4] of job argv[3] into staging folder
              argv[2] and lists it, then runs until killed (a run gone on ahead of its player)
"""
import os
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
    staging = sys.argv[2] if len(sys.argv) > 2 else "j1.run0"
    os.makedirs(staging, exist_ok=True)  # the run's staging folder, its segments and their list
    for number in (0, 1):
        with open(f"{staging}/j1_{number}.ts", "wb") as fh:
            fh.write(b"G" * 188)
        with open(f"{staging}/segments.csv", "a") as fh:
            fh.write(f"j1_{number}.ts,{2.0 * number:.6f},{2.0 * number + 2:.6f}\n")
    print("out_time_us=4000000\nspeed=2.5x\nprogress=end", flush=True)
elif mode == "ahead":
    staging, job_id, number, delay = sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
    time.sleep(delay)
    os.makedirs(staging, exist_ok=True)
    with open(f"{staging}/{job_id}_{number}.ts", "wb") as fh:
        fh.write(b"G" * 188)
    with open(f"{staging}/segments.csv", "a") as fh:
        fh.write(f"{job_id}_{number}.ts,0.000000,2.000000\n")
    while True:
        print("progress=continue", flush=True)
        time.sleep(0.2)
elif mode == "at":
    while True:
        print(f"out_time_us={int(float(sys.argv[2]) * 1e6)}\nspeed={sys.argv[3]}x\nprogress=continue", flush=True)
        time.sleep(0.2)
