"""A job's plan (plan.py), as a table: from the source, the command and the machine, what the job
will do. No files, no processes."""
import pytest

from transcode_worker import plan
from transcode_worker.media import SubtitleStream

from specs import job_spec, media_info

HDR10 = dict(video_codec="hevc", color_transfer="smpte2084", color_primaries="bt2020", color_space="bt2020nc",
             hdr="HDR10")
GUARDED = plan.Machine(speed_guard_s=3.0)
TEXT = SubtitleStream(stream=0, index=2, codec="subrip", language="en")
FRAME_S = 1 / 25  # the sources' frame (specs.media_info)
KEYFRAMES = [0.0, 2.0, 7.5, 9.0, 15.0]  # a remux's, irregular


def never(kind):
    return 0


# (what, the command's fields, machine, steps learnt for its kind) -> what the plan says
CASES = [
    ("1080p x264, guard off", {}, plan.Machine(), never,
     dict(steps=0, kind=None, step=None, stepped=False, fmp4=False, tone_mapper=None, burns_text=False, first_s=1.0)),
    ("1080p x264, guard on, nothing learnt", {}, GUARDED, never,  # veryfast, its light analysis, ultrafast
     dict(steps=3, kind="-> libx264 veryfast ", step=None, stepped=False, first_s=1.0)),
    ("guard on, two steps learnt", {}, GUARDED, lambda kind: 2,
     dict(steps=3, step=2, stepped=True)),
    ("HEVC out, guard on: one init segment keeps its first step", {"encoder": "libx265"}, GUARDED, lambda kind: 2,
     dict(steps=1, kind="-> libx265 veryfast ", step=None, stepped=False, fmp4=True)),
    ("4K HDR10 at veryfast, guard on: light analysis from the start", {"media": media_info(height=2160, **HDR10)},
     GUARDED, never, dict(steps=2, kind="veryfast light", step=None)),
    ("guard on, more learnt than there are steps", {}, GUARDED, lambda kind: 99,
     dict(step="last", stepped=True)),
    ("HEVC out", {"encoder": "libx265"}, plan.Machine(), never,
     dict(fmp4=True, tone_mapper=None)),
    ("remux", {"force_remux": True}, GUARDED, lambda kind: 2,
     dict(steps=0, kind=None, step=None, stepped=False, remux=True, first_s=2.0)),
    ("HDR10 on the CPU", {"media": media_info(height=2160, **HDR10)}, plan.Machine(), never,
     dict(tone_mapper="cpu", needs_lut=True, first_s=0.5)),
    ("HDR10, OpenCL proven", {"media": media_info(height=1080, **HDR10)}, plan.Machine(hardware_tonemap=("opencl",)),
     never, dict(tone_mapper="opencl", needs_lut=False, first_s=0.5)),
    ("4K SDR: a heavy source's first segment is halved", {"media": media_info(height=2160)}, plan.Machine(), never,
     dict(tone_mapper=None, first_s=0.5)),
    ("text subtitles drawn in", {"subtitle": TEXT, "burn": True}, plan.Machine(), never,
     dict(burns_text=True)),
    ("text subtitles shown, not drawn", {"subtitle": TEXT}, plan.Machine(), never,
     dict(burns_text=False)),
    ("the pool's grid: 2 s segments", {"segment_s": 2.0, "first_segment_s": 0.5}, plan.Machine(), never,
     dict(first_s=0.5, second_s=0.5, fifth_s=2.0)),  # a ramp: each as long as those before it
]


@pytest.mark.parametrize("what, fields, machine, learnt, expected", CASES, ids=[c[0] for c in CASES])
def test_the_plan_of_a_job(what, fields, machine, learnt, expected):
    spec = job_spec(**fields)
    asked = []
    made = plan.make(spec, machine, keyframes=KEYFRAMES if spec.force_remux else None,
                     learnt=lambda kind: asked.append(kind) or learnt(kind))
    assert asked == ([made.kind] if made.steps else [])  # what was learnt of this job's kind, and only that
    found = dict(steps=len(made.steps), kind=made.kind, stepped=made.stepped is not None, fmp4=made.fmp4,
                 tone_mapper=made.tone_mapper, burns_text=made.burns_text, needs_lut=made.needs_lut,
                 remux=made.grid.remux, first_s=made.grid.duration(0), second_s=made.grid.duration(1),
                 fifth_s=made.grid.duration(4))
    for key, want in expected.items():
        if key == "kind" and want is not None:
            assert want in made.kind, (what, made.kind)
        elif key == "step":
            want_step = {None: None, "last": made.steps[-1] if made.steps else None}.get(want)
            want_step = made.steps[want] if isinstance(want, int) else want_step
            assert made.spec.step == want_step, (what, made.spec.step)
        else:
            # (a transcode's grid is whole frames: 0.5 s at 25 fps is 12 of them, 0.48 s)
            assert found[key] == pytest.approx(want, abs=FRAME_S) if isinstance(want, float) else found[key] == want, (
                what, key, found[key])
    assert made.command is spec  # what was asked stays as it was
    assert made.spec.step is None or made.stepped.startswith(f"began at {made.spec.step.describe()}")


