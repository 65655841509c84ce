import asyncio

import pytest

from pipeline.params import RenderJob
from placebot.jobs.jobqueue import (
    Job,
    JobQueue,
    JobState,
    QueueClosed,
    QueueFull,
    UserLimitReached,
    take_batch,
)


def _job(user, steps=50, model="1.4"):
    render = RenderJob(model=model, canvas="2017", x=0, y=0, seed=1, strength=0.8, steps=steps,
                       recursions=3)
    return Job(user_id=user, render=render)


def test_positions_follow_submission_order():
    queue = JobQueue(max_size=10, user_max=1)
    jobs = [_job(user) for user in range(3)]
    assert [queue.submit(job) for job in jobs] == [1, 2, 3]
    assert queue.position(jobs[2]) == 3


def test_per_user_limit_refuses_with_a_reason():
    queue = JobQueue(max_size=10, user_max=1)
    queue.submit(_job(7))
    with pytest.raises(UserLimitReached, match="you already have 1 job waiting"):
        queue.submit(_job(7))


def test_queue_bound_refuses_with_a_reason():
    queue = JobQueue(max_size=2, user_max=5)
    queue.submit(_job(1))
    queue.submit(_job(2))
    with pytest.raises(QueueFull, match=r"the queue is full \(2 jobs waiting\)"):
        queue.submit(_job(3))


async def test_batch_takes_compatible_jobs_only_up_to_the_limit():
    queue = JobQueue(max_size=10, user_max=1)
    a, b, c, d = _job(1), _job(2, steps=20), _job(3), _job(4)
    for job in (a, b, c, d):
        queue.submit(job)
    batch = await queue.next_batch(max_batch=2)
    assert batch == [a, c] and all(job.state is JobState.RUNNING for job in batch)
    assert queue.waiting == [b, d] and queue.position(b) == 1


def test_a_job_marked_alone_is_batched_with_no_other():
    """A job whose last try ended with its process runs by itself, and is no one's mate."""
    a, b, c, d = _job(1), _job(2), _job(3), _job(4)
    b.alone = c.alone = True
    waiting = [a, b, c, d]
    assert take_batch(waiting, 4) == [a, d]
    assert take_batch(waiting, 4) == [b]
    assert take_batch(waiting, 4) == [c] and waiting == []


async def test_running_jobs_still_count_for_the_user_limit():
    queue = JobQueue(max_size=10, user_max=1)
    queue.submit(_job(1))
    await queue.next_batch(1)
    with pytest.raises(UserLimitReached):
        queue.submit(_job(1))


async def test_next_batch_waits_for_a_submission():
    queue = JobQueue(max_size=10, user_max=1)
    waiter = asyncio.create_task(queue.next_batch(4))
    await asyncio.sleep(0.01)
    assert not waiter.done()
    job = _job(1)
    queue.submit(job)
    assert await asyncio.wait_for(waiter, 1) == [job]


def test_cancel_removes_a_waiting_job_and_moves_the_rest_up():
    queue = JobQueue(max_size=10, user_max=1)
    a, b = _job(1), _job(2)
    queue.submit(a)
    queue.submit(b)
    assert queue.cancel(a, "by user")
    assert a.state is JobState.CANCELLED and queue.position(b) == 1


def test_closed_queue_refuses_new_jobs_and_keeps_waiting_ones():
    queue = JobQueue(max_size=10, user_max=1)
    kept = _job(1)
    queue.submit(kept)
    assert queue.close() == [kept]
    with pytest.raises(QueueClosed, match="restarting"):
        queue.submit(_job(2))
