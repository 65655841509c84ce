"""The Discord side's record of each job, by job id: the live one filed before the job is
submitted, one rebuilt from the job's reference for a job accepted elsewhere."""

from __future__ import annotations

import random
import time

from pipeline.params import RenderRequest
from placebot.discord_side.delivery import Deliveries, Delivery
from placebot.discord_side.discord_reporter import DiscordReporter
from placebot.jobs.backend import QueuePlace
from placebot.jobs.jobqueue import Job

RENDER = RenderRequest(steps=4, strength=0.5, recursions=1).resolve(random.Random(5))


def _delivery(user_id: int = 7) -> Delivery:
    return Delivery(user_id=user_id, channel_id=3000, guild_id=None, created_at=1.0,
                    webhook=(11, "token"))


def test_a_tracked_delivery_is_the_one_its_job_finds_until_forgotten():
    """The live record (what the user was shown) is found by the job's id, then forgotten."""
    deliveries, live = Deliveries(), _delivery()
    job = Job(user_id=7, render=RENDER, delivery=live.to_dict())
    deliveries.track(job.id, live)
    live.shown_position = 3
    assert deliveries.of(job) is live and deliveries.of(job).shown_position == 3
    deliveries.forget(job.id)
    assert deliveries.of(job) is not live and len(deliveries) == 1  # rebuilt from its reference


def test_a_job_accepted_elsewhere_gets_its_record_from_its_reference_once():
    """Rebuilt from the reference (webhook kept, its first word said), then kept: what is
    shown to its user carries over from one report to the next."""
    deliveries = Deliveries()
    job = Job(user_id=7, render=RENDER, delivery=_delivery().to_dict())
    record = deliveries.of(job)
    assert record.webhook == (11, "token") and record.acknowledged.is_set()
    record.shown_position = 0
    assert deliveries.of(job) is record


def test_the_records_kept_are_bounded_the_oldest_going_first():
    """Jobs whose ending another bot process delivered never pile up."""
    deliveries = Deliveries(kept=2)
    jobs = [Job(user_id=u, render=RENDER, delivery=_delivery(u).to_dict()) for u in (1, 2, 3)]
    lives = [_delivery(job.user_id) for job in jobs]
    for job, live in zip(jobs, lives, strict=True):
        deliveries.track(job.id, live)
    assert len(deliveries) == 2
    assert deliveries.of(jobs[2]) is lives[2] and deliveries.of(jobs[0]) is not lives[0]


class EditsTransport:
    """Stands in for DiscordTransport: records the live edits, each with its Delivery."""

    def __init__(self) -> None:
        self.edits: list[tuple[str, str]] = []

    async def edit_live(self, job, delivery, **fields) -> bool:
        self.edits.append((job.id, fields["content"]))
        return True


async def test_a_requeued_job_shows_its_place_again_even_where_it_showed_it_before():
    """The reporter's record, not the job, remembers the place shown: a plain refresh at the
    same place edits nothing, a job back from a stopped worker is shown its place again."""
    transport = EditsTransport()
    reporter = DiscordReporter(transport)
    live = Delivery(user_id=7, channel_id=3000, guild_id=None, created_at=time.time(),
                    webhook=(11, "token"))
    job = Job(user_id=7, render=RENDER, delivery=live.to_dict())
    reporter.deliveries.track(job.id, live)
    await reporter.acknowledge(job, QueuePlace(2))
    await reporter.queue_moved([(job, QueuePlace(2))])
    await reporter._positions_task
    await reporter.requeued(job, QueuePlace(2))
    await reporter._positions_task
    assert [text for _id, text in transport.edits] == [
        "Queued: position 2 (1 job ahead).", "Queued: position 2 (1 job ahead)."]
    assert live.acknowledged.is_set() and live.shown_position == 2
