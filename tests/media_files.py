"""Small media the tests make with FFmpeg: every kind of source a movie library holds."""
import subprocess
from pathlib import Path

TEXT = "notes.txt"
CORRUPT = "corrupt.mp4"
LONG = "long ramp.mkv"  # 600 s; luma grows with time: 16 + 0.36 * t (a seek can be read off a frame)
LONG_SECONDS = 600


def luma_at(t):
    return 16 + 0.36 * t


def _ffmpeg(*args):
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y", *args],
                   check=True, timeout=300)


def _video(seconds, size="320x240", rate=25):
    return ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate={rate}:duration={seconds}"]


# PAL 576i: 50 moving pictures a second woven into 25 interlaced frames, top field first
INTERLACE = ["-vf", "interlace", "-flags", "+ildct+ilme", "-top", "1"]


def _tone(seconds, layout="stereo", freq=440):
    return ["-f", "lavfi", "-i", f"sine=frequency={freq}:sample_rate=48000:duration={seconds},"
                                 f"aformat=channel_layouts={layout}"]


H264 = "h264 aac with spaces.mp4"
DVB = "dvb recording 576i.ts"
SOURCES = {
    # name: ffmpeg arguments after the inputs' declaration (the output name is appended)
    H264: [*_video(6), *_tone(6), "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-c:a", "aac"],
    "hevc 10bit ac3 5.1 ñandú.mkv": [
        *_video(5), *_tone(5, "5.1"), "-c:v", "libx265", "-preset", "ultrafast", "-pix_fmt", "yuv420p10le",
        "-x265-params", "log-level=error", "-c:a", "ac3"],
    "dts multi-audio subs.mkv": [
        *_video(5), *_tone(5, "5.1", 300), *_tone(5, "stereo", 600), "-i", "{subs}",
        "-map", "0:v", "-map", "1:a", "-map", "2:a", "-map", "3:s",
        "-c:v", "libx264", "-preset", "ultrafast", "-c:a:0", "dca", "-strict", "-2", "-c:a:1", "aac",
        "-c:s", "srt", "-disposition:a:1", "default"],
    "silent 無音.mp4": [*_video(5), "-c:v", "libx264", "-preset", "ultrafast"],
    # a TV recording: interlaced H.264 and AC3 in MPEG-TS
    DVB: [*_video(5, "720x576", rate=50), *_tone(5), *INTERLACE, "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-c:a", "ac3"],
}
# a DVD's video: interlaced MPEG-2, which a remux cannot give to HLS players (a transcode can)
DVD = "dvd mpeg2 576i.mpg"


def make_library(folder):
    """Write every test source into `folder`; returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    subs = folder.parent / "subs.srt"
    subs.write_text("1\n00:00:00,500 --> 00:00:03,000\nHello\n")
    for name, args in SOURCES.items():
        _ffmpeg(*[a.replace("{subs}", str(subs)) for a in args], str(folder / name))
    _ffmpeg("-f", "lavfi", "-i",
            f"color=c=black:size=32x18:rate=25:duration={LONG_SECONDS},"
            "geq=lum='16+0.36*T':cb=128:cr=128,scale=320:180",
            *_tone(LONG_SECONDS), "-c:v", "libx264", "-preset", "ultrafast", "-g", "50", "-c:a", "aac",
            str(folder / LONG))
    _ffmpeg(*_video(5, "720x576", rate=50), *_tone(5), *INTERLACE, "-c:v", "mpeg2video", "-b:v", "4M", "-c:a", "ac3", str(folder / DVD))
    _corrupt_copy(folder / H264, folder / CORRUPT)
    (folder / TEXT).write_text("not a movie\n")
    return folder


def _corrupt_copy(good, bad):
    """Same header as a good file (ffprobe accepts it), garbage where the frames are."""
    tmp = bad.with_suffix(".faststart.mp4")
    _ffmpeg("-i", str(good), "-c", "copy", "-movflags", "+faststart", str(tmp))
    data = bytearray(tmp.read_bytes())
    start = data.find(b"mdat") + 8
    for i in range(start, len(data)):
        data[i] = (i * 7919) % 251
    bad.write_bytes(bytes(data))
    tmp.unlink()
