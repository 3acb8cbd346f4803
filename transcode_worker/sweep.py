"""The janitor at work: a thread that, every second or sooner, applies the janitor's rules
(janitor.py, pure) to every job of jobs.JobManager: pauses and resumes FFmpeg ahead of its players,
ends stalled runs, deletes idle and long-ended jobs, runs the speed guard, and keeps each job's
made segments within job_disk_limit_mb. A mixin of JobManager, as audio.AudioRuns is.
"""
import logging
import os
import threading
import time

from . import segments
from .janitor import Limits, janitor_verdict

log = logging.getLogger(__name__)


class Sweeps:
    """JobManager's janitor thread and its sweep (uses the manager's jobs, delete, guard, audio)."""

    def start_janitor(self):
        self._janitor_stop = threading.Event()
        self._janitor = threading.Thread(target=self._janitor_loop, name="janitor", daemon=True)
        self._janitor.start()

    def stop_janitor(self):
        if getattr(self, "_janitor", None) is not None:
            self._janitor_stop.set()
            self._janitor.join(5)

    def _janitor_loop(self):
        limits = Limits.from_settings(self.settings)
        interval = min(1.0, limits.shortest / 4)
        while not self._janitor_stop.wait(interval):
            try:
                self.sweep(limits)
            except Exception:  # never let the janitor die: it is what keeps the disk clean
                log.exception("janitor sweep failed")

    def sweep(self, limits, now=None):
        """Apply janitor_verdict to every job once; returns [(job_id, action, reason)]."""
        now = time.monotonic() if now is None else now
        done = []
        self.leftovers.reap()
        for job in self.jobs():
            self._keep_within_limit(job)
            self._sweep_audio(job, limits, now)
            verdict = janitor_verdict(job, now, limits)
            if verdict is None:
                if (stepped := self.guard(job)) is not None:
                    done.append((job.job_id, "step", stepped.stepped))
                continue
            action, reason = verdict
            if action in ("pause", "resume"):
                if getattr(job.supervisor, action)():
                    log.info("job %s: %s", job.job_id, reason, extra={"job_id": job.job_id})
                    done.append((job.job_id, action, reason))
            elif action == "stall":
                if job.supervisor.kill_stalled(reason):
                    done.append((job.job_id, action, reason))
            elif self.delete(job.job_id, reason=reason, run=job):
                done.append((job.job_id, action, reason))
        return done

    def _keep_within_limit(self, job):
        """Remove the made segments furthest from the viewer, the video's and its audio
        renditions', once the job keeps more than job_disk_limit_mb (segments.to_remove); a player
        that asks for one again gets it made."""
        watched = job.grid.segment_at(job.watched_position())
        owners = {None: (job.made, job.output)}
        owners.update({track.name: (track.made, track.output(job, 0, 0)) for track in list(job.audio.values())})
        sizes = {(name, number): size for name, (made, _) in owners.items() for number, size in made.sizes().items()}
        chosen = segments.to_remove(sizes, watched, self.settings.job_disk_limit_mb * 2 ** 20,
                                    number_of=lambda key: key[1])
        for name, number in chosen:
            made, output = owners[name]
            made.discard(number)
            try:
                os.unlink(job.folder / output.segment(number))
            except FileNotFoundError:
                pass
        if chosen:
            log.info("job %s: %d made segments removed, furthest from the viewer first (job_disk_limit_mb)",
                     job.job_id, len(chosen), extra={"job_id": job.job_id})