def test_every_worker_of_a_pool_plans_the_same_grid():
    """The grid is the source's and the command's: another preset, guard or tone-mapper changes
    how a worker makes the segments, never where they are cut."""
    spec = job_spec(media=media_info(height=2160, **HDR10), segment_s=3.0)
    machines = [plan.Machine(), plan.Machine(preset="medium", speed_guard_s=3.0),
                plan.Machine(hardware_tonemap=("opencl",), vaapi_device="/dev/dri/renderD128")]
    grids = {plan.make(spec, m, learnt=lambda kind: 1).grid for m in machines}
    assert len(grids) == 1


def test_a_remux_without_its_keyframes_cannot_be_planned():
    with pytest.raises(ValueError, match="keyframes"):
        plan.make(job_spec(force_remux=True), plan.Machine())


@pytest.mark.parametrize("fields, number, waited, sprint", [
    ({}, 10, True, True),                        # a jump mid-film: the segment alone, at the sprint preset
    ({}, 10, False, False),                      # a run that goes on: as asked
    ({}, 0, True, False),                        # the film's start: its short first segments are quick already
    ({"encoder": "libx265"}, 10, True, False),   # only x264 sprints
    ({"force_remux": True}, 2, True, False),     # a copy has nothing to sprint
])
def test_a_run_from_segment_k(fields, number, waited, sprint):
    spec = job_spec(**fields)
    made = plan.make(spec, plan.Machine(), keyframes=KEYFRAMES if spec.force_remux else None)
    output = made.output(number, waited=waited, run_id=7)
    assert (output.job_id, output.run_id, output.start_number, output.sprint, output.grid) == (
        "j1", 7, number, sprint, made.grid)
    assert output.fmp4 == (fields.get("encoder") == "libx265")


def test_the_argv_of_a_run_is_the_machines():
    """The machine's FFmpeg and preset, the files the run's preparation made, the spec of the run
    (a step's), all passed to the builder."""
    calls = []

    def build(spec, output, **kw):
        calls.append((spec, output, kw))
        return ["argv"]

    machine = plan.Machine(ffmpeg="/opt/ffmpeg", preset="faster", hardware_tonemap=("opencl",),
                           vaapi_device="/dev/dri/renderD129")
    made = plan.make(job_spec(), machine)
    output = made.output(3)
    assert made.argv(made.spec, output, build=build, tonemap_lut="/spool/peak.cube", burn_file="j1.burn.ass") == [
        "argv"]
    assert calls == [(made.spec, output, dict(ffmpeg="/opt/ffmpeg", preset="faster", vaapi_device="/dev/dri/renderD129",
                                              hardware_tonemap=("opencl",), tonemap_lut="/spool/peak.cube",
                                              burn_file="j1.burn.ass", fonts_dir=None))]
    real = made.argv(made.spec, output)  # and the real builder takes them
    assert real[0] == "/opt/ffmpeg" and "faster" in real


def test_the_machine_is_the_workers_settings_and_what_its_trials_proved():
    settings = type("Settings", (), dict(ffmpeg_path="/opt/ffmpeg", encoder_preset="faster", speed_guard_s=5.0))
    assert plan.Machine.of(settings, ["opencl"], "/dev/dri/renderD128") == plan.Machine(
        ffmpeg="/opt/ffmpeg", preset="faster", speed_guard_s=5.0, hardware_tonemap=("opencl",),
        vaapi_device="/dev/dri/renderD128")


def test_an_audio_rendition_is_on_the_videos_grid_and_in_its_container():
    spec = job_spec(encoder="libx265")
    made = plan.make(spec, plan.Machine(ffmpeg="/opt/ffmpeg"))
    every = made.renditions(spec.audio)
    name = next(iter(every))
    assert every[name].track == spec.audio and every[name].kind == "stereo"  # the one track, as stereo AAC
    output = made.audio_output(name, 5, run_id=3)
    assert (output.grid, output.fmp4, output.start_number, output.rendition, output.run_id) == (
        made.grid, True, 5, name, 3)
    argv = made.audio_argv(spec, output, every[name])
    assert argv[0] == "/opt/ffmpeg" and "-vn" in argv
