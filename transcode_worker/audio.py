"""A job's audio renditions (renditions.py says which), each made where its player asks.

An AudioTrack is one rendition of one job: the record of its made segments (kept for the job's
life, as the video's) and its current run of FFmpeg, if any. A run reads only its track and
writes its segments on the job's grid and clock (ffmpeg_command.build_audio_command), so a run
started at a player's segment joins what any other run made. Runs are started by a player's
request only (JobManager.want_audio): a track nobody plays costs nothing, and a track switch
starts the new track's run at the player's position. A run goes to the film's end and is paused
by the janitor's throttle like the video's, LEAD_S ahead of its player; a track nobody asked for
in IDLE_S has its run stopped (the viewer switched away from it).
"""
import dataclasses
import logging
import os
import subprocess
import threading
import time

from . import inputs, segments
from .janitor import janitor_verdict
from .refused import Refused
from .run import MIN_RUN_S, PATIENCE_S, RUN_START_S, Run
from .states import ACTIVE_STATES, WRITING_STATES, JobState
from .supervisor import REAP_WAIT_S, JobSupervisor

log = logging.getLogger(__name__)

IDLE_S = 30.0  # a rendition nobody asked a segment of for this long: its run is stopped
RUNS_PER_JOB = 3  # audio runs of one job at once (the DEFAULT, a switch's, one more)
# A rendition's run is paused this far ahead of its player (throttle_lead_s, if less): a player
# buffers up to 30 s (hls.js); racing further ahead only spends a core on sound the viewer may
# never hear (a switch, a jump), 1.5 % of a core per second of film for stereo AAC.
LEAD_S = 30.0


def lead_limit(throttle_lead_s):
    """How far ahead of its player a rendition's run is paused (0: throttling is off)."""
    return min(throttle_lead_s, LEAD_S) if throttle_lead_s else 0.0
RETRY_AFTER_FAILURE_S = 10.0  # a run that failed at a segment is not started there again sooner


class AudioTrack:
    """One audio rendition of a job: its made segments and its current run (a Run whose output
    names the rendition). Looks like a Run to a waiting player (state, collect, wait_changed)."""

    def __init__(self, job_id, rendition, video_starting=lambda: False):
        self.job_id = job_id
        self.rendition = rendition
        self.video_starting = video_starting  # () -> True while the job's video run makes its first segment
        self.made = segments.Made()
        self.run = None
        self.failed = {}  # first segment of a run that FAILED -> (monotonic, its error)
        self.last_request_at = time.monotonic()
        self.furthest_requested = None
        self.superseded = False  # (never: a track's runs are replaced, the track stays)
        self._lock = threading.Lock()

    @property
    def name(self):
        return self.rendition.name

    @property
    def state(self):
        """RUNNING while a player's request can still have segments made (a run is started where
        it asks); FAILED once its FFmpeg failed where the player asks (error says why). A run that
        could not start (a full disk, no thread) is not: the player is told to retry."""
        return JobState.FAILED if self.error else JobState.RUNNING

    @property
    def error(self):
        run = self.run
        if run is not None and run.state is JobState.FAILED and not run.superseded and run.pid is not None:
            return f"audio rendition {self.name}: {run.error}"
        return None

    def output(self, job, start_number, run_id):
        return job.plan.audio_output(self.name, start_number, run_id)

    def segment_path(self, job, number, extension):
        """Where segment `number` of this rendition is once made; None for a name it never has."""
        output = self.output(job, 0, 0)
        if not 0 <= number < len(job.grid) or extension != output.segment_extension:
            return None
        return job.folder / output.segment(number)

    def init_path(self, job):
        name = self.output(job, 0, 0).init_segment
        return job.folder / name if name else None

    def record_request(self, number):
        with self._lock:
            self.last_request_at = time.monotonic()
            if number is not None and (self.furthest_requested is None or number > self.furthest_requested):
                self.furthest_requested = number
            run = self.run
        if run is not None and number is not None:
            run.record_request(number)

    def collect(self):
        run = self.run
        return run.collect() if run is not None else []

    def wait_changed(self, timeout):
        run = self.run
        if run is not None:
            run.wait_changed(timeout)
        else:
            time.sleep(timeout)

    def needs_run(self, number, patience_s, start_s):
        """True when segment `number` is not made and the current run will not make it in time:
        within patience_s at its speed, or before a new run could (start_s plus the segment at
        that speed). A paused run that will make it is resumed."""
        if number in self.made:
            return False
        if self.left_behind(number):
            return True
        run = self.run
        if run.paused:
            run.supervisor.resume()
        eta = run.eta_s(number)
        fresh = start_s + run.grid.duration(number) / (run.rate or 1.0)
        return eta is None or eta > max(patience_s, fresh)

    def left_behind(self, number):
        """True when segment `number` is not made and the track's run will not get to it soon: it
        has none that writes, one that starts after it or ends before it, or one with more than
        LEAD_S of film to make first (the player jumped past it: a run started there makes the
        segment in a tenth of a second, and leaves the cores to the jump's video run)."""
        if number in self.made:
            return False
        run = self.run
        if run is None or run.state not in WRITING_STATES or not run.first_number <= number <= run.output.end_number:
            return True
        return run.grid.start(number) - run.made_to_s() > LEAD_S

    def failed_at(self, number, now=None):
        """(why, for now only) when a run started at `number` failed lately, else None. For now
        only: it never started its FFmpeg (a full disk, no thread), which a retry may get past."""
        now = time.monotonic() if now is None else now
        at, error, transient = self.failed.get(number, (None, None, None))
        return (error, transient) if at is not None and now - at < RETRY_AFTER_FAILURE_S else None

    def new_run(self, job, start_number, run_id):
        """The Run of a run of this rendition at `start_number` (its FFmpeg not started): it
        writes into the track's record; its state is its own, never the job's (no listener)."""
        run = Run(job.spec, self.output(job, start_number, run_id), made=self.made, on_transition=self._changed)
        run.furthest_requested = self.furthest_requested
        run.last_requested = self.furthest_requested
        return run

    def replace(self, run):
        """`run` is the track's run from now on; returns the one it replaces (to abandon)."""
        with self._lock:
            old, self.run = self.run, run
        return old

    def idle(self, now):
        return now - self.last_request_at >= IDLE_S

    def hold(self):
        """While the job's video run makes its first segment (a start, a jump: the player waits
        for it), the track's run, its own first segment made, is paused, so the video's run has
        the CPU: sound ahead of the player can wait half a second, the picture the player waits for
        cannot. The video's first segment, or its run's end, releases it; a player's request for
        a segment it has not made resumes it (needs_run)."""
        run = self.run
        if run is None or run.state is not JobState.RUNNING or not run.supervisor.pause():
            return
        run.held = True
        if not self.video_starting():  # its first segment came meanwhile: release() may have missed it
            self.release()

    def release(self):
        run = self.run
        if run is not None and run.held:
            run.supervisor.resume()  # (held no more)

    def _changed(self, run, old, new):
        if old is JobState.STARTING and new is JobState.RUNNING and run is self.run and self.video_starting():
            self.hold()
        if new is JobState.FAILED and not run.superseded:  # not started there again at once
            self.failed[run.first_number] = (time.monotonic(), run.error, run.pid is None)


