import subprocess
from dataclasses import replace

import pytest

from specs import hls_output, job_spec, media_info
from transcode_worker import grid, renditions
from transcode_worker.ffmpeg_command import (LIGHT_X264, RUN_SEGMENTS, SPRINT_PRESET, HlsOutput, build_audio_command,
                                             build_command, delivers_hevc, first_segment_s, light_from_start, output_size, sprints,
                                             target_height)
from transcode_worker.media import AudioStream
from transcode_worker.speed_guard import Step

OUT = hls_output("j1", 4.0)


def argv_of(**overrides):
    return build_command(job_spec(**overrides), OUT, ffmpeg="/usr/bin/ffmpeg")


def value_after(argv, flag):
    return argv[argv.index(flag) + 1]


def test_source_is_a_file_path_never_a_protocol():
    argv = argv_of()
    assert argv[0] == "/usr/bin/ffmpeg"
    assert value_after(argv, "-i") == "file:/media/My Movie é.mkv"


def test_progress_goes_to_stdout_without_stats_line():
    argv = argv_of()
    assert value_after(argv, "-progress") == "pipe:1" and "-nostats" in argv and "-nostdin" in argv


def test_bitrate_with_maxrate_and_bufsize():
    argv = argv_of(bitrate_bps=3_000_000)
    assert value_after(argv, "-b:v") == "3000000"
    assert value_after(argv, "-maxrate") == "3000000"
    assert value_after(argv, "-bufsize") == "6000000"


def test_encoder_and_preset():
    argv = build_command(job_spec(encoder="libx265"), OUT, preset="faster")
    assert value_after(argv, "-c:v") == "libx265" and value_after(argv, "-preset") == "faster"


def test_keyframes_forced_on_the_grid_in_the_sources_timestamps():
    argv = build_command(job_spec(), hls_output("j1", 2.0))
    forced = value_after(argv, "-force_key_frames").split(",")
    assert forced[:3] == ["1.981000", "3.981000", "5.981000"]  # half a frame (25 fps) before, a ms on
    assert value_after(argv, "-sc_threshold") == "0"  # no scene-cut keyframes between them
    assert "-copyts" in argv and value_after(argv, "-enc_time_base:v") == "1:90000"
    assert value_after(argv, "-fps_mode:v") == "passthrough"  # the source's own timestamps


def test_the_segment_muxer_cuts_on_the_grid_on_the_jobs_clock():
    argv = build_command(job_spec(), hls_output("j1", 2.0))
    times = value_after(argv, "-segment_times").split(",")
    assert times[:2] == [f"{1.981 + grid.CLOCK_S:.6f}", f"{3.981 + grid.CLOCK_S:.6f}"]
    assert value_after(argv, "-output_ts_offset") == f"{grid.CLOCK_S:.6f}"
    assert value_after(argv, "-f") == "segment" and value_after(argv, "-reset_timestamps") == "0"


def test_a_run_from_segment_k_seeks_there_and_numbers_from_k():
    output = hls_output("j1", 4.0, start_number=12, first_segment_s=1.0)
    argv = build_command(job_spec(), output)
    assert value_after(argv, "-ss") == f"{output.grid.cut(12):.6f}" and argv.index("-ss") < argv.index("-i")
    assert value_after(argv, "-force_key_frames").split(",")[0] == f"{output.grid.cut(13):.6f}"
    assert value_after(argv, "-segment_start_number") == "12"
    assert value_after(argv, "-segment_list") == "j1.run12/segments.csv"
    assert argv[-1] == "j1.run12/j1_%d.ts"
    assert "-ss" not in argv_of()  # from the film's start


def test_a_remux_seeks_just_after_its_keyframe_and_forces_none():
    g = grid.for_remux([0.0, 3.0, 7.5, 11.0], 20.0, 4.0, 25.0)
    output = HlsOutput("j1", g, 2)
    argv = build_command(job_spec(force_remux=True), output)
    assert value_after(argv, "-ss") == "7.520000" and "-force_key_frames" not in argv
    assert value_after(argv, "-segment_times") == f"{11.0 - 0.02 + 0.001 + grid.CLOCK_S:.6f}"


