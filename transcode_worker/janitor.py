"""The janitor's rules (pure): when a run is stalled, a job idle or an ended job forgotten, and
when throttling pauses and resumes FFmpeg. sweep.Sweeps carries them out."""
from dataclasses import dataclass

from .states import ACTIVE_STATES, ENDED_STATES, WRITING_STATES


@dataclass(frozen=True)
class Limits:
    """The janitor's limits, in seconds (0 turns one off)."""
    stall_s: float
    idle_s: float
    finished_s: float
    lead_s: float = 0.0  # throttling: pause FFmpeg this far ahead of every player

    @classmethod
    def from_settings(cls, settings):
        return cls(settings.stall_timeout_s, settings.idle_job_timeout_s, settings.finished_job_timeout_s,
                   settings.throttle_lead_s)

    @property
    def shortest(self):
        return min([v for v in (self.stall_s, self.idle_s, self.finished_s, self.lead_s) if v > 0] or [60.0])


def resume_due(job, lead_limit_s):
    """A paused job continues once a player is within half the lead (the gap keeps it from
    flapping between paused and running on every segment); an audio run held while the video
    makes its first segment is not throttling's to resume (audio.AudioTrack.hold)."""
    return job.paused and not job.held and job.lead_s() <= lead_limit_s / 2


def janitor_verdict(job, now, limits):
    """What the janitor does to `job` at monotonic time `now` (pure): None, ("stall", reason),
    ("expire", reason), ("pause", reason) or ("resume", reason). A stall is FFmpeg alive but its
    output time not moving; an active job expires when no player has asked for its playlist or a
    segment for idle_s; an ended job's folder likewise after finished_s. Throttling pauses a job
    more than lead_s ahead of the furthest segment asked for, and resumes it below half of that."""
    with job.changed:
        state = job.state
        if limits.lead_s and state in WRITING_STATES:
            lead = job.lead_s()
            if not job.paused and lead > limits.lead_s:
                return "pause", f"{lead:.0f}s ahead of every player: paused"
            if resume_due(job, limits.lead_s):
                return "resume", f"a player is {lead:.0f}s behind: resumed"
        if state in WRITING_STATES and not job.paused and limits.stall_s and now - job.last_progress_at >= limits.stall_s:
            return "stall", f"FFmpeg made no progress for {now - job.last_progress_at:.0f}s (stalled), killed"
        if state in ACTIVE_STATES and limits.idle_s and now - job.last_request_at >= limits.idle_s:
            return "expire", f"no player asked for the stream for {now - job.last_request_at:.0f}s: stopped, folder removed"
        if state in ENDED_STATES and limits.finished_s:
            idle = now - max(job.ended_mono or now, job.last_request_at)
            if idle >= limits.finished_s:
                return "expire", f"{state.value.lower()} and unwatched for {idle:.0f}s: folder removed"
    return None
