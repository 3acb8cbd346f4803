from pathlib import Path

import pytest

from transcode_worker.progress import ProgressParser, format_speed, percent, segment_numbers

RECORDED = Path(__file__).parent / "data" / "progress_seek2_of_20s.txt"  # real FFmpeg 5.1 output, -ss 2


def parse_all(text):
    parser = ProgressParser()
    return [p for line in text.splitlines(True) if (p := parser.feed(line)) is not None]


def test_recorded_output_blocks():
    blocks = parse_all(RECORDED.read_text())
    assert len(blocks) >= 5
    assert not any(b.ended for b in blocks[:-1]) and blocks[-1].ended
    assert blocks[0].out_time_s == pytest.approx(0.023222)
    assert blocks[-1].out_time_s == pytest.approx(18.018678)
    assert blocks[-1].speed == "3.9x" and blocks[-1].frame == 432
    times = [b.out_time_s for b in blocks if b.out_time_s is not None]
    assert times == sorted(times)


def test_percent_counts_the_seek_offset():
    last = parse_all(RECORDED.read_text())[-1]
    assert percent(2.0, last.out_time_s, 20.0) == 100.0
    assert percent(2.0, 3.0, 20.0) == 25.0
    assert percent(0.0, 3.0, 20.0) == 15.0
    assert percent(2.0, None, 20.0) is None


def test_missing_values_before_the_first_frame():
    (block,) = parse_all("frame=0\nout_time_us=N/A\nspeed=N/A\nprogress=continue\n")
    assert block.out_time_s is None and block.speed is None and block.frame == 0


def test_negative_start_time_is_clamped():
    (block,) = parse_all("out_time_us=-23000\nprogress=continue\n")
    assert block.out_time_s == 0


@pytest.mark.parametrize("raw,shown", [("1.83x", "1.8x"), ("  12x", "12.0x"), ("N/A", None), (None, None)])
def test_speed_format(raw, shown):
    assert format_speed(raw) == shown


def test_segment_numbers_from_a_playlist():
    text = "#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:7\n#EXTINF:4.0,\nab_c_7.ts\n#EXTINF:4.0,\nab_c_8.ts\nother_9.ts\n"
    assert segment_numbers(text, "ab_c") == [7, 8]
    assert segment_numbers("#EXTM3U\n", "ab_c") == []


def test_segment_numbers_of_fmp4():
    text = ('#EXTM3U\n#EXT-X-MAP:URI="j_init_3.mp4"\n#EXTINF:4.0,\nj_3.m4s\n#EXTINF:4.0,\nj_4.m4s\n'
            "j_5.m4s.tmp\nj_init_6.mp4\n")
    assert segment_numbers(text, "j") == [3, 4]


def test_nonsense_at_the_start_never_reaches_the_wire():
    assert format_speed("inf") is None and format_speed("N/A") is None and format_speed("-1x") is None
    assert percent(0.0, -0.5, 100.0) == 0.0
