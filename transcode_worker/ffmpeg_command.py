"""The FFmpeg command line for a job (pure: no I/O, tested without processes).

FFmpeg runs with the job's folder as its working directory and writes relative names, so no
character of segment_root ever reaches the HLS muxer's name templates.
"""
import math
from dataclasses import dataclass

from . import grid as grid_
from . import hls_names, inputs, tonemap
from .hardware import (OPENCL_DEVICE_ARGS, OPENCL_TONEMAP, QSV_DEVICE_ARGS, QSV_UPLOAD, VAAPI_TONEMAP,
                       VAAPI_UPLOAD)

# Video HLS players decode in MPEG-TS: the only codecs a remux may copy (validation.py).
PLAYER_SAFE_VIDEO = frozenset({"h264", "hevc"})
# Interlaced sources (broadcast recordings, DVDs) are deinterlaced before scaling, a frame for a
# frame (25i gives 25p): shown as progressive, each field pair combs on every movement. Frames
# the decoder marks progressive (a film in a broadcast) pass untouched.
DEINTERLACE = "bwdif=mode=send_frame:parity=auto:deint=interlaced"
AUDIO_BITRATE = "160k"
# 5.1, 7.1 (any layout over two channels) folded to stereo the ITU-R BS.775 way, centre and
# surrounds at -3 dB, LFE left out, and not normalised: FFmpeg's default divides every
# coefficient by their sum, which puts dialogue (the centre) 10.7 dB below the fronts' level.
# Unnormalised sums can pass full scale; the limiter holds peaks at -1 dBFS (0.891).
DOWNMIX = ("aresample=ochl=stereo:rematrix_maxval=1000:lfe_mix_level=0,"
           "alimiter=limit=0.891:level=disabled:attack=5:release=50")
NEVER_CUT_S = 10 ** 9  # a segment time no film reaches
# The dialogue rendition (renditions.py): the same fold to stereo with the centre (where films put
# dialogue) at +6 dB and the surrounds at -6 dB, then everything halved: the centre at the level
# the fronts have in the stereo rendition, the fronts and surrounds 6 dB below it. Dialogue stands
# 9 dB further out of the music and effects than in DOWNMIX (-3 dB centre against 0 dB fronts).
DIALOGUE = ("aresample=ochl=stereo:rematrix_maxval=1000:lfe_mix_level=0:center_mix_level=2:surround_mix_level=0.5,"
            "volume=0.5,alimiter=limit=0.891:level=disabled:attack=5:release=50")
# Encoders whose output is HEVC: delivered in fMP4 segments (Apple's HLS authoring rules).
HEVC_ENCODERS = frozenset({"libx265", "hevc_nvenc", "hevc_qsv", "hevc_vaapi"})
# Output height for a video bitrate, the way media servers pick a rung of their ladder.
BITRATE_LADDER = ((6_000_000, 1080), (2_500_000, 720), (1_000_000, 480), (0, 360))
# Options a given encoder needs beyond the common ones. Keyframes come only where a segment
# starts: no scene-cut keyframes (the HLS muxer would cut a segment there).
ENCODER_OPTIONS = {
    "libx264": lambda preset: ["-preset", preset, "-profile:v", "high", "-sc_threshold", "0"],
    "libx265": lambda preset: ["-preset", preset, "-x265-params", "log-level=error:scenecut=0"],
    # forced keyframes must be IDR frames for a segment to start decodable
    "h264_nvenc": lambda preset: ["-forced-idr", "1", "-no-scenecut", "1"],
    "hevc_nvenc": lambda preset: ["-forced-idr", "1", "-no-scenecut", "1"],
    "h264_qsv": lambda preset: ["-forced_idr", "1"],
    "hevc_qsv": lambda preset: ["-forced_idr", "1"],
}


# x264's light analysis (Jellyfin 10.8's x264 settings on veryfast: the cheapest motion search and
# partitions, a short lookahead): a heavy source's first step at veryfast (light_analysis), else
# the speed guard's step after the one asked (speed_guard.steps)
LIGHT_PRESET = "veryfast"
LIGHT_X264 = ["-x264-params", "subme=0:me=dia:merange=4:rc-lookahead=10:chroma-me=0:8x8dct=0:partitions=none"]
# A heavy source, or any at a step lighter than asked, that is scaled to half its height or less
# is decoded without the decoder's loop filters (deblocking, HEVC's SAO): 5-25 % off decoding 4K
# HEVC; what they would smooth is averaged away by the downscale (PSNR 57-60 dB on average, 51
# at worst, against the filtered decode at 1080p, measured on the bench's 4K HDR10 film and on
# the same film made at 5 Mb/s).
LIGHT_DECODE = ["-skip_loop_filter", "all"]


