import math

import pytest

from transcode_worker import grid


@pytest.mark.parametrize("fps, segment_s, frames", [
    (24000 / 1001, 3.0, 72), (24000 / 1001, 4.0, 96), (25.0, 4.0, 100), (30000 / 1001, 6.0, 180), (50.0, 2.0, 100),
])
def test_a_transcode_cuts_on_whole_frames(fps, segment_s, frames):
    g = grid.for_transcode(120.0, fps, segment_s)
    rate = grid.frame_rate(fps)
    for n in range(1, len(g)):
        assert abs(g.start(n) * rate - round(g.start(n) * rate)) < 1e-3, g.start(n)  # a whole frame
        assert abs(g.start(n) - n * frames / rate) < 1e-6
    assert g.starts[0] == 0 and g.end_s == 120.0


def test_23976_is_3003_ms_not_3000():
    g = grid.for_transcode(60.0, 23.976023976, 3.0)
    assert g.start(1) == 3.003 and g.start(2) == 6.006


def test_the_ramp_starts_short_then_doubles_to_the_segment_length():
    g = grid.for_transcode(60.0, 25.0, 4.0, first_s=1.0)
    assert g.starts[:6] == (0.0, 1.0, 2.0, 4.0, 8.0, 12.0)
    assert grid.for_transcode(60.0, 25.0, 4.0, first_s=0.5).starts[:6] == (0.0, 0.48, 0.96, 1.92, 3.84, 7.68)


def test_durations_add_up_to_the_film_and_the_last_is_what_is_left():
    g = grid.for_transcode(10.5, 25.0, 4.0)
    assert g.starts == (0.0, 4.0, 8.0) and g.durations() == [4.0, 4.0, 2.5]
    assert math.isclose(sum(g.durations()), 10.5)


def test_segment_at_finds_the_segment_holding_a_time():
    g = grid.for_transcode(60.0, 25.0, 4.0)
    assert [g.segment_at(t) for t in (0, 3.99, 4.0, 59.9, 61, -1)] == [0, 0, 1, 14, 14, 0]


def test_a_remux_cuts_on_keyframes_nearest_the_segment_length():
    keyframes = [0.0, 1.001, 2.502, 7.007, 8.008, 14.514, 16.016, 20.02, 26.485, 26.985, 32.991]
    g = grid.for_remux(keyframes, 40.04, 4.0, 24000 / 1001)
    assert set(g.starts[1:]) <= set(keyframes)
    assert g.starts == (0.0, 2.502, 7.007, 8.008, 14.514, 20.02, 26.485, 32.991)
    assert g.target_s == math.ceil(max(g.durations())) == 8  # a long GOP is as long as it is
    assert g.remux


def test_a_remux_never_cuts_at_its_first_keyframe():
    # the video begins 21 ms in (Matroska's rounding): that keyframe is where segment 0 starts
    g = grid.for_remux([0.021, 4.021, 8.021], 10.0, 4.0, 25.0)
    assert g.starts == (0.0, 4.021, 8.021)


def test_a_source_without_a_frame_rate_gets_25():
    assert grid.frame_rate(None) == 25 and grid.frame_rate(float("nan")) == 25
    assert grid.frame_rate(23.976023976) == grid.Fraction(24000, 1001)