def test_a_source_that_starts_late_is_moved_onto_the_clock():
    output = HlsOutput("j1", grid.for_transcode(60.0, 25.0, 4.0, origin_s=3600.0))
    argv = build_command(job_spec(), output)
    assert value_after(argv, "-output_ts_offset") == f"{grid.CLOCK_S - 3600.0:.6f}"
    assert value_after(argv, "-force_key_frames").split(",")[0] == f"{3600.0 + 3.981:.6f}"


def test_a_long_film_is_made_in_runs_of_at_most_run_segments(monkeypatch):
    output = hls_output("j1", 1.0, duration=3 * 3600.0)
    argv = build_command(job_spec(), output)
    assert len(value_after(argv, "-segment_times").split(",")) == RUN_SEGMENTS - 1
    assert value_after(argv, "-to") == f"{output.grid.cut(RUN_SEGMENTS):.6f}"
    assert "-to" not in argv_of()


def test_a_sprint_makes_its_first_segment_alone_at_the_fastest_preset_and_high_profile():
    spec, output = job_spec(), hls_output("j1", 4.0, start_number=12, first_segment_s=1.0)
    sprint = replace(output, sprint=True)
    argv = build_command(spec, sprint)
    assert sprint.end_number == 12 and value_after(argv, "-to") == f"{output.grid.cut(13):.6f}"
    assert value_after(argv, "-preset") == SPRINT_PRESET and "-segment_times" not in argv
    params = value_after(argv, "-x264-params")
    assert "cabac=1" in params and "8x8dct=1" in params and "bframes=3" in params  # High, two frames' delay
    assert value_after(argv, "-b:v") == value_after(build_command(spec, output), "-b:v")
    # who sprints: a player waits on an x264 transcode, between the film's start and its end
    assert sprints(spec, output.grid, 12)
    assert not sprints(spec, output.grid, 0) and not sprints(spec, output.grid, len(output.grid) - 1)
    assert not sprints(job_spec(force_remux=True), output.grid, 12)
    assert not sprints(job_spec(encoder="h264_nvenc"), output.grid, 12)


@pytest.mark.parametrize("encoder", ["libx264", "libx265"], ids=["mpegts", "fmp4"])
def test_ffmpeg_cuts_the_grid_from_any_segment(tmp_path, encoder):
    """The command as FFmpeg runs it, from segment 3 of a grid with a ramp (1, 1, 2, 4, 4, 3 s):
    each segment it lists is as long as the grid says, in MPEG-TS and in fMP4 (HEVC)."""
    source = tmp_path / "clip.mkv"
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-f", "lavfi", "-i",
                    "testsrc2=size=160x90:rate=25:duration=15", "-c:v", "libx264", "-preset", "ultrafast",
                    "-g", "7", str(source)], check=True, timeout=60)
    spec = job_spec(source=source, folder=tmp_path, media=media_info(height=90, audio=(), duration=15.0),
                    encoder=encoder)
    output = hls_output("j1", 4.0, start_number=3, first_segment_s=1.0, fmp4=delivers_hevc(spec), duration=15.0)
    assert output.grid.durations() == [1, 1, 2, 4, 4, 3]
    (tmp_path / output.staging).mkdir()
    subprocess.run(build_command(spec, output, preset="ultrafast"), cwd=tmp_path, check=True, timeout=60,
                   capture_output=True)
    listed = [line.split(",")[0] for line in (tmp_path / output.segment_list).read_text().splitlines()]
    assert listed == [output.staged(n) for n in (3, 4, 5)]
    for n in (3, 4, 5):
        probe = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v", "-show_entries", "packet=pts_time",
                                "-of", "csv=p=0", str(tmp_path / output.staging / output.staged(n))],
                               capture_output=True, check=True, timeout=30).stdout.decode()
        times = sorted(float(t.strip(",")) for t in probe.split())
        assert abs(times[-1] - times[0] + 0.04 - output.grid.duration(n)) < 0.021, (n, times[0], times[-1])


def test_scaled_by_the_bitrate_ladder_and_8bit():
    assert value_after(argv_of(bitrate_bps=4_000_000), "-vf") == "scale=-2:720,format=yuv420p"
    assert value_after(argv_of(bitrate_bps=8_000_000), "-vf") == "format=yuv420p"  # 1080p source kept
    assert value_after(argv_of(bitrate_bps=8_000_000, media=media_info(height=480)), "-vf") == "format=yuv420p"


