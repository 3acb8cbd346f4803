#!/usr/bin/env python3
"""How long keyframes.from_index takes on a 2-hour film, in Matroska and MP4 (`make bench`).

The film is made cheaply: 30 s of tiny H.264 (B-frames, keyframes every 2 to 5 s, 23.976 fps)
looped to 2 hours with -stream_loop and -c copy, so its index is a real film's size (172 800
frames, 2 400 keyframes). Prints one line per container: best of 3, and the keyframes found.
"""
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from transcode_worker import keyframes  # noqa: E402

CLIP_S, FILM_S, RUNS = 30, 2 * 3600, 3
KEYS = ",".join(str(t) for t in (0, 2, 5, 9, 11, 14, 18, 21, 26, 28))  # 2 to 5 s apart


def ffmpeg(*args):
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y", *args], check=True, timeout=600)


def make_film(folder, suffix):
    clip, film = folder / f"clip{suffix}", folder / f"film{suffix}"
    ffmpeg("-f", "lavfi", "-i", f"testsrc2=size=64x36:rate=24000/1001:duration={CLIP_S}",
           "-c:v", "libx264", "-preset", "ultrafast", "-bf", "3", "-g", "1000", "-sc_threshold", "0",
           "-force_key_frames", KEYS, str(clip))
    ffmpeg("-stream_loop", str(FILM_S // CLIP_S - 1), "-i", str(clip), "-c", "copy", str(film))
    return film


def best_of(runs, path):
    best, found = float("inf"), None
    for _ in range(runs):
        started = time.perf_counter()
        found = keyframes.from_index(path, 0)
        best = min(best, time.perf_counter() - started)
    return best, found


CONTAINERS = (("matroska", ".mkv"), ("mp4", ".mp4"))


def measure(folder, runs=RUNS):
    """[(container, best seconds of `runs`, keyframes.Keyframes or None, the film's bytes)] for a
    2-hour film made in `folder` in each container (scripts/bench.py's whole-film part calls it)."""
    results = []
    Path(folder).mkdir(parents=True, exist_ok=True)
    for name, suffix in CONTAINERS:
        film = make_film(Path(folder), suffix)
        seconds, found = best_of(runs, film)
        results.append((name, seconds, found, film.stat().st_size))
        film.unlink()
    return results


def main():
    with tempfile.TemporaryDirectory(prefix="bench-keyframes-") as tmp:
        for name, seconds, found, size in measure(tmp):
            count = len(found.times) if found else 0
            source = found.source if found else "none (would scan)"
            print(f"{name:9} {seconds:.4f} s  {count} keyframes  from {source}  "
                  f"({size / 1e6:.0f} MB, best of {RUNS})")


if __name__ == "__main__":
    main()