def light_decode(spec, hardware_tonemap=()):
    """True when this run may decode without the loop filters (see LIGHT_DECODE)."""
    video = spec.media.video if spec.media is not None else None
    size = output_size(spec) if video is not None else None
    height = spec.step.height if spec.step is not None else size[1] if size else None
    if not (video is not None and video.height and height and height * 2 <= video.height):
        return False
    return heavy_source(spec, hardware_tonemap) or (spec.step is not None and spec.step.number > 0)


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


# The fastest frame rate whose keyframe interval -g still spans a whole segment.
MAX_FPS = 120
# A run lists at most this many cuts to FFmpeg (an argument has a size limit): one that gets there
# ends, and the next run goes on from there (JobManager._go_on).
RUN_SEGMENTS = 1000
# A run a player waits for (a jump ahead, a seek) first makes the segment asked for alone, at x264's
# fastest preset, and the next run goes on from the segment after it at the job's own: a 4 s segment
# of 1080p -> 720p in 0.79 s against 1.47 s at veryfast (by hand, on two cores). CABAC and 8x8
# transforms keep it High profile, the CODECS the multivariant playlist announces (MPEG-TS carries
# its parameter sets in every segment, so no other run needs to agree on them); B-frames in a
# pyramid keep every other preset's decode delay (two frames), so decode times rise across the
# join with the next run (without them they went back 42 ms there, and FFmpeg's player, told to
# start just before the join, showed a frame 2 s early).
SPRINT_PRESET = "ultrafast"
SPRINT_X264 = ["-x264-params", "cabac=1:8x8dct=1:bframes=3:b-pyramid=normal"]
# fMP4 segments, one fragment each, whose decode times are the job's clock (frag_discont with no
# edit list), so every run's init segment is the same and any run's segment follows any other's.
FMP4_OPTIONS = "movflags=+frag_keyframe+empty_moov+default_base_moof+frag_discont+skip_trailer:" \
               "use_editlist=0:avoid_negative_ts=disabled"
# An audio rendition's: the header once the first packets are parsed (FFmpeg writes AC-3 and
# E-AC-3's sample entry from them; it comes before the first fragment all the same)
FMP4_AUDIO_OPTIONS = FMP4_OPTIONS.replace("skip_trailer", "skip_trailer+delay_moov")


@dataclass(frozen=True)
class HlsOutput:
    """What one run of FFmpeg writes: the segments of `grid` from `start_number` on, into its own
    staging folder (segments.py moves each one into the job's folder once it is complete)."""
    job_id: str
    grid: grid_.Grid
    start_number: int = 0
    fmp4: bool = False  # fMP4 segments with an init segment (HEVC), else MPEG-TS
    sprint: bool = False  # its first segment only, at SPRINT_PRESET (sprints() says when)
    run_id: int = 0  # the worker's count of runs: its staging folder is its own
    rendition: str = ""  # an audio rendition's name (renditions.Rendition.name); "" for the video

    @property
    def segment_s(self):
        """The longest a segment is (the target duration)."""
        return self.grid.target_s

    @property
    def end_number(self):
        """The last segment this run writes (RUN_SEGMENTS at most; a sprint's first only)."""
        if self.sprint:
            return self.start_number
        return min(len(self.grid) - 1, self.start_number + RUN_SEGMENTS - 1)

    @property
    def seek_s(self):
        """Where FFmpeg starts reading (-ss, film seconds): where the run's first segment is cut for
        a transcode (grid.cut: its accurate seek keeps the frames from there), half a frame after
        its keyframe for a remux (the seek goes back to the keyframe); 0 for the film's start. An
        audio rendition's run starts at the segment's very start (the decoder trims to the sample)."""
        if self.start_number == 0:
            return 0.0
        if self.rendition:
            return self.grid.start(self.start_number)
        if self.grid.remux:
            return self.grid.start(self.start_number) + self.grid.frame_s / 2
        return self.grid.cut(self.start_number)

    @property
    def playlist(self):
        """The multivariant playlist, the URL players are given."""
        return hls_names.multivariant(self.job_id)

    @property
    def media_playlist(self):
        if self.rendition:
            return hls_names.audio_playlist(self.job_id, self.rendition)
        return hls_names.media_playlist(self.job_id)

    @property
    def segment_extension(self):
        return "m4s" if self.fmp4 else "ts"

    def segment(self, number):
        if self.rendition:
            return hls_names.audio_segment(self.job_id, self.rendition, number, self.segment_extension)
        return hls_names.segment(self.job_id, number, self.segment_extension)

    @property
    def init_segment(self):
        """The fMP4 init segment of the job's video or rendition (the same for every run); None
        in MPEG-TS."""
        if not self.fmp4:
            return None
        return hls_names.audio_init(self.job_id, self.rendition) if self.rendition else hls_names.init_segment(
            self.job_id, 0)

    @property
    def staging(self):
        return hls_names.staging(self.job_id, self.start_number, self.run_id)

    def staged(self, number):
        """A segment's name as this run's FFmpeg writes it, in its staging folder."""
        return hls_names.segment(self.job_id, number, "mp4" if self.fmp4 else "ts")

    @property
    def segment_list(self):
        return f"{self.staging}/{hls_names.SEGMENT_LIST}"