def test_an_interlaced_source_is_deinterlaced_before_scaling():
    interlaced = media_info(height=1080, interlaced=True)
    assert value_after(argv_of(media=interlaced), "-vf") == \
        "bwdif=mode=send_frame:parity=auto:deint=interlaced,scale=-2:720,format=yuv420p"
    assert "-vf" not in argv_of(media=interlaced, force_remux=True)  # a copy is left as it is


@pytest.mark.parametrize("bitrate,source,height", [
    (10_000_000, 2160, 1080), (6_000_000, 1080, 1080), (5_999_999, 1080, 720), (2_500_000, 1080, 720),
    (1_500_000, 1080, 480), (500_000, 1080, 360), (10_000_000, 576, 576), (64_000, None, 360),
])
def test_target_height(bitrate, source, height):
    assert target_height(bitrate, source) == height


def test_remux_copies_video():
    argv = argv_of(force_remux=True)
    assert value_after(argv, "-c:v") == "copy" and "-force_key_frames" not in argv and "-vf" not in argv


@pytest.mark.parametrize("audio", [(("ac3", False), ("aac", True)), (("mp3", True),), ()])
@pytest.mark.parametrize("remux", [False, True])
def test_the_video_run_carries_no_audio_nor_subtitles(audio, remux):
    """Every audio track is a rendition made by runs of its own (test_renditions.py)."""
    argv = argv_of(media=media_info(audio=audio), force_remux=remux)
    assert [argv[i + 1] for i, a in enumerate(argv) if a == "-map"] == ["0:0"]
    assert "-an" in argv and "-sn" in argv and "-c:a" not in argv


def rendition_argv(codec, channels, kind, fmp4=False):
    track = AudioStream(stream=0, index=1, codec=codec, channels=channels,
                        layout={2: "stereo", 6: "5.1(side)", 8: "7.1"}[channels], default=True)
    media = media_info(audio=(track,))
    rendition = next(r for g in renditions.groups(media, track) for r in g.renditions if r.kind == kind)
    output = replace(hls_output("j1", 4.0, fmp4=fmp4), rendition=rendition.name)
    return build_audio_command(job_spec(media=media), output, rendition)


@pytest.mark.parametrize("codec", ["aac", "mp3", "ac3", "dts", "truehd", "flac", "opus"])
def test_the_stereo_rendition_is_always_stereo_aac(codec):
    argv = rendition_argv(codec, 2, "stereo")
    assert value_after(argv, "-c:a") == "aac" and value_after(argv, "-ac") == "2"
    assert "aresample=ochl=stereo[track]" in value_after(argv, "-filter_complex")  # stereo as it is


def test_surround_is_folded_to_stereo_keeping_the_centre_and_limited():
    downmix = value_after(rendition_argv("dts", 6, "stereo"), "-filter_complex")
    assert "ochl=stereo" in downmix and "rematrix_maxval=1000" in downmix and "alimiter" in downmix
    dialogue = value_after(rendition_argv("dts", 6, "dialogue"), "-filter_complex")
    assert "center_mix_level=2" in dialogue and "alimiter" in dialogue


@pytest.mark.parametrize("codec, channels, kind, expected, layout", [
    ("ac3", 6, "copy", ["copy"], None), ("eac3", 8, "copy", ["copy"], None),
    ("eac3", 8, "ac3", ["ac3", "-b:a", "448000", "-ac", "6"], "aresample=ochl=5.1"),
    ("dts", 6, "surround", ["aac", "-b:a", "384000", "-ac", "6"], "aresample=ochl=5.1"),
    ("truehd", 8, "surround", ["aac", "-b:a", "512000", "-ac", "8"], "aresample=ochl=7.1"),
])
def test_surround_renditions(codec, channels, kind, expected, layout):
    argv = rendition_argv(codec, channels, kind)
    assert argv[argv.index("-c:a") + 1:argv.index("-c:a") + 1 + len(expected)] == expected
    if layout:  # the track in the rendition's layout, on a silence of the same
        graph = value_after(argv, "-filter_complex")
        assert f",{layout}[track]" in graph and f"cl={layout.rpartition('=')[2]}," in graph


