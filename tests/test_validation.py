"""Every rule of DESIGN.md's "Rules that keep the worker safe", one by one (real folders and
symlinks in tmp_path; the probe is a fake: integration tests use the real ffprobe)."""
import os
from types import SimpleNamespace

import pytest
from marshmallow import ValidationError

from specs import media_info
from transcode_worker.capabilities import Capabilities
from transcode_worker.media import ProbeError
from transcode_worker.schemas import load_job_command
from transcode_worker.validation import FieldErrors, validate_command

CAPS = Capabilities(ffmpeg_version="5.1", encoders=("libx264",))


@pytest.fixture
def roots(tmp_path):
    media, segments, outside = tmp_path / "media", tmp_path / "segments", tmp_path / "outside"
    for folder in (media, segments, outside):
        folder.mkdir()
    (media / "movie.mkv").write_bytes(b"video")
    (media / "notes.txt").write_text("text")
    (media / "folder.mkv").mkdir()
    (outside / "secret.mkv").write_bytes(b"video")
    (media / "escape.mkv").symlink_to(outside / "secret.mkv")
    (segments / "out-link").symlink_to(outside)
    settings = SimpleNamespace(media_roots=[str(media)], segment_root=str(segments), ffprobe_path="ffprobe",
                               default_encoder="libx264", default_bitrate_bps=4_000_000, segment_duration_s=4.0,
                               first_segment_s=1.0)
    return SimpleNamespace(media=media, segments=segments, outside=outside, settings=settings)


def fake_probe(path):
    if path.endswith(".txt"):
        raise ProbeError("Invalid data found when processing input")
    return media_info(duration=120.0)


def run(roots, probe=fake_probe, **fields):
    body = {"job_id": "j1", "source_path": str(roots.media / "movie.mkv"), **fields}
    return validate_command(load_job_command(body), roots.settings, CAPS, probe=probe)


def failing_fields(roots, probe=fake_probe, **fields):
    with pytest.raises((FieldErrors, ValidationError)) as err:
        run(roots, probe, **fields)
    exc = err.value
    return set(exc.errors if isinstance(exc, FieldErrors) else exc.messages)


def test_a_good_command_gets_defaults(roots):
    spec = run(roots)
    assert spec.source == roots.media / "movie.mkv"
    assert spec.folder == roots.segments / "j1"
    assert (spec.seek_s, spec.bitrate_bps, spec.encoder, spec.force_remux) == (0, 4_000_000, "libx264", False)
    assert (spec.segment_s, spec.first_segment_s) == (4.0, 1.0)  # the worker's, unless the command names them


def test_a_command_that_names_the_grid_gets_it_and_another_grid_is_another_picture(roots):
    named = run(roots, configuration={"segment_duration_s": 6.0, "first_segment_s": 0})
    assert (named.segment_s, named.first_segment_s) == (6.0, 0)
    assert not named.same_stream(run(roots)) and named.same_stream(run(roots, configuration={
        "segment_duration_s": 6.0, "first_segment_s": 0, "seek_time": "00:00:05"}))


def test_same_command_and_changed_command(roots):
    first = run(roots, configuration={"seek_time": "00:00:00", "bitrate_bps": 4_000_000})
    assert first.same_command(run(roots))  # defaults spelled out or left out: the same command
    assert not first.same_command(run(roots, configuration={"seek_time": "00:00:10"}))
    assert not first.same_command(run(roots, configuration={"bitrate_bps": 2_000_000}))


@pytest.mark.parametrize("job_id", ["../x", "a/b", "", "x" * 65, "naïve", "a.b", "a b"])
def test_job_id_rule(roots, job_id):
    assert failing_fields(roots, job_id=job_id) == {"job_id"}


@pytest.mark.parametrize("source", [
    "relative/movie.mkv", "concat:/a.mkv|/b.mkv", "http://evil/x.mkv", "pipe:0", "file:/etc/passwd",
    "/etc/passwd", "/nonexistent/movie.mkv",
])
def test_source_must_be_an_absolute_path_inside_a_root(roots, source):
    assert failing_fields(roots, source_path=source) == {"source_path"}


