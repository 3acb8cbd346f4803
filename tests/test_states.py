import pytest

from transcode_worker.states import ALLOWED_TRANSITIONS, JobState, TransitionError, check_transition

ALLOWED = [
    (JobState.STARTING, JobState.RUNNING),
    (JobState.STARTING, JobState.STOPPING),
    (JobState.STARTING, JobState.COMPLETED),
    (JobState.STARTING, JobState.FAILED),
    (JobState.RUNNING, JobState.STOPPING),
    (JobState.RUNNING, JobState.COMPLETED),
    (JobState.RUNNING, JobState.FAILED),
    (JobState.STOPPING, JobState.STOPPED),
    (JobState.STOPPING, JobState.FAILED),
]


@pytest.mark.parametrize("old,new", ALLOWED)
def test_allowed_transitions_pass(old, new):
    check_transition(old, new)


REFUSED = [(old, new) for old in JobState for new in JobState if (old, new) not in ALLOWED]


@pytest.mark.parametrize("old,new", REFUSED)
def test_every_other_transition_is_refused(old, new):
    with pytest.raises(TransitionError):
        check_transition(old, new)


def test_ended_states_are_final():
    for ended in (JobState.COMPLETED, JobState.FAILED, JobState.STOPPED):
        assert not any(ended in sources for sources in ALLOWED_TRANSITIONS.values())


def test_states_are_strings_on_the_wire():
    assert JobState.RUNNING == "RUNNING" and str(JobState.FAILED) == "FAILED"