def delivers_hevc(spec):
    """True when the job's output video is HEVC (a remux of HEVC, or an HEVC encoder)."""
    if spec.force_remux:
        return spec.media.video.codec == "hevc"
    return spec.encoder in HEVC_ENCODERS


def video_bitrate(spec):
    """The video bitrate of the job's run: its speed guard step's, else the command's."""
    return spec.step.bitrate_bps if spec.step is not None else spec.bitrate_bps


def target_height(bitrate_bps, source_height):
    """The ladder's height for this bitrate, never above the source's (no upscaling)."""
    height = next(h for floor, h in BITRATE_LADDER if bitrate_bps >= floor)
    return min(height, source_height) if source_height else height


def forced_keyframes(output):
    """-force_key_frames of a run: every boundary of the grid after its first segment, in the
    source's own timestamps (-copyts), so every run forces the same frames (its first frame is
    a keyframe anyway)."""
    grid = output.grid
    return ",".join(f"{grid.cut(n) + grid.origin_s:.6f}" for n in range(output.start_number + 1,
                                                                        output.end_number + 1)) or "0"


def output_size(spec):
    """(width, height) of the job's output video, None where the source does not say: the
    source's in a remux, else scaled as ``scale=-2:<height>`` does (the source's shape, even width)."""
    video = spec.media.video
    if spec.force_remux or not (video.width and video.height):
        return (video.width, video.height) if video.width and video.height else None
    height = target_height(video_bitrate(spec), video.height)
    if height >= video.height:
        return video.width, video.height
    return math.floor(height * video.width / (video.height * 2) + 0.5) * 2, height


HEAVY_HEIGHT = 1080  # a source taller than this is heavy to decode (4K: four times 1080p)


def heavy_source(spec, hardware_tonemap=()):
    """True when a transcode of the source is heavy for the CPU: a picture taller than 1080p to
    decode, or HDR to tone-map on the CPU (a remux is never heavy)."""
    video = spec.media.video
    return not spec.force_remux and (
        (video.height or 0) > HEAVY_HEIGHT or tone_mapper(spec, hardware_tonemap) == "cpu")


def first_segment_s(spec, configured):
    """The length of the grid's first segment: first_segment_s as configured, halved for a source
    heavy to transcode anywhere (taller than 1080p, or HDR to tone-map), whose first second takes
    FFmpeg about a second to make: 4K HDR10 to 720p made its first playlist in 0.96 s with 0.5 s
    against 1.34 s with 1 s, measured by hand here. A remux has no ramp (its cuts are keyframes).
    A function of the source and the command only: every worker cuts the same grid."""
    video = spec.media.video
    if spec.force_remux:
        return 0.0
    return configured / 2 if (video.height or 0) > HEAVY_HEIGHT or spec.tone_mapped else configured


def light_from_start(spec, preset, hardware_tonemap=()):
    """True when x264 analyses lightly (LIGHT_X264) from the job's first step: a heavy source at
    veryfast, where x264's full analysis alone costs as much CPU as decoding 4K HEVC (4K HDR10
    to 1080p: 1.21x real time with it, 1.45x without, on two cores). An operator who configured
    a slower preset asked for the picture over the speed: the speed guard's light step is next."""
    return spec.encoder == "libx264" and preset == LIGHT_PRESET and heavy_source(spec, hardware_tonemap)