@pytest.mark.parametrize("name", ["missing.mkv", "folder.mkv", "notes.txt", "escape.mkv", "../outside/secret.mkv"])
def test_source_must_be_a_playable_regular_file_really_inside(roots, name):
    assert failing_fields(roots, source_path=str(roots.media / name)) == {"source_path"}


def test_source_nul_byte(roots):
    assert failing_fields(roots, source_path=str(roots.media / "movie.mkv") + "\0x") == {"source_path"}


def test_the_media_root_itself_is_not_a_source(roots):
    assert failing_fields(roots, source_path=str(roots.media)) == {"source_path"}


@pytest.mark.parametrize("output", ["../outside", "/tmp", "out-link", "out-link/deeper", ".", "", "a\0b"])
def test_output_path_must_resolve_strictly_inside_segment_root(roots, output):
    assert failing_fields(roots, output_path=output) == {"output_path"}


def test_output_path_inside_segment_root(roots):
    assert run(roots, output_path="shows/j1").folder == roots.segments / "shows" / "j1"
    assert run(roots, output_path=str(roots.segments / "abs")).folder == roots.segments / "abs"


@pytest.mark.parametrize("output", ["a" * 256, "shows/" + "é" * 128 + "/j1", "x/" + "a" * 300 + "/../y",
                                    "/".join(["é" * 120] * 18)])  # 2,177 characters, 4,337 bytes
def test_output_path_the_file_system_cannot_make_is_a_field_error(roots, output):
    """A name over NAME_MAX (255 bytes: "é" is two) or a path over PATH_MAX: realpath and lexists
    pass it, and only os.makedirs in the job would fail (F4: a 500, after the running job of the
    same id was stopped). ("x/<300>/../y" resolves to x/y, which can be made.)"""
    if output.endswith("/../y"):
        assert run(roots, output_path=output).folder == roots.segments / "x" / "y"
        return
    with pytest.raises(FieldErrors) as err:
        run(roots, output_path=output)
    assert set(err.value.errors) == {"output_path"}
    assert "fit in this file system" in err.value.errors["output_path"][0]


def test_output_path_names_up_to_name_max_pass(roots):
    assert run(roots, output_path="a" * 255).folder == roots.segments / ("a" * 255)
    assert run(roots, output_path="é" * 127).folder == roots.segments / ("é" * 127)


@pytest.mark.parametrize("output", ["shows\nINFO job other: FFmpeg started", "a\rb", "a\tb", "a\x1b[31mb", "a\x85b",
                                    "a\u2028b", "movie\u202evkm.exe", "a\ud800b"])
def test_output_path_with_a_control_character_is_refused(roots, output):
    """A newline would reach the log lines as a line of its own; a bidi override makes a name
    read as another; an unpaired surrogate is no file name."""
    with pytest.raises(FieldErrors) as err:
        run(roots, output_path=output)
    assert set(err.value.errors) == {"output_path"} and "U+" in err.value.errors["output_path"][0]
    assert list(roots.segments.iterdir()) == [roots.segments / "out-link"]


def test_output_path_that_is_a_file(roots):
    (roots.segments / "taken").write_text("x")
    assert failing_fields(roots, output_path="taken") == {"output_path"}


@pytest.mark.parametrize("encoder", ["h264_nvenc", "libfoo", ""])
def test_encoder_must_be_usable_here(roots, encoder):
    assert failing_fields(roots, configuration={"encoder": encoder}) == {"configuration.encoder"}


def test_encoder_error_lists_the_usable_ones(roots):
    with pytest.raises(FieldErrors) as err:
        run(roots, configuration={"encoder": "h264_nvenc"})
    assert "libx264" in err.value.errors["configuration.encoder"][0]


@pytest.mark.parametrize("seek", ["1:2:3", "00:61:00", "00:00:60", "aa:bb:cc", "00:00:01.1234", "-00:00:01", "10"])
def test_seek_time_format(roots, seek):
    assert failing_fields(roots, configuration={"seek_time": seek}) == {"configuration.seek_time"}


@pytest.mark.parametrize("seek", ["00:02:00", "00:05:00", "99:00:00"])
def test_seek_time_within_the_source(roots, seek):
    assert failing_fields(roots, configuration={"seek_time": seek}) == {"configuration.seek_time"}


def test_seek_time_accepted(roots):
    assert run(roots, configuration={"seek_time": "00:01:59.500"}).seek_s == 119.5


