"""Builders of JobSpec and MediaInfo for unit tests (no files, no FFmpeg)."""
from pathlib import Path

from transcode_worker.media import AudioStream, MediaInfo, VideoStream
from transcode_worker.tracks import choose_audio
from transcode_worker.validation import JobSpec


def media_info(height=1080, audio=(("aac", True),), duration=600.0, video_codec="h264", interlaced=False,
               **video):
    """`audio`: (codec, default) pairs, or AudioStream objects; `video`: more VideoStream fields."""
    return MediaInfo(
        duration_s=duration, format_name="matroska,webm",
        video=VideoStream(index=0, codec=video_codec, pix_fmt="yuv420p", width=height * 16 // 9,
                          height=height, frame_rate=25.0, interlaced=interlaced, **video),
        audio=tuple(a if isinstance(a, AudioStream) else
                    AudioStream(stream=i, index=i + 1, codec=a[0], channels=2, default=a[1])
                    for i, a in enumerate(audio)),
        bit_rate=5_000_000,
    )


def job_spec(**overrides):
    values = dict(
        job_id="j1", source=Path("/media/My Movie é.mkv"), folder=Path("/seg/j1"), seek_time="00:00:00",
        bitrate_bps=4_000_000, encoder="libx264", force_remux=False, media=media_info(),
        source_path="/media/My Movie é.mkv", output_path=None,
    )
    values.update(overrides)
    if "audio" not in overrides:
        values["audio"], values["audio_chosen_by"] = choose_audio(values["media"])
    return JobSpec(**values)


def hls_output(job_id="j1", segment_s=4.0, start_number=0, first_segment_s=0.0, fmp4=False, duration=600.0,
               fps=25.0):
    """What a run writes: a transcode's grid of `duration` at `fps`, from segment `start_number`."""
    from transcode_worker import grid
    from transcode_worker.ffmpeg_command import HlsOutput
    return HlsOutput(job_id, grid.for_transcode(duration, fps, segment_s, first_segment_s), start_number, fmp4=fmp4)
