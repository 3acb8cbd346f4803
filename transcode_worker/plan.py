"""What a job will do, decided once and with no side effect ("decide once, then run").

``make(spec, machine, ...)`` takes what the source holds (``spec.media``, and a remux's keyframes,
which the caller reads), what the command asks (``spec``) and what this machine is set to and has
proved (``Machine``; the speed guard's learnt first steps), and returns a ``Plan``: the grid, the
speed guard's steps and the one the job begins at, the container, where HDR is tone-mapped, which
files a run needs before it starts (a tone-map LUT, the subtitles to draw), and the output and
argv of a run starting at any segment. jobs.JobManager only carries a plan out: it reads the
keyframes, makes those files, starts and replaces runs, keeps the records.

The audio renditions depend on one thing a command may change on a running job, the track
chosen as DEFAULT: ``Plan.renditions(chosen)`` says them for that choice.
"""
import dataclasses

from . import grid as grid_
from . import renditions, speed_guard, step_memory
from .ffmpeg_command import (HlsOutput, build_audio_command, build_command, delivers_hevc, first_segment_s,
                             light_from_start, output_size, sprints, tone_mapper)


@dataclasses.dataclass(frozen=True)
class Machine:
    """What a plan needs of this worker: its settings and what its trials proved."""
    ffmpeg: str = "ffmpeg"
    preset: str = "veryfast"       # encoder_preset
    speed_guard_s: float = 0.0     # 0: the speed guard is off
    hardware_tonemap: tuple = ()   # the GPU tone-mappers trials proved ("opencl", "vaapi")
    vaapi_device: str | None = None

    @classmethod
    def of(cls, settings, hardware_tonemap=(), vaapi_device=None):
        return cls(ffmpeg=settings.ffmpeg_path, preset=settings.encoder_preset,
                   speed_guard_s=settings.speed_guard_s, hardware_tonemap=tuple(hardware_tonemap),
                   vaapi_device=vaapi_device)


@dataclasses.dataclass(frozen=True)
class Plan:
    # the JobSpec that began the stream: a later command for the same stream (another seek_time,
    # audio or subtitle choice) changes nothing a plan reads (JobSpec.same_stream), so the plan stays
    command: object
    spec: object            # what the job's first run does: the command at its first step
    machine: Machine
    grid: grid_.Grid
    steps: tuple            # speed_guard.Step, from the command's own to the lightest; () without a guard
    kind: str | None        # step_memory.kind_of: what the guard learns under (None without steps)
    stepped: str | None     # why the first run begins at a lighter step than asked (None: it does not)
    fmp4: bool              # HEVC in fMP4 segments; else MPEG-TS
    tone_mapper: str | None  # "cpu", "opencl", "vaapi", or None (nothing to tone-map)
    burns_text: bool        # a text subtitle is drawn in: its read-out must be ready before a run

    @property
    def needs_lut(self):
        """The CPU tone-map runs on a LUT made for the film's peak (tonemap.lut_for)."""
        return self.tone_mapper == "cpu"

    def output(self, start_number, *, waited=False, run_id=0):
        """Where and how a run from segment `start_number` writes; `waited`: a player waits for that
        segment (a jump, a seek), so it is made alone at the sprint preset where that helps."""
        return HlsOutput(self.command.job_id, self.grid, start_number, fmp4=self.fmp4,
                         sprint=waited and sprints(self.command, self.grid, start_number), run_id=run_id)

    def argv(self, spec, output, *, build=build_command, tonemap_lut=None, burn_file=None, fonts_dir=None):
        """The FFmpeg command of a run doing `spec` (the plan's command, at a step or from a later
        seek) into `output`; the files named are those the run's preparation made."""
        machine = self.machine
        return build(spec, output, ffmpeg=machine.ffmpeg, preset=machine.preset, vaapi_device=machine.vaapi_device,
                     hardware_tonemap=machine.hardware_tonemap, tonemap_lut=tonemap_lut, burn_file=burn_file,
                     fonts_dir=fonts_dir)


    def renditions(self, chosen):
        """The job's audio renditions (renditions.every: name -> Rendition), `chosen` the DEFAULT."""
        return renditions.every(self.command.media, chosen)

    def audio_output(self, name, start_number=0, run_id=0):
        """Where a run of audio rendition `name` from segment `start_number` writes: the video's
        grid and container."""
        return HlsOutput(self.command.job_id, self.grid, start_number, fmp4=self.fmp4, run_id=run_id, rendition=name)

    def audio_argv(self, spec, output, rendition, *, build=build_audio_command):
        """The FFmpeg command of a run of `rendition` into `output`."""
        return build(spec, output, rendition, ffmpeg=self.machine.ffmpeg)


def grid_of(spec, keyframes=None):
    """The job's grid (grid.py): whole frames for a transcode; `keyframes`, the source's (read
    from its index or scanned), for a remux. A function of the source and the command only, so
    every worker of a pool cuts the same segments."""
    media = spec.media
    if spec.force_remux:
        if keyframes is None:
            raise ValueError("a remux is cut on the source's keyframes: none were given")
        return grid_.for_remux(keyframes, media.duration_s, spec.segment_s, media.video.frame_rate,
                               origin_s=media.start_s)
    return grid_.for_transcode(media.duration_s, media.video.frame_rate, spec.segment_s,
                               first_segment_s(spec, spec.first_segment_s), origin_s=media.start_s)


def steps_of(spec, machine):
    """(the speed guard's steps for the command, its kind); ((), None) for a remux, a source of
    unknown size, or with the guard off."""
    size = output_size(spec)
    if spec.force_remux or size is None or not size[1] or not machine.speed_guard_s:
        return (), None
    light = light_from_start(spec, machine.preset, machine.hardware_tonemap)
    steps = speed_guard.steps(spec.encoder, machine.preset, size[1], spec.bitrate_bps, light=light)
    steps = speed_guard.on_one_stream(steps, fmp4=delivers_hevc(spec))
    return tuple(steps), step_memory.kind_of(spec, machine.preset, size[1], light)


def make(spec, machine, *, keyframes=None, learnt=lambda kind: 0):
    """The plan of the job `spec` asks for on this machine. `keyframes`: a remux's (the caller
    reads them); `learnt(kind)`: the step jobs of that kind last kept up at here (StepMemory)."""
    steps, kind = steps_of(spec, machine)
    first, stepped = spec, None
    if steps and 0 < (number := min(learnt(kind), len(steps) - 1)):
        first = dataclasses.replace(spec, step=steps[number])
        stepped = (f"began at {steps[number].describe()}: jobs like this one fell behind real time "
                   "at the steps before it on this machine")
    return Plan(command=spec, spec=first, machine=machine, grid=grid_of(spec, keyframes), steps=steps, kind=kind,
                stepped=stepped, fmp4=delivers_hevc(spec), tone_mapper=tone_mapper(spec, machine.hardware_tonemap),
                burns_text=bool(spec.burn and spec.subtitle.text))
