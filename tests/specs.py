"""Builders of JobSpec and MediaInfo for unit tests (no files, no FFmpeg)."""
from pathlib import Path

from transcode_worker.media import AudioStream, MediaInfo
from transcode_worker.validation import JobSpec


def media_info(height=1080, audio=(("aac", True),), duration=600.0, video_codec="h264", interlaced=False):
    return MediaInfo(
        duration_s=duration, format_name="matroska,webm", video_index=0, video_codec=video_codec,
        pix_fmt="yuv420p", width=height * 16 // 9, height=height,
        audio=tuple(AudioStream(index=i + 1, codec=c, channels=2, default=d, language=None)
                    for i, (c, d) in enumerate(audio)),
        interlaced=interlaced,
    )


def job_spec(**overrides):
    values = dict(
        job_id="j1", source=Path("/media/My Movie é.mkv"), folder=Path("/seg/j1"), seek_time="00:00:00",
        bitrate_bps=4_000_000, encoder="libx264", force_remux=False, media=media_info(),
        source_path="/media/My Movie é.mkv", output_path=None,
    )
    values.update(overrides)
    return JobSpec(**values)
