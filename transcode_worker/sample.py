"""A sample clip for a first run, so a newcomer has something to play before any media exists."""
import os
import subprocess
from pathlib import Path

from .library import VIDEO_EXTENSIONS

SAMPLE_NAME = "sample.mp4"


def find_video(root):
    """The first file under `root` whose name looks like a video, or None."""
    for folder, _dirs, files in os.walk(root):
        for name in sorted(files):
            if os.path.splitext(name)[1].lower() in VIDEO_EXTENSIONS:
                return Path(folder) / name
    return None


def make_sample(path, ffmpeg="ffmpeg", seconds=60):
    """Write a 720p H.264/AAC test pattern with a running clock and a tone to `path`."""
    tmp = Path(path).with_suffix(".part.mp4")
    subprocess.run(
        [ffmpeg, "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
         "-f", "lavfi", "-i", f"testsrc2=size=1280x720:rate=24:duration={seconds}",
         "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}",
         "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-g", "48",
         "-c:a", "aac", "-b:a", "128k", "-movflags", "+faststart", str(tmp)],
        check=True, timeout=600,
    )
    tmp.rename(path)
    return Path(path)


def ensure_sample(media_root, ffmpeg="ffmpeg"):
    """A video to suggest in the first-run hint: one already in media_root, else a new sample."""
    os.makedirs(media_root, exist_ok=True)
    return find_video(media_root) or make_sample(Path(media_root) / SAMPLE_NAME, ffmpeg)
