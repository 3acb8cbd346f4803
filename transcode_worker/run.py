"""One run of FFmpeg filling a job's grid from some segment on: its state, progress and outcome,
with the job's lasting parts it carries (the grid, the record of made segments, where players are).

The next run of the same job (a player asked far ahead, a seek, the speed guard's step) is a new
Run under the same job id that carries those parts on (jobs.JobManager makes it); a run's FFmpeg is
supervised by supervisor.JobSupervisor, its segments put in place by segments.Collector.
"""
import threading
import time
from collections import deque
from datetime import datetime, timezone

from . import segments
from .multivariant import READ_BYTES
from .progress import percent
from .states import ENDED_STATES, WRITING_STATES, JobState, check_transition

# A player gives up on a segment whose first byte takes 10 s (hls.js, Shaka); a run that will not
# have the segment asked for within this many seconds (at its measured speed) is replaced by one
# that starts there, which has it in about the time one segment takes to make.
PATIENCE_S = 4.0
RUN_START_S = 1.0  # what starting a run costs before it makes its first frame (a seek, a decoder)
# A run that has not made its first frame yet is given longer before it counts as stuck: a busy
# machine or a slow disk can take seconds to open and seek, and a second run would only add load.
FIRST_FRAME_PATIENCE_S = 12.0
# A run started for a waiting player is not replaced for another segment sooner than this while
# that player still waits: two players far apart on one job would otherwise replace each other's
# run every second and neither get a segment. A sprint makes its one in about a second; the other
# player asks again and gets its run right after.
MIN_RUN_S = 2.0

SAMPLES = 600  # progress samples kept per run: 5 minutes of FFmpeg's twice-a-second reports

def _iso(ts):
    return None if ts is None else datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds")


