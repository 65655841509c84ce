"""The in-process backend's admission: a job that could not be written down costs nothing."""

import random

import pytest

from pipeline.params import RenderRequest
from placebot.discord_side.delivery import Delivery
from placebot.jobs.backend import UserLimits
from placebot.jobs.jobqueue import CooldownActive, JobQueue, UserLimitReached
from placebot.jobs.local_backend import JobNotKept, LocalBackend

RENDER = RenderRequest(steps=4, strength=0.5, recursions=1).resolve(random.Random(3))


class FullDisk:
    """A journal whose every write fails, as on a full data folder."""

    def add(self, *args) -> None:
        raise OSError(28, "No space left on device")


async def test_a_job_the_journal_refused_gives_back_its_place_and_its_cooldown():
    """The write fails: the job is refused in a line for its user, naming no internals (the
    error is logged), and the user may ask again at once (no place held, no cooldown)."""
    backend = LocalBackend(JobQueue(max_size=10, user_max=1), worker=None,
                           journal=FullDisk(), reporter=None,
                           user_cooldown_s=60.0)
    reservation = await backend.reserve(7)
    delivery = Delivery(user_id=7, channel_id=1, guild_id=None, created_at=0.0)
    with pytest.raises(JobNotKept, match="could not write your job down") as refused:
        await backend.submit(reservation, RENDER, delivery.to_dict())
    assert isinstance(refused.value.__cause__, OSError)
    again = await backend.reserve(7)  # neither UserLimitReached nor CooldownActive
    assert again.user_id == 7


async def test_a_servers_limits_apply_and_its_cooldown_counts_from_the_last_job_anywhere():
    """A job accepted under the owner's limits (no cooldown) starts a stricter server's
    cooldown too; that server's per-person limit holds where the owner's would not."""
    backend = LocalBackend(JobQueue(max_size=10, user_max=3), worker=None, journal=None,
                           reporter=None)
    await backend.reserve(8)  # the owner's: no cooldown, 3 jobs a person
    with pytest.raises(CooldownActive, match="cooldown"):
        await backend.reserve(8, UserLimits(user_max=3, cooldown_s=60.0))
    with pytest.raises(UserLimitReached, match="already have 1 job"):
        await backend.reserve(8, UserLimits(user_max=1, cooldown_s=0.0))
    await backend.reserve(8)  # the owner's own limits still let a second one in
