"""The FFmpeg command line for a job (pure: no I/O, tested without processes).

FFmpeg runs with the job's folder as its working directory and writes relative names, so no
character of segment_root ever reaches the HLS muxer's name templates.
"""
from dataclasses import dataclass

from .hardware import QSV_DEVICE_ARGS, QSV_UPLOAD, VAAPI_UPLOAD

# Audio every HLS player decodes; anything else is re-encoded, even in a remux.
PLAYER_SAFE_AUDIO = frozenset({"aac", "mp3"})
AUDIO_BITRATE = "160k"
# Output height for a video bitrate, the way media servers pick a rung of their ladder.
BITRATE_LADDER = ((6_000_000, 1080), (2_500_000, 720), (1_000_000, 480), (0, 360))
# Options a given encoder needs beyond the common ones.
ENCODER_OPTIONS = {
    "libx264": lambda preset: ["-preset", preset, "-profile:v", "high"],
    "libx265": lambda preset: ["-preset", preset, "-x265-params", "log-level=error"],
    # forced keyframes must be IDR frames for a segment to start decodable
    "h264_nvenc": lambda preset: ["-forced-idr", "1"],
    "hevc_nvenc": lambda preset: ["-forced-idr", "1"],
    "h264_qsv": lambda preset: ["-forced_idr", "1"],
    "hevc_qsv": lambda preset: ["-forced_idr", "1"],
}


def hardware_input_args(encoder, vaapi_device):
    """Arguments before the input that open the GPU device a VAAPI/QSV encoder needs."""
    if encoder.endswith("_vaapi"):
        return ["-vaapi_device", vaapi_device or "/dev/dri/renderD128"]
    if encoder.endswith("_qsv"):
        return list(QSV_DEVICE_ARGS)
    return []


def pixel_format_filter(encoder):
    """The last filter: 8-bit 4:2:0 (what every player decodes), uploaded for VAAPI/QSV."""
    if encoder.endswith("_vaapi"):
        return VAAPI_UPLOAD
    if encoder.endswith("_qsv"):
        return QSV_UPLOAD
    return "format=yuv420p"


@dataclass(frozen=True)
class HlsOutput:
    job_id: str
    segment_s: float
    start_number: int = 0

    @property
    def playlist(self):
        return f"{self.job_id}.m3u8"

    @property
    def segment_template(self):
        return f"{self.job_id}_%d.ts"


def target_height(bitrate_bps, source_height):
    """The ladder's height for this bitrate, never above the source's (no upscaling)."""
    height = next(h for floor, h in BITRATE_LADDER if bitrate_bps >= floor)
    return min(height, source_height) if source_height else height


def video_args(spec, segment_s, preset):
    if spec.force_remux:
        # Stream copy: segments can only be cut on the source's own keyframes.
        return ["-c:v", "copy"]
    height = target_height(spec.bitrate_bps, spec.media.height)
    rate = str(spec.bitrate_bps)
    filters = [f"scale=-2:{height}"] if spec.media.height and height < spec.media.height else []
    filters.append(pixel_format_filter(spec.encoder))  # also turns 10-bit HEVC into 8 bits
    return [
        "-c:v", spec.encoder, *ENCODER_OPTIONS.get(spec.encoder, lambda p: [])(preset),
        "-b:v", rate, "-maxrate", rate, "-bufsize", str(2 * spec.bitrate_bps),
        "-vf", ",".join(filters),
        # A keyframe on every segment boundary, so each segment starts decodable.
        "-force_key_frames", f"expr:gte(t,n_forced*{segment_s:g})",
    ]


def audio_args(stream, remux):
    if remux and stream.codec in PLAYER_SAFE_AUDIO:
        return ["-c:a", "copy"]
    return ["-c:a", "aac", "-b:a", AUDIO_BITRATE, "-ac", "2"]


def build_command(spec, output, *, ffmpeg="ffmpeg", preset="veryfast", vaapi_device=None):
    """argv that turns `spec` into an HLS event playlist plus segments in the working directory."""
    argv = [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error",
            # machine-readable progress on stdout every half second; no human stats line
            "-nostats", "-progress", "pipe:1", "-stats_period", "0.5"]
    if not spec.force_remux:
        argv += hardware_input_args(spec.encoder, vaapi_device)
    if spec.seek_s > 0:
        argv += ["-ss", f"{spec.seek_s:.3f}"]  # input-side: fast, and output starts at 0
    # "file:" makes FFmpeg read a path, never a protocol such as concat: or http:
    argv += ["-i", f"file:{spec.source}", "-map", f"0:{spec.media.video_index}"]
    audio = spec.media.main_audio
    if audio is not None:
        argv += ["-map", f"0:{audio.index}"]
    argv += ["-sn", "-dn", "-map_metadata", "-1", "-map_chapters", "-1"]
    argv += video_args(spec, output.segment_s, preset)
    if audio is not None:
        argv += audio_args(audio, spec.force_remux)
    argv += [
        "-f", "hls", "-hls_time", f"{output.segment_s:g}", "-hls_list_size", "0",
        "-hls_playlist_type", "event", "-hls_segment_type", "mpegts",
        # temp_file: segments and playlist appear by rename, so nobody reads half a file
        "-hls_flags", "independent_segments+temp_file",
        "-start_number", str(output.start_number),
        "-hls_segment_filename", output.segment_template, output.playlist,
    ]
    return argv
