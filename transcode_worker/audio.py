"""A job's audio renditions (renditions.py says which), each made where its player asks.

An AudioTrack is one rendition of one job: the record of its made segments (kept for the job's
life, as the video's) and its current run of FFmpeg, if any. A run reads only its track and
writes its segments on the job's grid and clock (ffmpeg_command.build_audio_command), so a run
started at a player's segment joins what any other run made. Runs are started by a player's
request only (JobManager.want_audio): a track nobody plays costs nothing, and a track switch
starts the new track's run at the player's position. A run goes to the film's end and is paused
by the janitor's throttle like the video's (throttle_lead_s ahead of its player); a track nobody
asked for in IDLE_S has its run stopped (the viewer switched away from it).
"""
import threading
import time

from . import segments
from .ffmpeg_command import HlsOutput
from .run import Run
from .states import WRITING_STATES, JobState

IDLE_S = 30.0  # a rendition nobody asked a segment of for this long: its run is stopped
RUNS_PER_JOB = 3  # audio runs of one job at once (the DEFAULT, a switch's, one more)
RETRY_AFTER_FAILURE_S = 10.0  # a run that failed at a segment is not started there again sooner


class AudioTrack:
    """One audio rendition of a job: its made segments and its current run (a Run whose output
    names the rendition). Looks like a Run to a waiting player (state, collect, wait_changed)."""

    def __init__(self, job_id, rendition):
        self.job_id = job_id
        self.rendition = rendition
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
        it asks); FAILED once a run failed where the player asks (error says why)."""
        return JobState.FAILED if self.error else JobState.RUNNING

    @property
    def error(self):
        run = self.run
        if run is not None and run.state is JobState.FAILED and not run.superseded:
            return f"audio rendition {self.name}: {run.error}"
        return None

    def output(self, job, start_number, run_id):
        return HlsOutput(job.job_id, job.grid, start_number, fmp4=job.output.fmp4, run_id=run_id,
                         rendition=self.name)

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
        run = self.run
        if run is None or run.state not in WRITING_STATES or not run.first_number <= number <= run.output.end_number:
            return True
        if run.paused:
            run.supervisor.resume()
        eta = run.eta_s(number)
        fresh = start_s + run.grid.duration(number) / (run.rate or 1.0)
        return eta is None or eta > max(patience_s, fresh)

    def failed_at(self, number, now=None):
        """Why a run started at `number` failed lately (None: it did not, or long enough ago)."""
        now = time.monotonic() if now is None else now
        at, error = self.failed.get(number, (None, None))
        return error if at is not None and now - at < RETRY_AFTER_FAILURE_S else None

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

    def _changed(self, run, old, new):
        if new is JobState.FAILED and not run.superseded:  # not started there again at once
            self.failed[run.first_number] = (time.monotonic(), run.error)