def test_an_fmp4_rendition_writes_its_header_once_its_first_packets_are_read():
    """AC-3 and E-AC-3's sample entry is written from their packets (FFmpeg refuses an empty moov)."""
    argv = rendition_argv("ac3", 6, "copy", fmp4=True)
    assert "delay_moov" in value_after(argv, "-segment_format_options")
    assert "delay_moov" not in value_after(build_command(job_spec(), hls_output("j1", 4.0, fmp4=True)),
                                           "-segment_format_options")


HDR10 = dict(video_codec="hevc", color_transfer="smpte2084", color_primaries="bt2020", color_space="bt2020nc",
             hdr="HDR10")


def test_hdr_is_scaled_first_then_tone_mapped_to_bt709_and_tagged_so():
    argv = argv_of(media=media_info(height=2160, **HDR10), bitrate_bps=8_000_000)
    filters = value_after(argv, "-vf").split(",")
    # scaled first (fewer pixels to tone-map), by zscale in the pass that linearises the picture
    assert filters[0].startswith("zscale=w=1920:h=1080:tin=smpte2084:min=2020_ncl:pin=2020:")
    assert "t=linear" in filters[0] and not any(f.startswith("scale=") for f in filters)
    assert "tonemap=mobius:desat=0" in filters and filters[-1] == "format=yuv420p"
    assert [value_after(argv, f) for f in ("-color_primaries", "-color_trc", "-colorspace")] == ["bt709"] * 3


SDR = dict(video_codec="h264")


@pytest.mark.parametrize("step, source, light_x264, light_decode", [
    (Step(0, "veryfast", 1080, 8_000_000), dict(height=2160, **HDR10), False, True),  # heavy, halved
    (Step(1, "veryfast", 1080, 8_000_000, light=True), dict(height=2160, **HDR10), True, True),
    (Step(2, "ultrafast", 1080, 8_000_000), dict(height=2160, **HDR10), False, True),
    (Step(1, "veryfast", 720, 3_000_000, light=True), dict(height=1080, **HDR10), True, False),  # not halved
    (Step(3, "ultrafast", 480, 1_000_000), dict(height=1080, **HDR10), False, True),
    (Step(0, "veryfast", 480, 1_000_000), dict(height=1080, **SDR), False, False),  # as asked: all decoded
    (Step(2, "ultrafast", 480, 1_000_000), dict(height=1080, **SDR), False, True),
])
def test_a_lighter_step_analyses_and_decodes_less(step, source, light_x264, light_decode):
    argv = argv_of(media=media_info(**source), bitrate_bps=step.bitrate_bps, step=step)
    assert value_after(argv, "-preset") == step.preset
    assert ("-x264-params" in argv) == light_x264
    if light_x264:
        assert "partitions=none" in value_after(argv, "-x264-params") and "me=dia" in value_after(argv, "-x264-params")
    # a decoder option: before the input
    assert ("-skip_loop_filter" in argv[:argv.index("-i")]) == light_decode and argv.count("-skip_loop_filter") <= 1


@pytest.mark.parametrize("media, encoder, preset, hardware, light, skip", [
    (dict(height=2160, **HDR10), "libx264", "veryfast", (), True, True),  # 4K HDR tone-mapped on the CPU
    (dict(height=2160), "libx264", "veryfast", (), True, True),  # 4K to decode
    (dict(height=720, **HDR10), "libx264", "veryfast", (), True, False),  # tone-mapped on the CPU, not halved
    (dict(height=1080), "libx264", "veryfast", (), False, False),  # a light source: veryfast's full analysis
    (dict(height=720, **HDR10), "libx264", "veryfast", ("opencl",), False, False),  # tone-mapped on the GPU
    (dict(height=2160, **HDR10), "libx264", "medium", (), False, True),  # the operator asked for the picture
    (dict(height=2160, **HDR10), "libx264", "superfast", (), False, True),  # lighter already
    (dict(height=2160, **HDR10), "libx265", "veryfast", (), False, True),  # x264's settings
])
def test_a_heavy_source_is_analysed_and_decoded_lightly_from_the_start(media, encoder, preset, hardware, light, skip):
    spec = job_spec(media=media_info(**media), encoder=encoder, bitrate_bps=8_000_000)
    assert light_from_start(spec, preset, hardware) == light
    argv = build_command(spec, OUT, preset=preset, hardware_tonemap=hardware)
    assert (LIGHT_X264[1] in argv) == light
    assert ("-skip_loop_filter" in argv[:argv.index("-i")]) == skip  # halved: the downscale hides it


