"""One ETA formula: the place's ETA counts the running job, the ones ahead and its own."""

from __future__ import annotations

import pytest

from placebot.jobs.backend import QueuePlace
from placebot.jobs.eta import JobTimer, seconds_until_done


@pytest.mark.parametrize(("position", "seconds"), [(1, 4.0), (3, 8.0)])
def test_a_waiting_place_is_done_after_the_running_job_those_ahead_and_its_own(position,
                                                                             seconds):
    """At 2 s a job, place 1 is done in 4 s (the running job, then it), place 3 in 8 s."""
    assert seconds_until_done(position, 2.0) == seconds
    assert QueuePlace.at(position, 2.0) == QueuePlace(position, seconds)


def test_no_eta_before_a_job_was_timed_nor_for_a_job_that_runs():
    """None until the first job is timed; a running or ended job (place 0) shows none."""
    assert QueuePlace.at(2, None) == QueuePlace(2, None)
    assert QueuePlace.at(0, 2.0) == QueuePlace(0, None)
    timer = JobTimer()
    assert timer.eta(2) is None
    timer.record(2.0)
    assert timer.eta(2) == QueuePlace.at(2, timer.average).eta_s == 6.0