def light_analysis(spec, preset, hardware_tonemap=()):
    """True when this run's x264 analyses lightly: at the speed guard's step, else from the start."""
    if spec.step is not None:
        return spec.step.light
    return light_from_start(spec, preset, hardware_tonemap)


def tone_mapper(spec, hardware_tonemap=()):
    """Where the job's HDR is tone-mapped: "vaapi" (a VAAPI job, its device's tone-mapper proven),
    "opencl" (proven, and the encoder needs no filter device of its own, as VAAPI and QSV do),
    "cpu", or None (nothing to tone-map)."""
    if not spec.tone_mapped:
        return None
    if spec.encoder.endswith("_vaapi"):  # its tone-mapper leaves the frame on the GPU: nothing to burn there
        return "vaapi" if "vaapi" in hardware_tonemap and not spec.burn else "cpu"
    if "opencl" in hardware_tonemap and not spec.encoder.endswith("_qsv"):
        return "opencl"
    return "cpu"


def picture_args(spec, hardware_tonemap=(), burn_file=None, fonts_dir=None, tonemap_lut=None, origin_s=0.0):
    """(-map arguments, filter arguments) of the video: deinterlaced, scaled, tone-mapped,
    subtitles drawn in, made 8-bit 4:2:0 (or uploaded to the GPU) in that order.

    Text subtitles are drawn by libass from `burn_file`, the extracted track in the job's folder
    (libass reading the source itself would read the whole film first), with the fonts the file
    carries (`fonts_dir`); the frames keep the source's timestamps (-copyts), so they are moved to
    film time around it (`origin_s`: the source's first timestamp). Picture subtitles (PGS, DVD,
    DVB) come from the source itself, scaled to the picture and laid over it (FFmpeg's seek takes
    them along)."""
    video = spec.media.video
    if spec.force_remux:
        return ["-map", f"0:{video.index}"], []
    height = target_height(video_bitrate(spec), video.height)
    filters = [DEINTERLACE] if video.interlaced else []
    mapper = tone_mapper(spec, hardware_tonemap)
    scaled = bool(video.height and height < video.height)
    if scaled and mapper != "cpu":
        filters.append(f"scale=-2:{height}")  # before tone-mapping: fewer pixels to map
    if mapper == "cpu" and tonemap_lut:  # zscale scales it, then the LUT tone-maps it
        filters += tonemap.lut_filters(video, tonemap_lut, output_size(spec) if scaled else None)
    elif mapper == "cpu":  # zscale scales it, in the pass that linearises it
        filters += tonemap.filters(video, output_size(spec) if scaled else None)
    elif mapper == "opencl":
        filters.append(OPENCL_TONEMAP)
    # the last filter turns 10-bit HEVC into 8 bits; VAAPI's tone-mapper leaves the frame on the GPU
    last = VAAPI_TONEMAP if mapper == "vaapi" else pixel_format_filter(spec.encoder)
    subtitle = spec.subtitle if spec.burn else None
    if subtitle is not None and subtitle.text:
        fonts = f":fontsdir={fonts_dir}" if fonts_dir else ""
        # an .ass file is libass's own: read by the ass filter, never by a demuxer (its header is
        # the source file's words, which could be an HLS playlist naming files outside the roots)
        draw = f"ass={burn_file}{fonts}" if burn_file.endswith(".ass") else f"subtitles={burn_file}{fonts}"
        filters += ["format=yuv420p", *([f"setpts=PTS-{origin_s:.6f}/TB", draw, f"setpts=PTS+{origin_s:.6f}/TB"]
                                        if origin_s else [draw])]
    elif subtitle is not None:
        graph = (f"[0:{video.index}]{','.join(filters) or 'null'}[v];[0:{subtitle.index}][v]scale2ref[s][main];"
                 f"[main][s]overlay=eof_action=pass,{last}[picture]")
        return ["-map", "[picture]"], ["-filter_complex", graph]
    return ["-map", f"0:{video.index}"], ["-vf", ",".join([*filters, last])]


