"""Hardware acceleration by trial: on this machine (no GPU: nothing), and with a fake FFmpeg."""
from pathlib import Path

import pytest

from specs import hls_output, job_spec, media_info
from transcode_worker.capabilities import detect, parse_hwaccels
from transcode_worker.ffmpeg_command import build_command
from transcode_worker.hardware import OPENCL_TONEMAP, VAAPI_TONEMAP, plan_trials

FAKE = Path(__file__).parent / "fake_hw_ffmpeg.py"


@pytest.fixture
def fake(tmp_path, monkeypatch):
    log = tmp_path / "calls"
    monkeypatch.setenv("FAKE_FFMPEG_LOG", str(log))

    def run(works, nodes=()):
        monkeypatch.setenv("FAKE_FFMPEG_WORKS", ",".join(works))
        return detect(str(FAKE), render_nodes=list(nodes))
    run.calls = lambda: log.read_text().splitlines()
    return run


def test_this_machine_lists_nvenc_but_proves_nothing():
    found = detect("ffmpeg")
    assert found.ffmpeg_ok
    assert found.hardware_acceleration == ()
    assert set(found.encoders) <= {"libx264", "libx265"}
    tried = {r.trial.what: r for r in found.trials}
    # Debian's build lists h264_nvenc: it was tried, for real, and failed with FFmpeg's reason
    assert "h264_nvenc" in tried and not tried["h264_nvenc"].passed and tried["h264_nvenc"].detail


def test_fake_ffmpeg_with_one_working_encoder(fake):
    found = fake({"h264_nvenc"})
    assert found.hardware_acceleration == ("nvenc",)
    assert found.encoders == ("libx264", "libx265", "h264_nvenc")
    failed = {r.trial.what: r.detail for r in found.trials if not r.passed}
    assert failed["hevc_nvenc"] == "[AVHWDeviceContext] Cannot load libcuda.so.1"
    assert "hevc decoding" in failed  # CUDA decoding was tried on a real HEVC frame
    assert any("-hwaccel cuda" in call and "sample.hevc" in call for call in fake.calls())


def test_vaapi_needs_a_render_node_and_remembers_it(fake):
    assert fake({"h264_vaapi"}).hardware_acceleration == ()  # no /dev/dri: not even tried
    assert not any("h264_vaapi" in call for call in fake.calls())
    found = fake({"h264_vaapi"}, nodes=["/dev/dri/renderD128", "/dev/dri/renderD129"])
    assert found.hardware_acceleration == ("vaapi",)
    assert found.vaapi_device == "/dev/dri/renderD128"
    assert "h264_vaapi" in found.encoders and "hevc_vaapi" not in found.encoders


def test_cuda_decoding_and_several_apis(fake):
    found = fake({"cuda", "hevc_nvenc", "h264_qsv"}, nodes=["/dev/dri/renderD128"])
    assert set(found.hardware_acceleration) == {"cuda", "nvenc", "qsv"}
    assert "hevc_nvenc" in found.encoders and "h264_qsv" in found.encoders


def test_opencl_tone_mapping_is_proven_on_a_pq_frame(fake):
    assert fake(set()).hardware_tonemap == ()
    found = fake({"opencl"})
    assert found.hardware_tonemap == ("opencl",) and found.hardware_acceleration == ()  # not an encoder API
    trial = next(call for call in fake.calls() if "tonemap_opencl" in call)
    assert "color_trc=smpte2084" in trial and OPENCL_TONEMAP in trial  # the very filters a job uses


def test_vaapi_tone_mapping_counts_on_the_node_vaapi_jobs_use(fake):
    node = ["/dev/dri/renderD128"]
    assert fake({"tonemap_vaapi"}, nodes=node).hardware_tonemap == ()  # no VAAPI encoder there
    found = fake({"tonemap_vaapi", "h264_vaapi"}, nodes=node)
    assert found.hardware_tonemap == ("vaapi",) and found.hardware_acceleration == ("vaapi",)
    assert any(VAAPI_TONEMAP in call for call in fake.calls())


HDR10 = media_info(video_codec="hevc", color_transfer="smpte2084", hdr="HDR10")


@pytest.mark.parametrize("encoder, proven, chain", [
    ("libx264", ("opencl",), OPENCL_TONEMAP), ("h264_nvenc", ("opencl", "vaapi"), OPENCL_TONEMAP),
    ("h264_vaapi", ("opencl",), "zscale"), ("h264_vaapi", ("vaapi",), VAAPI_TONEMAP),
    ("hevc_qsv", ("opencl", "vaapi"), "zscale"), ("libx264", ("vaapi",), "zscale"), ("libx264", (), "zscale"),
])
def test_hdr_is_tone_mapped_on_the_gpu_once_proven(encoder, proven, chain):
    spec = job_spec(media=HDR10, encoder=encoder)
    argv = build_command(spec, hls_output("j1", 4), vaapi_device="/dev/dri/renderD128", hardware_tonemap=proven)
    filters = argv[argv.index("-vf") + 1]
    assert chain in filters and sum(c in filters for c in ("zscale", OPENCL_TONEMAP, VAAPI_TONEMAP)) == 1
    assert ("opencl=ocl" in argv[:argv.index("-i")]) is (chain == OPENCL_TONEMAP)
    if chain == VAAPI_TONEMAP:
        assert filters.endswith(VAAPI_TONEMAP)  # on the GPU already: no second upload
    assert argv[argv.index("-color_trc") + 1] == "bt709"
    sdr = build_command(job_spec(encoder=encoder), hls_output("j1", 4), hardware_tonemap=proven)
    assert "opencl=ocl" not in sdr and "tonemap" not in sdr[sdr.index("-vf") + 1]  # no HDR: none of it


def test_missing_ffmpeg_reports_nothing():
    found = detect("/nonexistent/ffmpeg")
    assert not found.ffmpeg_ok and found.encoders == () and found.hardware_acceleration == ()


def test_plan_skips_what_the_build_lacks(tmp_path):
    trials, skipped = plan_trials(["libx264", "h264_qsv"], [], [], str(tmp_path))
    assert trials == []
    assert skipped == [("qsv", "h264_qsv", "no /dev/dri render node")]


def test_parse_hwaccels():
    assert parse_hwaccels("Hardware acceleration methods:\nvdpau\ncuda\n\n") == ["vdpau", "cuda"]
    assert parse_hwaccels("") == []


@pytest.mark.parametrize("encoder, device_args, upload", [
    ("h264_vaapi", ["-vaapi_device", "/dev/dri/renderD129"], "format=nv12,hwupload"),
    ("hevc_qsv", ["-init_hw_device", "qsv=hw", "-filter_hw_device", "hw"], "format=nv12,hwupload=extra_hw_frames=64"),
    ("h264_nvenc", [], "format=yuv420p"),
])
def test_jobs_use_the_device_the_trial_proved(encoder, device_args, upload):
    argv = build_command(job_spec(encoder=encoder), hls_output("j1", 4), vaapi_device="/dev/dri/renderD129")
    before_input = argv[:argv.index("-i")]
    for arg in device_args:
        assert arg in before_input
    assert argv[argv.index("-vf") + 1].endswith(upload)


def test_remux_opens_no_device():
    argv = build_command(job_spec(encoder="h264_vaapi", force_remux=True), hls_output("j1", 4))
    assert "-vaapi_device" not in argv
