"""The tone-map LUT: the peak FFmpeg's tonemap reads, the LUT made from the exact chain, and held
to it (within a level in RGB) on real HDR10 and HLG films."""
import array
import os
import subprocess

import pytest

import media_files as mf
from transcode_worker import media, tonemap
from transcode_worker.media import VideoStream

CLL = {"side_data_type": "Content light level metadata", "max_content": 1000, "max_average": 400}
MASTERING = {"side_data_type": "Mastering display metadata", "max_luminance": "40000000/10000"}


@pytest.mark.parametrize("side_data, peak", [
    ([MASTERING, CLL], 10.0),  # MaxCLL first: 1,000 nits is 10 times SDR white
    ([MASTERING], 40.0),  # then the mastering display's peak
    ([{**CLL, "max_content": 0}, MASTERING], 40.0),  # a MaxCLL of 0 says nothing
    ([{"side_data_type": "H.26[45] User Data Unregistered SEI message"}], 10.0),  # FFmpeg's fallback
])
def test_the_peak_is_the_one_ffmpegs_tonemap_reads(side_data, peak):
    assert media.signal_peak({"frames": [{"side_data_list": side_data}]}) == peak


def test_no_frame_read_no_peak():
    assert media.signal_peak({}) is None and media.signal_peak({"frames": []}) is None


def test_the_probe_reads_the_peak_of_an_hdr_film_only(media_root):
    assert media.run_ffprobe("ffprobe", str(media_root / mf.HDR10)).video.signal_peak == 10.0  # max-cll 1000
    assert media.run_ffprobe("ffprobe", str(media_root / mf.HLG)).video.signal_peak == 10.0  # the same, in HLG
    # Dolby Vision shown from its HDR10 base layer: that layer's peak (and it stays Dolby Vision)
    dovi = media.run_ffprobe("ffprobe", str(media_root / mf.DOVI_8)).video
    assert (dovi.hdr, dovi.signal_peak) == ("DOVI", 10.0)
    assert media.run_ffprobe("ffprobe", str(media_root / mf.DOVI_5)).video.signal_peak is None  # no base layer
    assert media.run_ffprobe("ffprobe", str(media_root / mf.FILM)).video.signal_peak is None  # SDR


def rgb16(source, filters, frames=3):
    """The first frames of `source` through `filters`, as 16-bit planar RGB."""
    out = subprocess.run(["ffmpeg", "-v", "error", "-i", str(source), "-frames:v", str(frames), "-vf",
                          ",".join(filters), "-f", "rawvideo", "-"], capture_output=True, timeout=120, check=True).stdout
    return array.array("H", out)


@pytest.mark.parametrize("name", [mf.HDR10, mf.HLG])  # one LUT: HLG is taken to PQ first
def test_the_lut_shows_what_the_chain_shows(media_root, tmp_path, name):
    source = media_root / name
    video = media.run_ffprobe("ffprobe", str(source)).video
    lut = tonemap.lut_for(video, str(tmp_path))
    assert lut is not None and os.path.basename(lut) == tonemap.lut_name(10.0)
    # both as RGB before the 4:2:0 of the output: the chain's out-of-gamut colours clipped as
    # a screen clips them
    chain = rgb16(source, [*tonemap.filters(video)[:-1], "zscale=t=709:m=gbr:r=full", "format=gbrp16le"])
    made = rgb16(source, [*tonemap.lut_filters(video, lut)[:-1], "format=gbrp16le"])
    assert len(chain) == len(made) > 0
    worst = max(abs(a - b) for a, b in zip(chain, made)) / 257
    assert worst <= 1.0, f"{worst:.2f} levels off"
    # and the picture is not what it was: the LUT did tone-map it
    untouched = rgb16(source, ["zscale=m=gbr:r=full", "format=gbrp16le"])
    assert max(abs(a - b) for a, b in zip(untouched, made)) / 257 > 20


def test_a_lut_is_made_once_per_peak(tmp_path):
    video = VideoStream(index=0, codec="hevc", color_transfer="smpte2084", signal_peak=40.0)
    first = tonemap.lut_for(video, str(tmp_path / "luts"))
    made = os.stat(first).st_ino  # made again, it would be another file (written aside, then renamed)
    assert tonemap.lut_for(video, str(tmp_path / "luts")) == first and os.stat(first).st_ino == made
    lines = open(first).read().splitlines()
    assert lines[0] == f"LUT_3D_SIZE {tonemap.LUT_SIZE}" and len(lines) == 1 + tonemap.LUT_SIZE ** 3
    assert lines[1] == "0.000000 0.000000 0.000000"  # black stays black
    assert os.listdir(tmp_path / "luts") == [tonemap.lut_name(40.0)]  # no temporary file left


def test_the_luts_used_least_recently_go_past_the_bound(tmp_path, monkeypatch):
    monkeypatch.setattr(tonemap, "MAX_LUTS", 3)
    folder = tmp_path / "luts"
    folder.mkdir()
    for age, peak in enumerate([11, 12, 13]):  # 11 used last
        (folder / tonemap.lut_name(peak)).write_text("LUT_3D_SIZE 2\n")
        os.utime(folder / tonemap.lut_name(peak), (1e9 - age * 100, 1e9 - age * 100))
    (folder / ".cube-crashed").write_text("")
    os.utime(folder / ".cube-crashed", (1e9, 1e9))
    (folder / ".cube-being-written").write_text("")  # another thread's, now
    assert tonemap.lut_for(VideoStream(index=0, codec="hevc", color_transfer="smpte2084", signal_peak=13.0),
                           str(folder)) == str(folder / tonemap.lut_name(13))  # used now: the last to go
    video = VideoStream(index=0, codec="hevc", color_transfer="smpte2084", signal_peak=40.0)
    assert tonemap.lut_for(video, str(folder)) == str(folder / tonemap.lut_name(40))
    assert sorted(os.listdir(folder)) == sorted([".cube-being-written", tonemap.lut_name(40), tonemap.lut_name(13),
                                                 tonemap.lut_name(11)])


@pytest.mark.parametrize("video, folder", [
    (VideoStream(index=0, codec="hevc", color_transfer="bt709", signal_peak=10.0), "luts"),  # SDR
    (VideoStream(index=0, codec="hevc", color_transfer="smpte2084"), "luts"),  # peak unknown
    (VideoStream(index=0, codec="hevc", color_transfer="smpte2084", signal_peak=10.0), "lu:ts"),  # unsafe path
])
def test_no_lut_where_the_chain_must_run(video, folder, tmp_path):
    assert tonemap.lut_for(video, str(tmp_path / folder)) is None
    assert not (tmp_path / folder).exists()


def test_a_failing_ffmpeg_leaves_the_chain(tmp_path):
    video = VideoStream(index=0, codec="hevc", color_transfer="smpte2084", signal_peak=10.0)
    assert tonemap.lut_for(video, str(tmp_path), ffmpeg="false") is None
    assert os.listdir(tmp_path) == []