@pytest.mark.parametrize("media, remux, hardware, expected", [
    (dict(height=1080), False, (), 1.0),  # a light source: as configured
    (dict(height=2160), False, (), 0.5),  # 4K to decode
    (dict(height=720, **HDR10), False, (), 0.5),  # tone-mapped
    (dict(height=720, **HDR10), False, ("opencl",), 0.5),  # on any machine: the grid is the source's
    (dict(height=2160, **HDR10), True, (), 0.0),  # a remux cuts on the source's keyframes
])
def test_a_heavy_source_starts_with_a_shorter_first_segment(media, remux, hardware, expected):
    spec = job_spec(media=media_info(**media), force_remux=remux)
    assert first_segment_s(spec, 1.0) == expected


@pytest.mark.parametrize("transfer, hdr", [("smpte2084", "HDR10"), ("arib-std-b67", "HLG")])
def test_a_tone_map_lut_takes_the_place_of_the_tonemap_filter(transfer, hdr):
    source = media_info(height=2160, **{**HDR10, "color_transfer": transfer, "hdr": hdr})
    argv = build_command(job_spec(media=source, bitrate_bps=8_000_000), OUT,
                         tonemap_lut="/spool/tonemap/pq-mobius-peak10-33.cube")
    filters = value_after(argv, "-vf").split(",")
    # scaled and taken to BT.709 primaries, PQ-coded (HLG too), by zscale; tone-mapped by the LUT
    assert filters[0].startswith(f"zscale=w=1920:h=1080:tin={transfer}:") and "t=smpte2084:p=709" in filters[0]
    assert "lut3d=file=/spool/tonemap/pq-mobius-peak10-33.cube:interp=tetrahedral" in filters
    assert not any(f.startswith("tonemap=") for f in filters) and filters[-1] == "format=yuv420p"
    assert [value_after(argv, f) for f in ("-color_primaries", "-color_trc", "-colorspace")] == ["bt709"] * 3


def test_hlg_is_tone_mapped_from_hlg():
    argv = argv_of(media=media_info(**{**HDR10, "color_transfer": "arib-std-b67", "hdr": "HLG"}))
    assert ":tin=arib-std-b67:" in value_after(argv, "-vf")


def test_sdr_and_a_remux_of_hdr_are_not_tone_mapped():
    assert "tonemap" not in value_after(argv_of(), "-vf") and "-color_trc" not in argv_of()
    remux = argv_of(media=media_info(**HDR10), force_remux=True)
    assert "-vf" not in remux and "-color_trc" not in remux


def test_hevc_goes_out_in_fmp4_under_hvc1():
    remux = job_spec(media=media_info(**HDR10), force_remux=True)
    output = hls_output("j1", 4.0, start_number=7, fmp4=delivers_hevc(remux))
    argv = build_command(remux, output)
    assert value_after(argv, "-segment_format") == "mp4" and value_after(argv, "-tag:v") == "hvc1"
    assert "frag_discont" in value_after(argv, "-segment_format_options")  # decode times on the job's clock
    assert argv[-1] == "j1.run7/j1_%d.mp4" and output.init_segment == "j1_init_0.mp4"
    assert output.segment(7) == "j1_7.m4s"
    assert delivers_hevc(job_spec(encoder="libx265")) and not delivers_hevc(job_spec())
    assert not delivers_hevc(job_spec(force_remux=True))  # H.264 stays in MPEG-TS


def test_output_size_follows_the_scale_rule():
    assert output_size(job_spec(bitrate_bps=4_000_000)) == (1280, 720)
    scope = media_info(height=800)
    scope = replace(scope, video=replace(scope.video, width=1920))  # 2.40:1
    assert output_size(job_spec(media=scope, bitrate_bps=4_000_000)) == (1728, 720)
    assert output_size(job_spec(force_remux=True)) == (1920, 1080)