class Run:
    """State, progress and outcome of one run of FFmpeg of a job, with the job's lasting parts (its
    grid and made segments, where players are). Every state change goes through change_state(),
    under `changed` (a Condition that wakes anyone waiting on the job)."""

    def __init__(self, spec, output, *, restarts=0, on_transition=None, made=None):
        self.spec = spec  # what this run of FFmpeg does
        self.command = spec  # what the orchestrator asked (a step down's run differs: its step)
        self.output = output
        self.made = made if made is not None else segments.Made()
        self.collector = segments.Collector(spec.folder, output, self.made, on_made=self.record_segment)
        self.plan = None  # plan.Plan: what the job does (its grid, steps, container), decided once
        self.steps = []  # speed_guard.Step list, from what was asked to the lightest; [] for a remux
        self.kind = None  # step_memory.kind_of: what the guard learns under
        self.guard = None  # the speed guard's last speed_guard.Decision on this run
        self.stepped = None  # why the job runs at a lighter step than asked (None: it does not)
        self.superseded = False  # a run replaced by the job's next: the job goes on
        self.go_on = None  # go_on(run, number): the manager starts the next run where this one ends
        self.samples = deque(maxlen=SAMPLES)  # (monotonic, output seconds) of this run, for the guard
        self.restarts = restarts
        self.state = JobState.STARTING
        self.pid = None
        self.exit_code = None
        self.progress = None
        self.speed = None  # FFmpeg's, as it says it ("2.5x")
        self.rate = None  # the same as a number: film seconds made per second
        self.position_s = self.from_s = output.grid.start(output.start_number)
        self.last_segment_id = None
        self.codecs = None  # what the multivariant playlist says FFmpeg wrote, once read
        self.subtitles = None  # subtitles.Extraction of the source's text tracks (None: none)
        self.audio = {}  # the job's audio renditions played so far: name -> audio.AudioTrack
        self.error = None
        self.stderr_tail = []
        self.created_at = self.updated_at = time.time()
        self.ended_at = None
        self.ended_mono = None
        # monotonic clocks for the janitor: when FFmpeg last moved forward, when a player last asked
        self.last_progress_at = self.last_request_at = self.started_mono = time.monotonic()
        self.changed = threading.Condition()
        self.supervisor = None
        self.paused = False  # SIGSTOPped on purpose (throttling): not a stall
        self.held = False  # an audio run paused while the video's run makes its first segment (audio.py)
        self.waited_for = False  # started for a player waiting on its first segment (a jump, a seek)
        self.furthest_requested = None  # the highest segment number a player asked for
        self.last_requested = None  # the segment a player asked for last: where the viewer is now
        self._on_transition = on_transition

    @property
    def job_id(self):
        return self.spec.job_id

    @property
    def folder(self):
        return self.spec.folder

    @property
    def grid(self):
        return self.output.grid

    @property
    def first_number(self):
        """The first segment of this run."""
        return self.output.start_number

    def change_state(self, new, **attrs):
        """The one way a job changes state; refuses transitions states.py does not allow."""
        with self.changed:
            old = self.state
            check_transition(old, new)
            self.state = new
            for name, value in attrs.items():
                setattr(self, name, value)
            self.updated_at = time.time()
            if new in ENDED_STATES:
                self.ended_at = self.updated_at
                self.ended_mono = time.monotonic()
            self.changed.notify_all()
            if self._on_transition is not None:
                self._on_transition(self, old, new)

    def record_pid(self, pid):
        """FFmpeg is spawned; listeners hear of it as a transition with old == new."""
        with self.changed:
            self.pid = pid
            if self._on_transition is not None:
                self._on_transition(self, self.state, self.state)

    def record_progress(self, snapshot):
        with self.changed:
            if snapshot.out_time_s is not None:
                self.samples.append((time.monotonic(), snapshot.out_time_s))
                # FFmpeg reports a small negative time before the first frame; its time is the run's
                position = self.output.seek_s + max(0.0, snapshot.out_time_s)
                if position > self.position_s or snapshot.ended:  # a stall repeats the same time
                    self.last_progress_at = time.monotonic()
                self.position_s = max(position, self.position_s)
                self.progress = percent(0.0, self.position_s, self.spec.media.duration_s)
            self.speed = snapshot.speed or self.speed
            if snapshot.speed:
                self.rate = float(snapshot.speed.rstrip("x")) or None
            self.updated_at = time.time()

    def record_request(self, segment=None):
        """A player asked for the playlist or a segment: the job is being watched."""
        self.last_request_at = time.monotonic()
        if segment is not None:
            self.last_requested = segment
            if self.furthest_requested is None or segment > self.furthest_requested:
                self.furthest_requested = segment

    def watched_position(self):
        """Film time of the start of the segment a player asked for last (where the viewer is, a
        seek back included), else of where the command asked the stream to begin."""
        with self.changed:
            last = self.last_requested
        if last is None or not 0 <= last < len(self.grid):
            return self.command.seek_s
        return self.grid.start(last)

    def lead_s(self):
        """How much film this run has made beyond the furthest segment a player asked for (from
        the run's start while nobody has asked for one of its segments)."""
        if self.last_segment_id is None:
            return 0.0
        furthest = self.furthest_requested
        made_to = self.grid.end(self.last_segment_id)
        if furthest is None or furthest < self.first_number:
            return max(0.0, made_to - self.grid.start(self.first_number))
        return max(0.0, made_to - self.grid.end(min(furthest, len(self.grid) - 1)))

    def record_segment(self, number):
        """Segment `number` is made (segments.Collector): the first one makes the run RUNNING."""
        with self.changed:
            if self.last_segment_id is None or number > self.last_segment_id:
                self.last_segment_id = number
            if self.state is JobState.STARTING:  # STARTING -> RUNNING: the stream is playable
                self.change_state(JobState.RUNNING)
            self.changed.notify_all()

    def collect(self):
        """Put this run's newly complete segments in place (segments.Collector)."""
        return self.collector.collect()

    def wait_changed(self, timeout):
        with self.changed:
            self.changed.wait(timeout)

    def read_head(self, name):
        """The first bytes of a file of the job (its tables and first packets say what it holds)."""
        with open(self.folder / name, "rb") as fh:
            return fh.read(READ_BYTES)

    def next_to_make(self):
        """The first segment after this run's last that is not made, or None: the film's end."""
        return next((n for n in range(self.output.end_number + 1, len(self.grid)) if n not in self.made), None)

    def made_to_s(self):
        """The film time this run has got to: its last segment's end, or FFmpeg's position."""
        made_to = self.grid.end(self.last_segment_id) if self.last_segment_id is not None else 0.0
        return max(self.position_s, made_to)

    def eta_s(self, number):
        """Seconds until this run has made segment `number`, at its measured speed; None when it
        never will (it starts after it, ends before it, or has ended)."""
        if self.state not in WRITING_STATES or not self.first_number <= number <= self.output.end_number:
            return None
        moved = self.position_s > self.from_s or self.last_segment_id is not None
        patience = PATIENCE_S if moved else FIRST_FRAME_PATIENCE_S
        if not self.paused and time.monotonic() - self.last_progress_at > patience:
            return None  # it has not moved for a while (a hung read): it will not get there
        made_to = self.grid.end(self.last_segment_id) if self.last_segment_id is not None else None
        missing = self.grid.end(number) - self.made_to_s()
        if missing <= 0:
            # passed, and not made: trimmed since (job_disk_limit_mb), this run will not make it
            # again (past two segments' time: a segment FFmpeg has just finished may not be listed yet)
            return 0.0 if number in self.made or -missing < 2 * self.grid.target_s else None
        rate = self.rate
        if rate is None and made_to is not None:  # FFmpeg has not said yet: what it made so far
            rate = (made_to - self.grid.start(self.first_number)) / max(time.monotonic() - self.started_mono, 0.1)
        if rate is None:  # it has made nothing yet: its first segments only
            return 0.0 if number - self.first_number <= 2 else None
        return missing / rate

    def guard_report(self):
        """The speed guard's view of the job: its step, why, and what it measures (None for a
        remux: it has no steps)."""
        if not self.steps:
            return None
        step = self.spec.step or self.steps[0]
        guard = self.guard
        return {
            "step": step.number, "steps": len(self.steps), "height": step.height,
            "bitrate_bps": step.bitrate_bps, "preset": step.preset, "light_analysis": step.light,
            "reason": self.stepped,
            "speed": None if guard is None or guard.speed is None else round(guard.speed, 2),
            "cannot_keep_up": guard.reason if guard is not None and guard.stressed else None,
        }

    def to_dict(self, base_url):
        with self.changed:
            return {
                "job_id": self.job_id,
                "state": self.state.value,
                "source_path": self.spec.source_path,
                "output_path": str(self.folder),
                "configuration": self.command.configuration(),
                "tracks": self.command.tracks(),
                "playlist_url": f"{base_url.rstrip('/')}/{self.output.playlist}",
                "pid": self.pid,
                "progress": self.progress,
                "speed": self.speed,
                "position_s": round(self.position_s, 3),
                "duration_s": self.spec.media.duration_s,
                "segments": len(self.grid),
                "segments_made": len(self.made),
                "first_segment_id": self.first_number,
                "last_segment_id": self.last_segment_id,
                "restarts": self.restarts,
                "throttled": self.paused,
                "speed_guard": self.guard_report(),
                "created_at": _iso(self.created_at),
                "updated_at": _iso(self.updated_at),
                "ended_at": _iso(self.ended_at),
                "error": None if self.error is None else {
                    "message": self.error, "exit_code": self.exit_code, "ffmpeg_stderr_tail": self.stderr_tail,
                },
            }