def sprints(spec, grid, start_number):
    """True when a run a player waits for at segment `start_number` makes that segment alone at
    SPRINT_PRESET: an x264 transcode, past the film's start (whose ramp of short segments is quick
    already), short of its last segment."""
    return spec.encoder == "libx264" and not spec.force_remux and 0 < start_number < len(grid) - 1


def video_args(spec, output, preset, hardware_tonemap=()):
    if spec.force_remux:
        # Stream copy: segments can only be cut on the source's own keyframes. Apple's players
        # take HEVC in fMP4 only under the hvc1 sample entry.
        return ["-c:v", "copy", *(["-tag:v", "hvc1"] if output.fmp4 else [])]
    rate = str(video_bitrate(spec))
    light = light_analysis(spec, preset, hardware_tonemap)
    if spec.step is not None and spec.step.preset:
        preset = spec.step.preset
    if output.sprint:
        preset, light = SPRINT_PRESET, False
    return [
        "-c:v", spec.encoder, *ENCODER_OPTIONS.get(spec.encoder, lambda p: [])(preset),
        "-b:v", rate, "-maxrate", rate, "-bufsize", str(2 * video_bitrate(spec)),
        # A keyframe on every segment boundary, so each segment starts decodable, and no others.
        "-force_key_frames", forced_keyframes(output),
        # the source's own timestamps, not rounded to the frame rate: a source whose frames sit
        # between its ticks (Matroska's milliseconds) keeps them the same in every run
        "-enc_time_base:v", "1:90000", "-fps_mode:v", "passthrough",
        "-g", str(math.ceil(output.segment_s * MAX_FPS)),
        *(tonemap.OUTPUT_TAGS if spec.tone_mapped else []),
        *(["-tag:v", "hvc1"] if output.fmp4 else []),
        *(LIGHT_X264 if light else []),
        *(SPRINT_X264 if output.sprint else []),
    ]




def build_command(spec, output, *, ffmpeg="ffmpeg", preset="veryfast", vaapi_device=None, hardware_tonemap=(),
                  burn_file=None, fonts_dir=None, tonemap_lut=None):
    """argv of a run that writes the segments of output.grid from output.start_number on (into
    its staging folder, under the job's folder, FFmpeg's working directory).

    `hardware_tonemap`: the GPU tone-mappers trials proved ("opencl", "vaapi"); `burn_file`,
    `fonts_dir`: names in the job's folder of the text subtitles to draw and their fonts;
    `tonemap_lut`: the .cube (tonemap.lut_for) that tone-maps on the CPU in place of the chain."""
    argv = [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error",
            # machine-readable progress on stdout every half second; no human stats line
            "-nostats", "-progress", "pipe:1", "-stats_period", "0.5"]
    if not spec.force_remux:
        argv += hardware_input_args(spec.encoder, vaapi_device)
        if tone_mapper(spec, hardware_tonemap) == "opencl":
            argv += OPENCL_DEVICE_ARGS
        if light_decode(spec, hardware_tonemap):
            argv += LIGHT_DECODE
    # the source's own timestamps throughout (segment_args moves them onto the job's clock)
    argv += ["-copyts"]
    if output.seek_s > 0:
        argv += ["-ss", f"{output.seek_s:.6f}"]  # input-side: fast; a transcode's is accurate
    if output.end_number < len(output.grid) - 1:  # a run ends where its last segment does
        argv += ["-to", f"{output.grid.cut(output.end_number + 1):.6f}"]
    video_map, filter_args = picture_args(spec, hardware_tonemap, burn_file, fonts_dir, tonemap_lut,
                                          output.grid.origin_s)
    argv += [*inputs.GUARD, "-i", inputs.url(spec.source), *filter_args, *video_map]
    # no audio: every audio track is a rendition of its own (renditions.py, build_audio_command)
    argv += ["-an", "-sn", "-dn", "-map_metadata", "-1", "-map_chapters", "-1"]
    argv += video_args(spec, output, preset, hardware_tonemap)
    argv += segment_args(output)
    return argv


AUDIO_RATE = 48000  # every encoded rendition's sample rate
LAYOUTS = {2: "stereo", 6: "5.1", 8: "7.1"}