@pytest.mark.parametrize("bitrate", [0, -1, 10**12, 1.5, "5000000", True])
def test_bitrate_rule(roots, bitrate):
    assert failing_fields(roots, configuration={"bitrate_bps": bitrate}) == {"configuration.bitrate_bps"}


@pytest.mark.parametrize("value", ["yes", 1, "true", None])
def test_force_remux_is_a_real_boolean(roots, value):
    assert failing_fields(roots, configuration={"force_remux": value}) == {"configuration.force_remux"}


def test_unknown_and_missing_fields_are_named(roots):
    with pytest.raises(ValidationError) as err:
        load_job_command({"job_id": "j", "sauce_path": "/x"})
    assert set(err.value.messages) == {"source_path", "sauce_path"}


def test_every_failing_field_at_once(roots):
    fields = failing_fields(roots, source_path="/etc/passwd", output_path="../x",
                            configuration={"encoder": "nope"})
    assert fields == {"source_path", "output_path", "configuration.encoder"}


def test_remux_does_not_need_the_default_encoder(roots):
    roots.settings.default_encoder = "libmissing"
    assert run(roots, configuration={"force_remux": True}).force_remux
    assert failing_fields(roots) == {"configuration.encoder"}


@pytest.mark.parametrize("codec", ["mpeg2video", "vp9", "mjpeg", "mpeg4", "av1"])
def test_a_remux_copies_only_video_players_decode(roots, codec):
    probe = lambda path: media_info(duration=120.0, video_codec=codec)  # noqa: E731
    assert failing_fields(roots, probe, configuration={"force_remux": True}) == {"configuration.force_remux"}
    assert not run(roots, probe).force_remux  # a transcode of it is fine


@pytest.mark.parametrize("codec", ["h264", "hevc"])
def test_h264_and_hevc_can_be_remuxed(roots, codec):
    assert run(roots, lambda path: media_info(video_codec=codec), configuration={"force_remux": True}).force_remux


def test_nothing_was_created_or_deleted(roots):
    before = sorted(os.walk(roots.segments))
    for output in ("../outside", "new/j1"):
        try:
            run(roots, output_path=output, source_path="/etc/passwd")
        except FieldErrors:
            pass
    assert sorted(os.walk(roots.segments)) == before


def test_dolby_vision_without_a_base_layer_cannot_be_transcoded_but_can_be_remuxed(roots):
    profile5 = lambda path: media_info(video_codec="hevc", hdr="DOVI", dovi_profile=5)  # noqa: E731
    with pytest.raises(FieldErrors) as err:
        run(roots, profile5)
    assert "Dolby Vision profile 5" in err.value.errors["source_path"][0]
    assert run(roots, profile5, configuration={"force_remux": True}).force_remux
    with_base = lambda path: media_info(video_codec="hevc", hdr="DOVI", dovi_profile=8,  # noqa: E731
                                        dovi_base_layer="HDR10", color_transfer="smpte2084")
    assert run(roots, with_base).tone_mapped


@pytest.mark.parametrize("configuration, field", [
    ({"audio_language": "xx"}, "configuration.audio_language"),
    ({"audio_language": "german"}, "configuration.audio_language"),
    ({"audio_language": 7}, "configuration.audio_language"),
    ({"audio_stream": -1}, "configuration.audio_stream"),
    ({"audio_stream": "1"}, "configuration.audio_stream"),
    ({"audio_stream": 1}, "configuration.audio_stream"),  # the source has one audio track
    ({"audio_language": "de"}, "configuration.audio_language"),  # ... in no language
])
def test_an_audio_choice_the_source_cannot_satisfy(roots, configuration, field):
    assert failing_fields(roots, configuration=configuration) == {field}


def test_the_audio_choice_is_part_of_the_command(roots):
    probe = lambda path: media_info(audio=(("aac", True), ("ac3", False)))  # noqa: E731
    chosen = run(roots, probe, configuration={"audio_stream": 1})
    assert chosen.audio.stream == 1 and chosen.configuration()["audio_stream"] == 1
    assert not chosen.same_command(run(roots, probe))
    assert run(roots, probe, configuration={"audio_stream": 0}).same_command(run(roots, probe))  # the same track
    assert "audio_stream" not in run(roots, probe).configuration()
