"""The speed guard's decision (pure: progress samples in, step out) and its steps."""
import pytest

from transcode_worker import speed_guard
from transcode_worker.speed_guard import Step, decide, has_headroom, on_one_stream, steps


def run_at(speeds, start_out=0.0, every_s=0.5):
    """Progress samples (wall, output seconds), twice a second: `speeds` is [(seconds, speed)]."""
    samples, wall, out = [(0.0, start_out)], 0.0, start_out
    for seconds, speed in speeds:
        for _ in range(round(seconds / every_s)):
            wall += every_s
            out += speed * every_s
            samples.append((wall, out))
    return samples


@pytest.mark.parametrize("speeds, step, last, expected_step, stressed", [
    ([(30, 2.0)], 0, 3, 0, False),                  # well ahead: stays
    ([(30, 1.0)], 0, 3, 0, False),                  # exactly real time keeps up
    ([(30, 0.8)], 0, 3, 1, False),                  # behind for 26 s (after the first window): steps
    ([(12, 0.8)], 0, 3, 0, False),                  # behind for 8 s only: not yet
    ([(20, 2.0), (12, 0.7)], 0, 3, 0, False),        # behind for 10 s, of which the window needs 4 to show
    ([(20, 2.0), (20, 0.7)], 1, 3, 2, False),        # behind long enough: the next step
    ([(20, 0.5), (1, 5.0), (5, 0.5)], 0, 3, 0, False),  # a burst above real time starts the clock again
    ([(30, 0.6)], 3, 3, 3, True),                   # at the last step: cannot keep up
    ([(30, 0.6)], 0, 0, 0, True),                   # a job with one step (a hardware encoder at 360p)
])
def test_the_guard_steps_down_a_job_that_stays_behind(speeds, step, last, expected_step, stressed):
    decision = decide(run_at(speeds), warmup_out_s=0.0, behind_s=10.0, step=step, last_step=last)
    assert (decision.step, decision.stressed) == (expected_step, stressed)
    assert (decision.reason is not None) == (expected_step != step or stressed)


def test_the_warm_up_does_not_count():
    # FFmpeg slow to start (opening the source, the first short segments), then fast
    samples = run_at([(12, 0.3), (10, 1.5)])
    assert decide(samples, warmup_out_s=0.0, behind_s=10.0, step=0, last_step=2).step == 0  # a burst since
    slow_start = run_at([(24, 0.3)])
    assert decide(slow_start, warmup_out_s=0.0, behind_s=10.0, step=0, last_step=2).step == 1
    # the same slow start, all of it inside the warm-up (the first 8 s of output): no verdict
    assert decide(slow_start, warmup_out_s=8.0, behind_s=10.0, step=0, last_step=2).speed is None


def test_no_samples_no_verdict():
    decision = decide([], warmup_out_s=0.0, behind_s=10.0, step=0, last_step=2)
    assert decision == speed_guard.Decision(0.0, None, 0, None, False)


def test_speed_is_measured_over_the_window():
    (wall, speed), *_ = speed_guard.windowed_speeds(run_at([(4, 0.5), (4, 1.5)]), window_s=4.0)
    assert wall == 4.0 and speed == pytest.approx(0.5)
    assert speed_guard.windowed_speeds(run_at([(4, 0.5), (4, 1.5)]))[-1][1] == pytest.approx(1.5)