def rendition_graph(rendition, output):
    """The filter graph of an encoded rendition (renditions.Rendition.kind), out as [out]: the
    track's sound put on the run's span of the grid whatever the track holds. Silence where it
    starts late or has a gap (aresample's async, from the run's first sample on the source's
    clock), and mixed onto a silence as long as the run's span, which it starts with and ends
    with: a track that ends before the film (or before the run starts) is silence to the end.
    Without them the segment muxer cut at every packet until the track caught up with the grid
    (segments of one packet, at the wrong time), and a run past a track's end wrote no sound."""
    grid = output.grid
    first = round((grid.origin_s + output.seek_s) * AUDIO_RATE)
    span = grid.end(output.end_number) - grid.start(output.start_number)
    channels = rendition.track.channels
    layout = LAYOUTS[rendition.channels]
    if rendition.kind == "dialogue":
        fold = DIALOGUE
    elif rendition.kind == "stereo" and (channels is None or channels > 2):
        fold = DOWNMIX
    else:  # as it is, in the rendition's layout (mono made stereo, E-AC-3 7.1 made AC-3 5.1)
        fold = f"aresample=ochl={layout}"
    return (f"anullsrc=r={AUDIO_RATE}:cl={layout},atrim=duration={span:.6f},asetpts=PTS+{first}[silence];"
            f"[0:{rendition.track.index}]aresample={AUDIO_RATE}:async=1:first_pts={first},{fold}[track];"
            "[silence][track]amix=inputs=2:duration=first:dropout_transition=0:normalize=0[out]")


def rendition_audio_args(rendition, output):
    """The track (-map) and encoder of an audio rendition: a copy as the file has it, else the
    rendition's graph (rendition_graph) encoded."""
    if rendition.kind == "copy":
        return ["-map", f"0:{rendition.track.index}", "-c:a", "copy"]
    codec = "ac3" if rendition.kind == "ac3" else "aac"
    rate = AUDIO_BITRATE if rendition.kind in ("stereo", "dialogue") else str(rendition.bit_rate)
    return ["-filter_complex", rendition_graph(rendition, output), "-map", "[out]",
            "-c:a", codec, "-b:a", rate, "-ac", str(rendition.channels)]


def build_audio_command(spec, output, rendition, *, ffmpeg="ffmpeg"):
    """argv of a run that writes an audio rendition's segments of output.grid from
    output.start_number on: the same grid and clock as the video (segment_args), each segment
    starting at its boundary's sample (an accurate seek), so audio segment k covers video segment
    k's span within one audio frame."""
    argv = [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error",
            "-nostats", "-progress", "pipe:1", "-stats_period", "0.5", "-copyts"]
    if output.seek_s > 0:
        argv += ["-ss", f"{output.seek_s:.6f}"]
    if output.end_number < len(output.grid) - 1:
        argv += ["-to", f"{output.grid.start(output.end_number + 1):.6f}"]
    argv += [*inputs.GUARD, "-i", inputs.url(spec.source), *rendition_audio_args(rendition, output),
             "-vn", "-sn", "-dn", "-map_metadata", "-1", "-map_chapters", "-1"]
    return argv + segment_args(output)


def segment_args(output):
    """FFmpeg's segment muxer, cutting exactly on the grid's boundaries (the first keyframe at or
    after each: a transcode forces one there, a remux's grid is the source's keyframes), every
    timestamp the film's time plus grid.CLOCK_S, each segment listed in the run's segment list
    once it is complete."""
    grid = output.grid
    # (audio cuts at the boundary itself: it has no frames to fall either side of it)
    cut = grid.start if output.rendition else grid.cut
    cuts = [cut(n) + grid_.CLOCK_S for n in range(output.start_number + 1, output.end_number + 1)]
    args = []
    if output.fmp4:
        args += ["-segment_format", "mp4", "-segment_format_options",
                 FMP4_AUDIO_OPTIONS if output.rendition else FMP4_OPTIONS]
    else:
        args += ["-segment_format", "mpegts"]
    if cuts:
        args += ["-segment_times", ",".join(f"{t:.6f}" for t in cuts)]
    else:  # a run of one segment: never cut (the muxer's default cuts every 2 s, and every audio
        # packet may start a segment: a rendition's one segment would end after its first packet)
        args += ["-segment_time", str(NEVER_CUT_S)]
    return [
        *args, "-output_ts_offset", f"{grid_.CLOCK_S - grid.origin_s:.6f}",
        "-f", "segment", "-reset_timestamps", "0", "-segment_start_number", str(output.start_number),
        "-segment_list", output.segment_list, "-segment_list_type", "csv",
        f"{output.staging}/{output.staged('%d')}",
    ]
