#!/usr/bin/env python3
"""Benchmark: time from POST /v1/jobs to the first playable playlist (HTTP 200 with a segment)
for a 1080p H.264 source transcoded to 720p, beside the same FFmpeg command run by hand on the
same file in the same run; and the worker's idle resident memory. Prints its figures; asserts
nothing (speed is measured here, never in timed tests)."""
import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the test suite's real-service helper
from worker_process import WorkerProcess  # noqa: E402

from transcode_worker import media  # noqa: E402
from transcode_worker.ffmpeg_command import HlsOutput, build_command  # noqa: E402
from transcode_worker.progress import segment_numbers  # noqa: E402
from transcode_worker.validation import JobSpec  # noqa: E402

BITRATE = 4_000_000  # -> 720p on the bitrate ladder
SEGMENT_S = 4.0


def make_source(folder, seconds):
    path = folder / "bench 1080p.mp4"
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
                    "-f", "lavfi", "-i", f"testsrc2=size=1920x1080:rate=24:duration={seconds}",
                    "-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}",
                    "-c:v", "libx264", "-preset", "ultrafast", "-g", "48", "-c:a", "aac", str(path)],
                   check=True)
    return path


def by_worker(worker, source, run):
    job_id = f"bench{run}"
    started = time.monotonic()
    response = worker.post_job({"job_id": job_id, "source_path": str(source),
                                "configuration": {"bitrate_bps": BITRATE}})
    response.raise_for_status()
    playlist = requests.get(f"{worker.url}/{job_id}.m3u8", timeout=60)  # the worker waits for it
    elapsed = time.monotonic() - started
    assert playlist.status_code == 200 and segment_numbers(playlist.text, job_id), playlist.text
    worker.delete(job_id)
    return elapsed


def by_hand(source, workdir, run):
    """The worker's own command line, run directly; the clock stops when the playlist has a segment."""
    folder = workdir / f"hand{run}"
    folder.mkdir()
    job_id = f"hand{run}"
    info = media.run_ffprobe("ffprobe", str(source))
    spec = JobSpec(job_id=job_id, source=source, folder=folder, seek_time="00:00:00", bitrate_bps=BITRATE,
                   encoder="libx264", force_remux=False, media=info, source_path=str(source), output_path=None)
    argv = build_command(spec, HlsOutput(job_id, SEGMENT_S))
    started = time.monotonic()
    proc = subprocess.Popen(argv, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    playlist = folder / f"{job_id}.m3u8"
    try:
        while True:
            if playlist.exists() and segment_numbers(playlist.read_text(errors="replace"), job_id):
                return time.monotonic() - started
            if proc.poll() is not None:
                raise RuntimeError("FFmpeg by hand ended without a segment")
            time.sleep(0.005)
    finally:
        proc.kill()
        proc.wait()


def idle_memory(worker):
    """Resident bytes of the gunicorn master and of the worker process it runs the app in."""
    master = psutil.Process(worker.proc.pid)
    return master.memory_info().rss, sum(p.memory_info().rss for p in worker.descendants())


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=30, help="length of the generated source")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="tw-bench-") as tmp:
        tmp = Path(tmp)
        media_root = tmp / "media"
        media_root.mkdir()
        print(f"making a {args.seconds}s 1080p H.264 source...", file=sys.stderr)
        source = make_source(media_root, args.seconds)
        worker = WorkerProcess(tmp / "worker", media_root, segment_duration_s=SEGMENT_S).start()
        try:
            time.sleep(2)
            master_rss, worker_rss = idle_memory(worker)
            worker_s, hand_s = [], []
            by_worker(worker, source, "warm")  # first probe of the file: measured on its own
            for run in range(args.runs):
                # alternate who goes first, so neither always finds a warmer page cache
                if run % 2:
                    hand_s.append(by_hand(source, tmp, run))
                    worker_s.append(by_worker(worker, source, run))
                else:
                    worker_s.append(by_worker(worker, source, run))
                    hand_s.append(by_hand(source, tmp, run))
            started = time.monotonic()
            media.run_ffprobe("ffprobe", str(source))
            probe_s = time.monotonic() - started
        finally:
            worker.stop()

    hand, work = statistics.median(hand_s), statistics.median(worker_s)
    cpu = psutil.cpu_count()
    print()
    print(f"transcode-worker bench: {args.runs} runs, {cpu} CPUs, {args.seconds}s 1080p H.264 -> 720p "
          f"at {BITRATE // 1000} kb/s, {SEGMENT_S:g}s segments")
    print(f"{'time to first playable playlist':36} {'median':>8} {'min':>8} {'max':>8}")
    print(f"{'  FFmpeg by hand':36} {hand:8.3f} {min(hand_s):8.3f} {max(hand_s):8.3f}  s")
    print(f"{'  worker (POST -> playlist 200)':36} {work:8.3f} {min(worker_s):8.3f} {max(worker_s):8.3f}  s")
    print(f"{'  ratio worker / by hand':36} {work / hand:8.2f}   (target: at most 1.30)")
    print(f"{'  ffprobe of a new file (cached after)':36} {probe_s:8.3f}  s")
    print(f"idle resident memory: worker process {worker_rss / 2**20:.1f} MB, "
          f"with the gunicorn master {(worker_rss + master_rss) / 2**20:.1f} MB   (target: under 80 MB)")


if __name__ == "__main__":
    main()
