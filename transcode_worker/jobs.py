"""Jobs and the JobManager that creates, replaces, stops and forgets them.

A job is a viewer's stream of one film in one configuration: its grid (grid.py: every segment of
the film, listed in the VOD playlist before FFmpeg runs), the record of which segments are made
(segments.py), and one run of FFmpeg at a time filling the grid from some segment on (run.py). The
next run of the same job (a player asked far ahead, a seek, the speed guard's step) is a new Run
under the same id that carries the grid, the record and the folder on, so what is made stays made
and every segment is the same whichever run made it. A command that changes the pictures or the
sound (another bitrate, audio track or burned subtitle) is a new stream: its folder starts empty.
"""
import collections
import contextlib
import dataclasses
import itertools
import logging
import os
import shutil
import subprocess
import threading
import time

from . import hls_names, inputs, keyframes, plan, speed_guard, step_memory, tonemap
from .audio import AudioRuns
from .ffmpeg_command import build_audio_command, build_command
from .media import PROBE_TIMEOUT_S
from .leftovers import Leftovers
from .refused import Refused
from .run import MIN_RUN_S, PATIENCE_S, RUN_START_S, Run
from .schemas import seek_time
from .states import ACTIVE_STATES, ENDED_STATES, WRITING_STATES, JobState
from .supervisor import REAP_WAIT_S, JobSupervisor
from .sweep import Sweeps
from .validation import is_inside

log = logging.getLogger(__name__)


def _burn_files(spec, extraction):
    """The text track to draw, and its file's fonts, put in the job's folder for FFmpeg (which
    runs there): build_command's burn_file and fonts_dir, plain names no filter needs escaped."""
    stream = spec.subtitle.stream
    track = extraction.ass(stream) if extraction.ass(stream).exists() else extraction.vtt(stream)
    burn_file = hls_names.burn_file(spec.job_id, track.suffix[1:])
    shutil.copyfile(track, spec.folder / burn_file)
    fonts_dir = None
    if spec.media.fonts and extraction.fonts.is_dir():
        fonts_dir = hls_names.fonts_dir(spec.job_id)
        (spec.folder / fonts_dir).unlink(missing_ok=True)  # a speed guard's next run, in the same folder
        os.symlink(extraction.fonts, spec.folder / fonts_dir)
    return {"burn_file": burn_file, "fonts_dir": fonts_dir}


