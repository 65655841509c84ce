"""How long a waiting job has left: the one ETA formula, for the in-process worker's timer and
the distributed mode's workers alike."""

from __future__ import annotations


def seconds_until_done(position: int, seconds_per_job: float | None) -> float | None:
    """Seconds until the job at this 1-based place is done: the job running now, the ones
    ahead of it and its own, each taking seconds_per_job (None: no job was timed yet)."""
    return None if seconds_per_job is None else seconds_per_job * (position + 1)


class JobTimer:
    """Moving average of seconds per job, for ETAs."""

    def __init__(self, initial: float | None = None, weight: float = 0.3):
        self.average = initial
        self.weight = weight

    def record(self, seconds_per_job: float) -> None:
        if self.average is None:
            self.average = seconds_per_job
        else:
            self.average += self.weight * (seconds_per_job - self.average)

    def eta(self, position: int) -> float | None:
        """Seconds until a job at this 1-based queue position is done (None before any data)."""
        return seconds_until_done(position, self.average)
