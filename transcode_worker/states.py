"""The job state machine: states, their groups, and the transitions allowed.

No imports from the rest of the package, so every module can use it.
"""
from enum import Enum


class JobState(str, Enum):
    STARTING = "STARTING"    # FFmpeg spawned, no segment written yet
    RUNNING = "RUNNING"      # at least one segment is playable
    STOPPING = "STOPPING"    # a stop was asked; FFmpeg is being signalled
    COMPLETED = "COMPLETED"  # FFmpeg finished the whole stream
    FAILED = "FAILED"        # FFmpeg could not start, died, or produced nothing
    STOPPED = "STOPPED"      # stopped on request (DELETE, a new command, shutdown)

    def __str__(self):
        return self.value


ACTIVE_STATES = frozenset({JobState.STARTING, JobState.RUNNING, JobState.STOPPING})
ENDED_STATES = frozenset({JobState.COMPLETED, JobState.FAILED, JobState.STOPPED})
# States in which FFmpeg may still write segments, so a player waits for them.
WRITING_STATES = frozenset({JobState.STARTING, JobState.RUNNING})

# new state -> the states it may be entered from
ALLOWED_TRANSITIONS = {
    JobState.RUNNING: frozenset({JobState.STARTING}),
    JobState.STOPPING: frozenset({JobState.STARTING, JobState.RUNNING}),
    JobState.COMPLETED: frozenset({JobState.STARTING, JobState.RUNNING}),
    JobState.FAILED: frozenset({JobState.STARTING, JobState.RUNNING, JobState.STOPPING}),
    JobState.STOPPED: frozenset({JobState.STOPPING}),
    JobState.STARTING: frozenset(),  # only ever the first state of a job
}


class TransitionError(AssertionError):
    """A transition the state machine does not allow: a bug, never user input."""


def check_transition(old, new):
    """Raise TransitionError unless `old -> new` is allowed."""
    if old not in ALLOWED_TRANSITIONS[new]:
        raise TransitionError(f"job state {old} -> {new} is not allowed")