class JobManager(AudioRuns, Sweeps):
    """All jobs of this worker: capacity, idempotent commands, restarts, stops and clean-up.

    Nothing is created or deleted outside settings.segment_root.
    """

    def __init__(self, settings, *, ffmpeg_argv=build_command, audio_argv=build_audio_command, vaapi_device=None,
                 hardware_tonemap=(), subtitles=None, published=None, ffmpeg_umask=-1):
        self.settings = settings
        self.ffmpeg_umask = ffmpeg_umask  # JobSupervisor's umask
        self.published = published  # front.Published: the folders nginx sends ready files from
        self.learnt = step_memory.StepMemory(settings.spool_dir)  # the speed guard's first steps
        self.lut_dir = os.path.join(settings.spool_dir, "tonemap")  # tone-map LUTs, one per peak
        self.subtitles = subtitles  # SubtitleCache: each file's text tracks, extracted once
        if subtitles is not None:  # what a job reads from stays in the cache while the job is there
            subtitles.in_use = lambda: {j.subtitles.folder.name for j in self.jobs() if j.subtitles is not None}
        self.machine = plan.Machine.of(settings, hardware_tonemap, vaapi_device)  # what every plan is made for
        self._build, self._build_audio = ffmpeg_argv, audio_argv
        # the keyframes of remuxed sources (a remux's grid), a scan's kept on disk too
        self._known_keyframes = keyframes.Known(settings.ffprobe_path, os.path.join(settings.spool_dir, "keyframes"),
                                                PROBE_TIMEOUT_S)
        self._jobs = {}      # job_id -> current Run
        self._retiring = {}  # job_id -> Run being deleted (its folder still on disk)
        self._preparing = {}  # job_id -> commands for it being prepared (holding a slot)
        self.leftovers = Leftovers(settings.segment_root)  # FFmpeg killed, not ended; folders to remove
        self._waiters = collections.Counter()  # (job_id, segment) -> players waiting for it now
        self._run_ids = itertools.count(1)  # each run's staging folder is its own (HlsOutput.run_id)
        self._lock = threading.RLock()
        self._accepting = True
        self._listeners = [self._release_audio]  # (first: then the orchestrator link's)
        self._gate = lambda: None

    def set_gate(self, reason_to_refuse):
        """reason_to_refuse() -> None, or why new FFmpeg may not start now (the health report)."""
        self._gate = reason_to_refuse

    # -- observers (the orchestrator link subscribes here) -------------------------------------
    def add_listener(self, callback):
        """callback(job, old_state, new_state) on every transition of every job, and once with
        old_state == new_state when the job's FFmpeg is spawned (its pid is known). Called with the
        job's lock held: keep it short."""
        self._listeners.append(callback)

    def _notify(self, job, old, new):
        for callback in self._listeners:
            try:
                callback(job, old, new)
            except Exception:  # a listener's failure (a full spool_dir) never stops a job's change
                log.exception("job %s: a listener of its %s -> %s failed", job.job_id, old, new,
                              extra={"job_id": job.job_id})

    # -- queries ------------------------------------------------------------------------------
    def get(self, job_id):
        with self._lock:
            return self._jobs.get(job_id)

    def jobs(self):
        with self._lock:
            return list(self._jobs.values())

    def active_count(self, excluding=None):
        with self._lock:
            return sum(1 for j in self._jobs.values() if j.state in ACTIVE_STATES and j.job_id != excluding)

    # -- commands -----------------------------------------------------------------------------
    def admit(self, job_id):
        """Refused when no command for `job_id` can be taken now, whatever it asks (shutting down,
        being deleted, an unhealthy worker, at capacity with `job_id` not among the running):
        checked before the command is validated, so a refused command probes nothing either."""
        with self._lock:
            if job_id not in self._jobs:
                self._admit(None, job_id)

    def submit(self, spec):
        """Start, keep or replace the job for spec.job_id. Returns (job, started).

        Every check comes before anything is started: the subtitles' read-out, the tone-map LUT and
        a remux's keyframes are read only for a command that is taken (checked again after them,
        under the lock). The same stream from another seek_time keeps the job, its folder and its
        made segments: a run starts at the segment that holds the seek unless it is made."""
        with self._lock:
            current, retry = self._admit(spec)
            if retry:
                return current, False  # an orchestrator's retry: keep the progress
            # the slot is held while the command is prepared: commands that arrive together are
            # counted against capacity before any of them starts a read-out
            self._preparing[spec.job_id] = self._preparing.get(spec.job_id, 0) + 1
        try:
            job, started = self._prepared_submit(spec)
        finally:
            with self._lock:
                self._preparing[spec.job_id] -= 1
                if not self._preparing[spec.job_id]:
                    del self._preparing[spec.job_id]
        if started:
            self._start_default_audio(job)
        return job, started

    def _start_default_audio(self, job):
        """The DEFAULT audio rendition's run, at the segment the video begins at, as the video's
        starts: the player asks for it right after the video (it holds the multivariant playlist
        until the video's first segment is made), and finds it made."""
        chosen = job.command.audio
        track = self.audio_track(job, hls_names.audio_rendition(chosen.stream)) if chosen is not None else None
        if track is None:
            return
        try:
            self.want_audio(job.job_id, track.name, job.grid.segment_at(job.command.seek_s))
        except Refused as exc:  # the player's own request tries again, and is told why
            log.warning("job %s: the default audio rendition did not start: %s", job.job_id, exc,
                        extra={"job_id": job.job_id})

    def _prepared_submit(self, spec):
        extraction = self.subtitles.get(spec.source, spec.media) if self.subtitles is not None else None
        job_plan = self.plan_of(spec)
        if job_plan.burns_text:  # libass draws from the extracted track: wait for it once
            if not extraction.ready.wait(self.settings.playlist_wait_s):
                raise Refused(503, "the subtitles of this file are being read out (its first play): retry",
                              retry_after=5)
            if extraction.error is not None:
                raise Refused(422, f"subtitle stream {spec.subtitle.stream}: {extraction.error}")
        self._tonemap_lut(job_plan)  # a new LUT takes 0.15 s: made here, not under the lock
        grid = job_plan.grid
        source_fd = self._open_source(spec)  # here too, with no lock held: a hung share blocks the open
        used = False  # (a run that starts takes it, and closes it)
        try:
            with self._lock:
                current, retry = self._admit(spec)
                if retry:
                    return current, False
                number = grid.segment_at(spec.seek_s)
                if current is not None and current.command.same_stream(spec) and current.state is not JobState.FAILED:
                    current.command = dataclasses.replace(
                        current.command, seek_time=spec.seek_time, subtitle=spec.subtitle,
                        subtitle_chosen_by=spec.subtitle_chosen_by, audio=spec.audio, audio_chosen_by=spec.audio_chosen_by,
                        audio_stream=spec.audio_stream, audio_language=spec.audio_language)
                    current.record_request(number)
                    if number not in current.made and current.eta_s(number) is None or (
                            current.eta_s(number) or 0) > PATIENCE_S:
                        current = self._restart(current, number, f"seek to {spec.seek_s:.1f}s", spec=spec, waited=True,
                                                source_fd=source_fd)
                        used = True
                    return current, True
                restarts = 0
                if current is not None and current.command.other_subtitles_only(spec):
                    # other subtitles drawn in: the same viewer, from where they are
                    spec = dataclasses.replace(spec, seek_time=seek_time(current.watched_position()))
                    number = grid.segment_at(spec.seek_s)
                if current is not None:
                    self._abandon(current)  # another stream: the old output is thrown away, no SIGTERM grace
                    self._abandon_audio(current)
                    restarts = current.restarts + 1
                    self.leftovers.discard(current.folder)
                job = self._start(spec, job_plan, number, restarts, extraction, waited=True, source_fd=source_fd)
                used = True
                if job.supervisor.cannot_start:  # its files could not be made: nothing runs, nothing stays
                    self.leftovers.discard(spec.folder)
                    if current is not None:
                        self._jobs.pop(spec.job_id, None)
                    raise Refused(503, f"job {spec.job_id}: {job.supervisor.cannot_start}", retry_after=30)
                self._jobs[spec.job_id] = job
            return job, True
        finally:
            if not used:
                os.close(source_fd)
            self.leftovers.empty_bin()

    def plan_of(self, spec):
        """The job's plan (plan.py) on this machine: a remux's keyframes read from the source's
        index (or scanned once, then kept), the speed guard's first step from what it learnt."""
        keyframes = self._keyframes(spec) if spec.force_remux else None
        return plan.make(spec, self.machine, keyframes=keyframes, learnt=self.learnt.first_step)

    def _keyframes(self, spec):
        """The source's keyframes, read through a descriptor of the file checked to be inside the
        roots (inputs.open_source), as a run reads it: a file swapped since the command came is
        not followed."""
        fd = self._open_source(spec)
        try:
            return self._known_keyframes.times(spec.source, spec.media.video.index, fd)
        except ValueError as exc:
            raise Refused(422, f"cannot find the keyframes a remux is cut on: {exc}") from None
        finally:
            os.close(fd)

    def _admit(self, spec, job_id=None):
        """(the job's current Run or None, True when `spec` is a retry of its command); Refused
        when the command cannot be taken. Called with the lock held."""
        job_id = spec.job_id if spec is not None else job_id
        if not self._accepting:
            raise Refused(503, "the worker is shutting down", retry_after=5)
        if job_id in self._retiring:
            raise Refused(409, f"job {job_id} is being deleted; retry", retry_after=1)
        current = self._jobs.get(job_id)
        if spec is not None and current is not None and current.command.same_command(spec) and current.state not in (
                JobState.FAILED, JobState.STOPPED):
            return current, True
        reason = self._gate()
        if reason:
            raise Refused(503, f"this worker cannot take jobs now: {reason}", retry_after=30)
        if spec is not None:
            self._check_folder_free(spec)
        # jobs running, and commands being prepared (each holds its slot from its first check)
        # (a run that made its span, whose next is about to start, holds its slot too)
        # and every FFmpeg not reaped yet: a FAILED run's that SIGKILL has not ended, a stopped run's
        # and jobs being deleted (their FFmpeg in its grace)
        held = {j.job_id for j in self._jobs.values() if j.state in ACTIVE_STATES or j.superseded} | set(
            self._preparing) | set(self._retiring)
        dying = len(self.leftovers.dying()) + sum(
            1 for j in self._jobs.values() if j.state in ENDED_STATES and not j.supervisor.ended())
        if len(held - {job_id}) + dying >= self.settings.max_concurrent_jobs:
            raise Refused(503, f"at capacity: {self.settings.max_concurrent_jobs} jobs running", retry_after=5)
        return current, False

    def _check_folder_free(self, spec):
        for other in list(self._jobs.values()) + list(self._retiring.values()):
            if other.job_id != spec.job_id and (
                    is_inside(spec.folder, other.folder) or is_inside(other.folder, spec.folder)):
                raise Refused(422, f"output_path overlaps the folder of job {other.job_id}")
        dying = self.leftovers.holding(spec.folder)  # a deleted job's, removed once its FFmpeg ends
        if dying is not None:
            raise Refused(503, f"output_path overlaps the folder of job {dying.run.job_id}, whose FFmpeg has "
                               "not ended after SIGKILL", retry_after=30)

    def _open_source(self, spec):
        """The source opened for a run (inputs.open_source), or Refused: a file swapped since the
        command was validated is not followed outside the media roots."""
        try:
            return inputs.open_source(spec.source, self.settings.media_roots)
        except inputs.SourceUnavailable as exc:  # for now: the player (or command) tries again
            raise Refused(503, f"the source {exc}", retry_after=5) from None
        except ValueError as exc:
            raise Refused(422, f"the source {exc}") from None

    def _start(self, spec, job_plan, start_number, restarts, extraction=None, carry=None, waited=False,
               source_fd=None):
        """Start a run of FFmpeg for `spec` at segment `start_number` of `job_plan`: in a new folder,
        or as the next run of `carry` (the job's run before), in its folder, with its made segments.
        `waited`: a player waits for that segment (a jump, a seek): the run sprints where it can.
        `source_fd`: the source, opened already (_open_source); FFmpeg reads that very file.

        Returns the run, always: one whose files cannot be made (a full disk, a subtitle file gone
        with a NAS) is FAILED with the reason, which the heartbeat reports and waiting players hear,
        never a job left with no run."""
        if source_fd is None:
            source_fd = self._open_source(spec)
        job = self._new_run(spec, job_plan, start_number, restarts, extraction, carry, waited)
        argv, failure = [], None
        try:
            argv = self._prepare(job, carry)
            argv = [inputs.fd_url(source_fd) if arg == inputs.url(spec.source) else arg for arg in argv]
        except (OSError, ValueError, subprocess.SubprocessError) as exc:
            failure = f"cannot start the run: {exc}"
            log.warning("job %s: %s", spec.job_id, failure, extra={"job_id": spec.job_id})
            job.superseded = carry is None  # a new stream is refused (submit): no job to report ended
        job.supervisor = JobSupervisor(job, argv, umask=self.ffmpeg_umask, source_fd=source_fd,  # closes it
                                       failure=failure)
        try:
            job.supervisor.start()
        except RuntimeError as exc:  # no thread to be had (a tasks limit): FAILED, with why
            os.close(source_fd)
            job.supervisor.cannot_start = job.supervisor.cannot_start or f"cannot start the run: {exc}"
            job.change_state(JobState.FAILED, error=job.supervisor.cannot_start)
            job.superseded = carry is None
            return job
        job.supervisor.wait_spawned()
        return job

    def _new_run(self, spec, job_plan, start_number, restarts, extraction, carry, waited):
        """The Run object of _start: its output, steps and what it carries on (no file touched)."""
        output = job_plan.output(start_number, waited=waited, run_id=next(self._run_ids))
        command = spec if carry is None else carry.command  # what the orchestrator asked
        if carry is None:  # a new stream: at the step the plan begins at
            spec = dataclasses.replace(spec, step=job_plan.spec.step)
        job = Run(spec, output, restarts=restarts, on_transition=self._notify,
                  made=carry.made if carry is not None else None)
        job.plan, job.command, job.stepped = job_plan, command, job_plan.stepped
        job.steps, job.kind = list(job_plan.steps), job_plan.kind
        if carry is not None:
            job.codecs, job.stepped = carry.codecs, carry.stepped
            job.created_at, job.last_request_at = carry.created_at, carry.last_request_at
            job.furthest_requested, job.last_requested = carry.furthest_requested, carry.last_requested
        job.subtitles = extraction
        job.audio = carry.audio if carry is not None else {}  # name -> AudioTrack, as players ask
        job.go_on = self._go_on
        job.waited_for = waited
        return job

    def _prepare(self, job, carry):
        """The files of a run, before its FFmpeg starts: the job's folder (a new stream), the
        subtitles to burn, the tone-map LUT, the run's staging folder, nginx's link to the folder
        (published before FFmpeg writes, so nothing runs that the front cannot serve). Returns its
        FFmpeg command; OSError and the like when a file cannot be made."""
        spec = job.spec
        if carry is None:
            self.leftovers.discard(spec.folder)  # (what an earlier job left there)
            os.makedirs(spec.folder)
        burn = _burn_files(spec, job.subtitles) if job.plan.burns_text else {}
        argv = job.plan.argv(spec, job.output, build=self._build, tonemap_lut=self._tonemap_lut(job.plan), **burn)
        job.collector.prepare()
        if self.published is not None:
            self.published.publish(spec.job_id, spec.folder)
        return argv

    def _restart(self, job, number, reason, spec=None, step=None, waited=False, restarts=1, source_fd=None):
        """The job's next run, at segment `number` (the old run stopped first: one run per job),
        `restarts` more than the job counted. Called with the lock held; `source_fd`: the source
        opened already (else it is opened here, under the lock)."""
        spec = spec if spec is not None else job.spec
        if source_fd is None:
            source_fd = self._open_source(spec)  # Refused before the running FFmpeg is stopped
        job.superseded = True
        self._abandon(job)
        if step is not None:
            spec = dataclasses.replace(spec, step=step)
        elif job.spec.step is not None:
            spec = dataclasses.replace(spec, step=job.spec.step)
        new = self._start(spec, job.plan, number, job.restarts + restarts, job.subtitles, carry=job, waited=waited,
                          source_fd=source_fd)
        if spec is not job.spec:
            new.command = job.command
        self._jobs[job.job_id] = new
        self._hold_audio(new)
        log.info("job %s: a run from segment %d (%s%s)", job.job_id, number, reason,
                 ", its first segment at the sprint preset" if new.output.sprint else "", extra={"job_id": job.job_id})
        return new

    def _go_on(self, job, number):
        """`job`'s run made its span (a sprint's one segment, RUN_SEGMENTS), short of the film's end:
        the next run goes on from `number` (Run.next_to_make) at once, unless a player's request or
        a command has replaced it meanwhile. Called by the run's supervisor as it ends, so the next
        run starts on a thread of its own (stopping the old run joins that supervisor)."""
        def go_on():
            source_fd = None
            try:
                source_fd = self._open_source(job.spec)  # (no lock held: a hung share blocks the open)
                with self._lock:
                    if not self._accepting or self._jobs.get(job.job_id) is not job:
                        return
                    self._restart(job, number, f"goes on after segment {job.output.end_number}", restarts=0,
                                  source_fd=source_fd)
                    source_fd = None  # the run has it
            except Exception:  # the next request starts it instead
                log.exception("job %s: its next run did not start", job.job_id, extra={"job_id": job.job_id})
                job.superseded = False
            finally:
                if source_fd is not None:
                    os.close(source_fd)

        try:
            threading.Thread(target=go_on, name=f"go-on-{job.job_id}", daemon=True).start()
        except RuntimeError:  # no thread to be had (a tasks limit): the next request starts the run
            log.exception("job %s: its next run did not start", job.job_id, extra={"job_id": job.job_id})
            job.superseded = False

    def want(self, job_id, number):
        """A player asked for segment `number`, not made yet: let the running FFmpeg make it when it
        will within PATIENCE_S at its speed, or before a new run could, else start a run there
        (Refused when an ended job cannot take a slot again: at capacity, an unhealthy worker; when
        the source cannot be opened for now: out of descriptors, a share that went stale; and while
        the job's last run does not end after SIGKILL: a new one would hang on the same share).
        Racing requests start one run: the second finds the first's run about to make what it wants.
        The source is opened with no lock held (a hung share blocks the open)."""
        with self._lock:
            job = self._wants_a_run(job_id, number)
        if job is None:
            return
        try:
            source_fd = self._open_source(job.spec)
        except Refused as exc:
            log.warning("job %s: no run from segment %d: %s", job_id, number, exc, extra={"job_id": job_id})
            if exc.status == 503:  # the source cannot be opened for now: the player tries again
                raise
            job.supervisor.kill_stalled(str(exc))  # it is gone or was swapped: the job cannot go on
            return
        with self._lock:
            try:
                again = self._wants_a_run(job_id, number)
            except Refused:
                os.close(source_fd)
                raise
            if again is not job:  # another request started one meanwhile
                os.close(source_fd)
                return
            self._restart(job, number, f"a player asked for segment {number}", waited=True, source_fd=source_fd)
        self.leftovers.empty_bin()

    @contextlib.contextmanager
    def waiting(self, job_id, number, rendition=None):
        """A player waits for segment `number` of the job (of its audio `rendition`) for the block
        (a run started for it is not replaced for another segment at once: run.MIN_RUN_S)."""
        key = (job_id, number) if rendition is None else (job_id, number, rendition)
        with self._lock:
            self._waiters[key] += 1
        try:
            yield
        finally:
            with self._lock:
                self._waiters[key] -= 1
                if not self._waiters[key]:
                    del self._waiters[key]

    def _wants_a_run(self, job_id, number):
        """want()'s decision, with the lock held: the job's run to replace by one at `number`, or
        None when no new run is needed (or none may start: Refused)."""
        job = self._jobs.get(job_id)
        if job is None or not self._accepting or not 0 <= number < len(job.grid) or number in job.made:
            return None
        if job.state is JobState.FAILED or job.state is JobState.STOPPING:
            return None
        if job.superseded:  # its span made: its next run is about to start (Run.go_on)
            return None
        # a sprint's next run goes on right after it: the segment after a sprint's is its too
        span_end = job.output.end_number + (1 if job.output.sprint else 0)
        if job.state in WRITING_STATES and job.first_number <= number <= span_end:
            if job.paused:
                job.supervisor.resume()
            eta = job.eta_s(min(number, job.output.end_number))
            # a new run would first start, then make the segment at about the same speed
            fresh = RUN_START_S + job.grid.duration(number) / (job.rate or 1.0)
            if eta is not None and eta <= max(PATIENCE_S, fresh):
                return None
        if job.waited_for and job.state in WRITING_STATES and time.monotonic() - job.started_mono < MIN_RUN_S \
                and self._waiters[(job_id, job.first_number)]:
            return None  # another player's run, just started: it makes its segment first (run.MIN_RUN_S)
        stuck = next(iter(self.leftovers.stuck(job_id)), None)
        if stuck is not None:
            raise Refused(503, f"job {job_id}: its FFmpeg pid {stuck.run.pid} has not ended after SIGKILL (a hung "
                               "disk or network share?): no new run until it does", retry_after=5)
        if job.state not in ACTIVE_STATES:  # an ended job takes a slot again: if there is one
            self._admit(None, job_id)  # Refused: the player is told why, and to retry
        return job

    def _tonemap_lut(self, job_plan):
        """The LUT that tone-maps the job on the CPU (made the first time a film's peak is met),
        or None for the chain or a GPU."""
        if not job_plan.needs_lut:
            return None
        return tonemap.lut_for(job_plan.command.media.video, self.lut_dir, self.settings.ffmpeg_path)

    # -- the speed guard ------------------------------------------------------------------------
    def guard(self, job):
        """Run the speed guard on one job: step it down when it has fallen behind real time for
        speed_guard_s (returns the new Run), learn from it, note when it cannot keep up."""
        with job.changed:
            if not job.steps or job.paused or job.state not in WRITING_STATES or job.output.sprint:
                return None  # (a sprint's preset is not the job's: it says nothing of its speed)
            samples = list(job.samples)
        step = job.spec.step.number if job.spec.step is not None else 0
        # FFmpeg has opened the source and filled its pipeline once its first segment is out
        warmup = job.grid.duration(job.first_number)
        decision = speed_guard.decide(samples, warmup_out_s=warmup, behind_s=self.settings.speed_guard_s,
                                      step=step, last_step=len(job.steps) - 1)
        if decision.stressed and not (job.guard is not None and job.guard.stressed):
            log.warning("job %s cannot keep up: %s", job.job_id, decision.reason, extra={"job_id": job.job_id})
        job.guard = decision
        if decision.step != step:
            self.learnt.learn(job.kind, decision.step)
            return self.step_down(job, job.steps[decision.step], decision.reason)
        if step and step == self.learnt.first_step(job.kind) and speed_guard.has_headroom(samples, warmup_out_s=warmup):
            if self.learnt.learn(job.kind, step - 1):
                log.info("job %s: %.1fx real time at step %d: jobs like it will begin a step heavier",
                         job.job_id, decision.speed, step, extra={"job_id": job.job_id})
        return None

    def step_down(self, job, step, reason):
        """Stop `job`'s FFmpeg and start its next run at `step` from the first segment it had not
        made: same grid, folder and playlist, no discontinuity."""
        with self._lock:
            if self._jobs.get(job.job_id) is not job or job.state not in WRITING_STATES:
                return None
            job.collect()
            number = job.made.run_end(job.first_number) + 1
            if number >= len(job.grid):
                return None
            new = self._restart(job, number, reason, step=step)
            new.stepped = f"{reason} to {step.describe()} at {job.grid.start(number):.1f}s"
        log.warning("job %s: %s", job.job_id, new.stepped, extra={"job_id": job.job_id})
        return new

    def delete(self, job_id, reason=None, run=None):
        """Stop the job (SIGTERM, grace, SIGKILL), delete its folder, forget it. False if unknown,
        or (given `run`: the janitor's) if the job's run is no longer that one: a command has
        replaced it since. `reason` becomes the job's error, so the heartbeat reports why it ended."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or run is not None and job is not run:
                return False
            del self._jobs[job_id]
            if job.superseded and job.state in ENDED_STATES:  # its span made, its next run not begun:
                job.superseded = False  # its end is now the job's, which listeners hear of
                with job.changed:
                    self._notify(job, JobState.RUNNING, job.state)
            self._retiring[job_id] = job
            self._withdraw(job)
        if reason:
            with job.changed:
                job.error = reason
        try:
            audio_ended = self._stop_audio(job)  # (one that will not end keeps the folder: leftovers)
            video_ended = job.supervisor.stop(self.settings.stop_grace_s)
            if video_ended and audio_ended:
                self.leftovers.remove(job.folder)
            elif not video_ended:  # FAILED with why; its slot and folder are kept until it ends
                self.leftovers.add(job, killed_at=time.monotonic() - REAP_WAIT_S, folder=job.folder)
        finally:
            with self._lock:
                self._retiring.pop(job_id, None)
        log.info("job %s: %s", job_id, reason or "deleted", extra={"job_id": job_id})
        return True

    def close(self):
        """Refuse new jobs from now on (the first step of a shutdown); players waiting on a job
        are answered at once."""
        with self._lock:
            self._accepting = False
            jobs = list(self._jobs.values())
        for job in jobs:
            with job.changed:
                job.changed.notify_all()

    @property
    def closing(self):
        return not self._accepting

    def shutdown(self):
        """Refuse new jobs, stop every FFmpeg at once (bounded by the grace), remove their folders."""
        with self._lock:
            self._accepting = False
            jobs = list(self._jobs.values())
            self._jobs.clear()
        stoppers = [threading.Thread(target=self._stop_and_remove, args=(job,), name=f"stop-{job.job_id}")
                    for job in jobs]
        for thread in stoppers:
            thread.start()
        for thread in stoppers:
            thread.join()
        self.leftovers.empty_bin()

    def _withdraw(self, job):
        if self.published is not None:
            self.published.withdraw(job.job_id)  # nginx sends none of its files from now on

    def _stop_and_remove(self, job):
        self._withdraw(job)
        audio_ended = self._stop_audio(job)
        if job.supervisor.stop(self.settings.stop_grace_s) and audio_ended:
            self.leftovers.remove(job.folder)  # (one that will not end keeps it: the next start cleans up)

    # -- stopped runs whose FFmpeg has not ended yet --------------------------------------------
    def _abandon(self, run):
        """Stop `run`'s FFmpeg without waiting for it (the lock is held: its next run, or another
        stream, starts now); it holds a slot until it has ended (_admit counts self.leftovers)."""
        run.superseded = True  # its end, whenever it comes, is not the job's (heartbeat, run state)
        run.supervisor.abandon()
        if not run.supervisor.ended():
            self.leftovers.add(run)

    def stuck(self):
        """Why the worker is short of slots: each FFmpeg that SIGKILL has not ended (a hung disk or
        network share holds it in uninterruptible sleep), for the heartbeat and /healthz."""
        # (not the manager's lock: /healthz must answer while a command holds it)
        runs = [d.run for d in self.leftovers.stuck()]
        runs += [j for j in list(self._jobs.values()) if j.state is JobState.FAILED and not j.supervisor.ended()]
        return [f"FFmpeg pid {run.pid} of job {run.job_id} has not ended after SIGKILL (uninterruptible sleep: "
                "a hung disk or network share?); it holds a slot" for run in runs]