class AudioRuns:
    """JobManager's part that carries out audio renditions: their runs started where players ask,
    stopped, swept by the janitor. A mixin of jobs.JobManager: it uses the manager's lock, jobs,
    leftovers, gate and source opening."""

    def audio_track(self, job, name):
        """The job's AudioTrack `name` (made on a player's first request of it), or None when the
        job offers no such rendition."""
        with self._lock:
            track = job.audio.get(name)
            if track is None:
                rendition = job.plan.renditions(job.command.audio).get(name)
                if rendition is None:
                    return None
                track = job.audio[name] = AudioTrack(job.job_id, rendition, lambda: self._video_starting(job.job_id))
            return track

    def _video_starting(self, job_id):
        """True while the job's video run has made no segment yet (the player waits for it)."""
        video = self._jobs.get(job_id)
        return video is not None and video.state is JobState.STARTING

    def _hold_audio(self, job):
        """`job`'s video run has just started (a jump, a step, a go-on run): its audio runs that
        have made their first segment, and keep nobody waiting, wait for the video's first
        (AudioTrack.hold). Called with the lock held."""
        waited = {key[2] for key in self._waiters if key[0] == job.job_id and len(key) == 3}
        for track in job.audio.values():
            if track.name not in waited:
                track.hold()

    def _release_audio(self, job, old, new):
        """A listener of the video's runs: once `job`'s run has made its first segment, or ended,
        its held audio runs go on (the picture its player waited for is made, or will not be)."""
        if old is JobState.STARTING and new is not JobState.STARTING and not self._video_starting(job.job_id):
            for track in list(job.audio.values()):
                track.release()

    def want_audio(self, job_id, name, number):
        """A player asked for segment `number` of audio rendition `name`, not made yet: let its
        run make it when it will in time, else start the rendition's run there (the video runs
        on untouched). Refused when it cannot be: the job failed or a run failed there just now
        (404), the source cannot be opened for now, an ended job finds no slot, the worker is
        unhealthy (503). The source is opened with no lock held."""
        with self._lock:
            job, track = self._audio_wants_a_run(job_id, name, number)
        if track is None:
            return
        source_fd = self._open_source(job.spec)
        with self._lock:
            try:
                job, again = self._audio_wants_a_run(job_id, name, number)
            except Refused:
                os.close(source_fd)
                raise
            if again is not track:  # another request started it meanwhile (or the job went)
                os.close(source_fd)
                return
            self._start_audio(job, track, number, source_fd)
        self.leftovers.empty_bin()

    def _audio_wants_a_run(self, job_id, name, number):
        """want_audio's decision, with the lock held: (job, track) to start a run of, else
        (None, None)."""
        job = self._jobs.get(job_id)
        track = job.audio.get(name) if job is not None else None
        if track is None or not self._accepting or not 0 <= number < len(job.grid):
            return None, None
        if not track.needs_run(number, PATIENCE_S, RUN_START_S):
            return None, None
        if job.state is JobState.FAILED:
            raise Refused(404, f"job {job_id} failed: {job.error}")
        if (failed := track.failed_at(number)) is not None:
            error, transient = failed
            raise Refused(503 if transient else 404, f"audio rendition {name}: {error}", retry_after=5)
        run = track.run
        if run is not None and run.state in WRITING_STATES and time.monotonic() - run.started_mono < MIN_RUN_S \
                and self._waiters[(job_id, run.first_number, name)]:
            return None, None  # another player's run, just started: it makes its segment first
        stuck = next(iter(self.leftovers.stuck(job_id)), None)
        if stuck is not None:
            raise Refused(503, f"job {job_id}: its FFmpeg pid {stuck.run.pid} has not ended after SIGKILL: no new "
                               "run until it does", retry_after=5)
        if job.state not in ACTIVE_STATES:  # an ended job takes a slot again: if there is one
            self._admit(None, job_id)
        elif reason := self._gate():
            raise Refused(503, f"this worker cannot start FFmpeg now: {reason}", retry_after=30)
        return job, track

    def _start_audio(self, job, track, number, source_fd):
        """Start a run of `track` at segment `number` in the job's folder, replacing its run
        before (abandoned: it does not hold the lock up). Called with the lock held."""
        run = track.new_run(job, number, next(self._run_ids))
        argv, failure = [], None
        try:
            argv = job.plan.audio_argv(job.spec, run.output, track.rendition, build=self._build_audio)
            argv = [inputs.fd_url(source_fd) if arg == inputs.url(job.spec.source) else arg for arg in argv]
            run.collector.prepare()
        except (OSError, ValueError, subprocess.SubprocessError) as exc:
            failure = f"cannot start the run: {exc}"
        run.supervisor = JobSupervisor(run, argv, umask=self.ffmpeg_umask, source_fd=source_fd, failure=failure)
        old = track.replace(run)
        if old is not None:
            self._abandon(old)
        # a film of many tracks played by a client that asks for all of them: a few runs at once,
        # those asked for longest ago stopped first (their players switched away)
        running = sorted((t for t in job.audio.values() if t is not track and t.run is not None
                          and t.run.state in WRITING_STATES), key=lambda t: t.last_request_at)
        for other in running[:max(0, len(running) - (RUNS_PER_JOB - 1))]:
            self._abandon(other.replace(None))
        try:
            run.supervisor.start()
        except RuntimeError as exc:  # no thread to be had: FAILED, with why
            os.close(source_fd)
            run.change_state(JobState.FAILED, error=f"cannot start the run: {exc}")
            return
        run.supervisor.wait_spawned()
        log.info("job %s: audio rendition %s from segment %d", job.job_id, track.name, number,
                 extra={"job_id": job.job_id})

    def _abandon_audio(self, job):
        """Stop every audio run of `job` without waiting (the job is replaced by another stream).
        Called with the lock held."""
        for track in job.audio.values():
            run = track.replace(None)
            if run is not None:
                self._abandon(run)

    def _stop_audio(self, job):
        """Stop every audio run of `job` (it is being deleted) and wait for each to end, bounded;
        one that SIGKILL does not end keeps the job's folder, and a slot, until it does (leftovers).
        True when all have ended. Not called with the lock held."""
        ended = True
        for track in job.audio.values():
            run = track.replace(None)
            if run is not None and not run.supervisor.stop(0, kill_now=True):
                run.superseded = True
                self.leftovers.add(run, killed_at=time.monotonic() - REAP_WAIT_S, folder=job.folder)
                ended = False
        return ended

    def _sweep_audio(self, job, limits, now):
        """The janitor on the job's audio runs: throttled and stall-checked as the video's;
        stopped once nobody has asked for their rendition for IDLE_S (a track switched from) or
        the job failed; one killed that has not ended is counted as stuck (leftovers)."""
        for track in list(job.audio.values()):
            run = track.run
            if run is None:
                continue
            writing = run.state in WRITING_STATES
            if job.state is JobState.FAILED or writing and track.idle(now) or (
                    run.state is JobState.FAILED and not run.supervisor.ended()):
                with self._lock:
                    if track.run is run:
                        self._abandon(track.replace(None))
                continue
            if not writing:
                continue
            verdict = janitor_verdict(run, now, dataclasses.replace(limits, idle_s=0, finished_s=0,
                                                                    lead_s=lead_limit(limits.lead_s)))
            if verdict is not None and verdict[0] in ("pause", "resume"):
                getattr(run.supervisor, verdict[0])()
            elif verdict is not None and verdict[0] == "stall":
                run.supervisor.kill_stalled(verdict[1])