@pytest.mark.parametrize("encoder, preset, height, bitrate, expected", [
    ("libx264", "veryfast", 1080, 8_000_000,
     [("veryfast", 1080, 8_000_000), ("veryfast light", 1080, 8_000_000), ("ultrafast", 1080, 8_000_000),
      ("ultrafast", 720, 2_500_000), ("ultrafast", 480, 1_000_000), ("ultrafast", 360, 600_000)]),
    ("libx264", "medium", 480, 1_000_000,  # an operator's heavier preset: the light step is veryfast's
     [("medium", 480, 1_000_000), ("veryfast light", 480, 1_000_000), ("ultrafast", 480, 1_000_000),
      ("ultrafast", 360, 600_000)]),
    ("libx264", "superfast", 480, 1_000_000,  # lighter than the light step already
     [("superfast", 480, 1_000_000), ("ultrafast", 480, 1_000_000), ("ultrafast", 360, 600_000)]),
    ("libx265", "medium", 480, 1_000_000,  # the light analysis is x264's
     [("medium", 480, 1_000_000), ("ultrafast", 480, 1_000_000), ("ultrafast", 360, 600_000)]),
    ("libx264", "ultrafast", 720, 4_000_000,
     [("ultrafast", 720, 4_000_000), ("ultrafast", 480, 1_000_000), ("ultrafast", 360, 600_000)]),
    ("h264_nvenc", "veryfast", 720, 3_000_000,
     [(None, 720, 3_000_000), (None, 480, 1_000_000), (None, 360, 600_000)]),
    ("libx264", "veryfast", 360, 500_000,
     [("veryfast", 360, 500_000), ("veryfast light", 360, 500_000), ("ultrafast", 360, 500_000)]),
    ("libx264", "veryfast", 540, 1_500_000,  # a source between rungs: the rungs below it
     [("veryfast", 540, 1_500_000), ("veryfast light", 540, 1_500_000), ("ultrafast", 540, 1_500_000),
      ("ultrafast", 480, 1_000_000), ("ultrafast", 360, 600_000)]),
])
def test_steps_go_faster_then_down_the_ladder(encoder, preset, height, bitrate, expected):
    found = steps(encoder, preset, height, bitrate)
    named = [(f"{s.preset} light" if s.light else s.preset, s.height, s.bitrate_bps) for s in found]
    assert named == expected
    assert [s.number for s in found] == list(range(len(expected)))
    assert all(s.bitrate_bps <= bitrate for s in found)  # never more than was asked


@pytest.mark.parametrize("encoder, preset, height, bitrate, expected", [
    ("libx264", "veryfast", 1080, 8_000_000,  # a heavy source: light from the start, no light step after
     [("veryfast light", 1080, 8_000_000), ("ultrafast", 1080, 8_000_000), ("ultrafast", 720, 2_500_000),
      ("ultrafast", 480, 1_000_000), ("ultrafast", 360, 600_000)]),
    ("libx264", "veryfast", 360, 500_000,
     [("veryfast light", 360, 500_000), ("ultrafast", 360, 500_000)]),
])
def test_a_first_step_that_analyses_lightly_has_no_light_step_after_it(encoder, preset, height, bitrate, expected):
    found = steps(encoder, preset, height, bitrate, light=True)
    named = [(f"{s.preset} light" if s.light else s.preset, s.height, s.bitrate_bps) for s in found]
    assert named == expected
    assert [s.number for s in found] == list(range(len(expected)))
    assert all(s.bitrate_bps <= bitrate for s in found)  # never more than was asked


def test_a_step_says_what_it_is():
    assert Step(2, "ultrafast", 720, 2_500_000).describe() == "step 2: 720p at 2.5 Mb/s, ultrafast"
    assert Step(1, "veryfast", 1080, 8_000_000, light=True).describe() == (
        "step 1: 1080p at 8 Mb/s, veryfast, light analysis")


def test_headroom_needs_a_sustained_margin():
    assert has_headroom(run_at([(40, 2.5)]), warmup_out_s=0.0)
    assert not has_headroom(run_at([(20, 2.5)]), warmup_out_s=0.0)  # not long enough
    assert not has_headroom(run_at([(30, 2.5), (6, 1.5)]), warmup_out_s=0.0)  # lately less


def test_on_one_stream_the_steps_keep_the_picture_size_and_an_fmp4_job_its_encoder():
    found = steps("libx264", "veryfast", 1080, 8_000_000)
    kept = on_one_stream(found)
    assert [(s.preset, s.light, s.height) for s in kept] == [
        ("veryfast", False, 1080), ("veryfast", True, 1080), ("ultrafast", False, 1080)]
    assert [s.number for s in kept] == [0, 1, 2]
    hevc = on_one_stream(steps("libx265", "veryfast", 1080, 8_000_000), fmp4=True)
    assert [(s.preset, s.height) for s in hevc] == [("veryfast", 1080)]  # its init segment's parameter sets
