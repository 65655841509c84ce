"""The worker against a recording reporter: every job taken ends in exactly one report."""

import asyncio
import threading
import time

import pytest

from pipeline.errors import ModelLoadError, OutOfMemory, RenderCancelled
from pipeline.params import RenderRequest
from placebot.jobs.jobqueue import Job, JobQueue
from placebot.jobs.watchdog import EngineStuck
from placebot.jobs.worker import JobTimeout, Worker
from tests.conftest import FAST
from tests.support.patience import PATIENCE_S


class RecordingReporter:
    def __init__(self):
        self.events = []
        self.done = asyncio.Event()
        self.started_event = asyncio.Event()

    def _add(self, *event):
        self.events.append(event)
        self.done.set()

    async def acknowledge(self, job, place):
        self.events.append(("acknowledge", job.id, place.position))

    async def loading(self, jobs):  # instead of started() when the model must load first
        self.events.append(("loading", [j.id for j in jobs]))
        self.started_event.set()

    async def started(self, jobs):
        self.events.append(("started", [j.id for j in jobs]))
        self.started_event.set()

    async def progress(self, job, number, frames):
        self.events.append(("progress", job.id, number))

    async def finished(self, job, result):
        self._add("finished", job.id, result)

    async def failed(self, job, error):
        self._add("failed", job.id, error)

    async def cancelled(self, job):
        self._add("cancelled", job.id)

    async def restarting(self, job):
        self.events.append(("restarting", job.id))

    async def queue_moved(self, waiting):
        self.events.append(("queue_moved", [(job.id, place.position) for job, place in waiting]))

    def endings(self, job):
        return [e for e in self.events if e[0] in ("finished", "failed", "cancelled")
                and e[1] == job.id]


class StubStore:
    def __init__(self):
        self.loaded = set()
        self.lowered = []

    def is_loaded(self, key):
        return key in self.loaded

    def get(self, key):
        self.loaded.add(key)

    def reload_lower(self, key):
        self.lowered.append(key)
        return "low" if len(self.lowered) == 1 else None


class StubRenderer:
    """Stands in for the engine where a test needs a fault the tiny model can't produce."""

    def __init__(self, *effects):
        self.store = StubStore()
        self.effects = list(effects)
        self.calls = 0

    def is_ready(self, jobs):
        return self.store.is_loaded(jobs[0].model)

    def prepare(self, jobs):
        self.store.get(jobs[0].model)

    def render(self, jobs, on_pass=None, should_stop=None):
        self.calls += 1
        effect = self.effects.pop(0) if self.effects else None
        self.store.get(jobs[0].model)  # as the engine does: the model first, then the passes
        if should_stop is not None and (reason := should_stop()):
            raise RenderCancelled(reason)
        if isinstance(effect, Exception):
            raise effect
        if callable(effect):
            effect(jobs)
        if effect == "slow":
            while not (reason := should_stop()):
                time.sleep(0.01)
            raise RenderCancelled(reason)
        return [f"result-{job.seed}" for job in jobs]


def _job(user=1, **changes):
    return Job(user_id=user, render=RenderRequest(seed=user, **{**FAST, **changes}).resolve())


async def _run(renderer, jobs, **options):
    queue = JobQueue(max_size=50, user_max=5)
    reporter = RecordingReporter()
    worker = Worker(queue, renderer, reporter, **options)
    for job in jobs:
        queue.submit(job)
    task = worker.start()
    try:
        await asyncio.wait_for(_all_ended(reporter, jobs), 60)
    finally:
        task.cancel()
    return reporter


async def _all_ended(reporter, jobs):
    while not all(reporter.endings(job) for job in jobs):
        reporter.done.clear()
        await reporter.done.wait()


async def test_real_render_reports_progress_and_one_result(renderer):
    """Progress after each pass but the last (the result shows that one), then one result."""
    job = _job(recursions=2)
    reporter = await _run(renderer, [job])
    [ending] = reporter.endings(job)
    assert ending[0] == "finished" and ending[2].job == job.render
    assert [e[2] for e in reporter.events if e[0] == "progress"] == [1, 2]


async def test_compatible_jobs_are_rendered_in_one_call():
    renderer = StubRenderer()
    jobs = [_job(user) for user in (1, 2, 3)]
    reporter = await _run(renderer, jobs, max_batch=4)
    assert renderer.calls == 1
    assert [reporter.endings(job)[0][2] for job in jobs] == ["result-1", "result-2", "result-3"]


async def test_an_exception_in_a_job_is_reported_and_the_next_job_runs(caplog):
    renderer = StubRenderer(RuntimeError("kaboom"))
    first, second = _job(1), _job(2, steps=6)
    reporter = await _run(renderer, [first, second], max_batch=1)
    assert reporter.endings(first)[0][0] == "failed"
    assert reporter.endings(second)[0][0] == "finished"
    assert "Traceback" in caplog.text and "kaboom" in caplog.text  # logged with its traceback


async def test_model_load_failure_is_told_and_the_next_job_tries_again():
    error = ModelLoadError("1.5", "some/repo", "OSError: no network")
    renderer = StubRenderer(error)
    first, second = _job(1), _job(2, steps=6)
    reporter = await _run(renderer, [first, second], max_batch=1)
    assert reporter.endings(first)[0][2] is error
    assert reporter.endings(second)[0][0] == "finished" and renderer.calls == 2


async def test_out_of_memory_is_retried_once_in_a_lower_mode():
    renderer = StubRenderer(OutOfMemory("full", "CUDA out of memory"))
    job = _job()
    reporter = await _run(renderer, [job])
    assert renderer.store.lowered == ["1.4"] and reporter.endings(job)[0][0] == "finished"


async def test_out_of_memory_twice_is_reported():
    renderer = StubRenderer(OutOfMemory("full", "oom"), OutOfMemory("low", "oom again"))
    job = _job()
    reporter = await _run(renderer, [job])
    assert reporter.endings(job)[0][0] == "failed"
    assert isinstance(reporter.endings(job)[0][2], OutOfMemory)


async def test_a_job_past_the_timeout_is_stopped_and_reported():
    renderer = StubRenderer("slow")
    job = _job()
    reporter = await _run(renderer, [job], job_timeout_s=0.2)
    [ending] = reporter.endings(job)
    assert ending[0] == "failed" and isinstance(ending[2], JobTimeout)


async def test_cancelling_a_running_job_stops_it():
    renderer = StubRenderer("slow")
    job = _job()
    queue = JobQueue(10, 1)
    reporter = RecordingReporter()
    worker = Worker(queue, renderer, reporter)
    queue.submit(job)
    task = worker.start()
    await asyncio.wait_for(reporter.started_event.wait(), 10)
    queue.cancel(job, "by user")
    await asyncio.wait_for(_all_ended(reporter, [job]), 10)
    task.cancel()
    assert reporter.endings(job) == [("cancelled", job.id)]


class HeldRenderer:
    """The real renderer, held at a gate in whatever thread the worker runs it on."""

    def __init__(self, inner, loop_thread: threading.Thread):
        self.inner = inner
        self.store = inner.store
        self.loop_thread = loop_thread
        self.thread: threading.Thread | None = None
        self.entered = threading.Event()
        self.gate = threading.Event()

    def is_ready(self, jobs):
        return self.inner.is_ready(jobs)

    def prepare(self, jobs):
        self.inner.prepare(jobs)

    def render(self, jobs, **kwargs):
        self.thread = threading.current_thread()
        self.entered.set()
        # Held on the loop's own thread, the gate could never be opened: fail at once instead.
        if self.thread is not self.loop_thread and not self.gate.wait(PATIENCE_S):
            raise TimeoutError("the test never opened the render gate")
        return self.inner.render(jobs, **kwargs)


async def test_the_event_loop_keeps_running_during_a_render(renderer):
    """The render runs in a thread: while it is held there, the loop still runs a coroutine
    to its end, and the job finishes once the render is let go."""
    held = HeldRenderer(renderer, threading.current_thread())
    job = _job(recursions=3)
    queue = JobQueue(10, 1)
    reporter = RecordingReporter()
    task = Worker(queue, held, reporter).start()
    queue.submit(job)
    try:
        assert await asyncio.to_thread(held.entered.wait, PATIENCE_S)

        async def meanwhile():  # its task runs only if the loop turns while the render waits
            await asyncio.sleep(0)
            return not reporter.endings(job)  # the job still rendering

        ran_while_held = await asyncio.wait_for(asyncio.ensure_future(meanwhile()), PATIENCE_S)
        held.gate.set()
        await asyncio.wait_for(_all_ended(reporter, [job]), PATIENCE_S)
    finally:
        held.gate.set()
        task.cancel()
    assert held.thread is not threading.current_thread() and ran_while_held
    assert reporter.endings(job)[0][0] == "finished"


@pytest.mark.parametrize("position", [1, 3])
def test_eta_grows_with_position(position):
    from placebot.jobs.worker import JobTimer

    timer = JobTimer()
    assert timer.eta(position) is None
    timer.record(2.0)
    timer.record(4.0)
    assert timer.eta(position) == pytest.approx(2.6 * (position + 1))


class SlowLoadingStore(StubStore):
    """A model that takes longer to load than the job timeout (a first download)."""

    def __init__(self, load_s):
        super().__init__()
        self.load_s = load_s

    def get(self, key):
        if key not in self.loaded:
            time.sleep(self.load_s)
            self.loaded.add(key)


async def test_loading_the_model_does_not_count_against_the_job_timeout():
    """A load longer than PLACE_JOB_TIMEOUT does not kill the job that triggered it."""
    renderer = StubRenderer()
    renderer.store = SlowLoadingStore(load_s=2.0)
    job = _job()
    reporter = await _run(renderer, [job], job_timeout_s=1.0)
    assert reporter.endings(job)[0][0] == "finished"
    assert ("loading", [job.id]) in reporter.events and ("started", [job.id]) in reporter.events


async def test_a_render_that_never_returns_is_failed_and_a_fresh_engine_asked_for():
    """Past the timeout plus the grace, a wedged render is reported failed with the reason,
    the stuck action runs once, and the job behind it is left waiting for the new engine."""
    wedged = threading.Event()
    renderer = StubRenderer(lambda jobs: wedged.wait())
    queue = JobQueue(max_size=10, user_max=5)
    reporter = RecordingReporter()
    asked = asyncio.Event()
    stuck = []
    worker = Worker(queue, renderer, reporter, max_batch=1, job_timeout_s=0.2,
                    stuck_grace_s=0.2, on_stuck=lambda error: (stuck.append(error), asked.set()))
    first, second = _job(1), _job(2)
    queue.submit(first)
    queue.submit(second)
    task = worker.start()
    try:
        await asyncio.wait_for(asked.wait(), 30)
        await asyncio.wait_for(task, 10)  # the worker stops taking jobs
    finally:
        wedged.set()
    [ending] = reporter.endings(first)
    assert ending[0] == "failed" and isinstance(ending[2], EngineStuck)
    assert "stopped responding" in str(ending[2]) and stuck == [ending[2]]
    assert reporter.endings(second) == [] and queue.waiting == [second]


async def test_without_a_stuck_action_the_worker_goes_on_with_a_fresh_thread():
    """A worker nobody can restart renders the next job on a new engine thread."""
    wedged = threading.Event()
    renderer = StubRenderer(lambda jobs: wedged.wait())
    first, second = _job(1), _job(2)
    try:
        reporter = await _run(renderer, [first, second], max_batch=1, job_timeout_s=0.2,
                              stuck_grace_s=0.2)
    finally:
        wedged.set()
    assert isinstance(reporter.endings(first)[0][2], EngineStuck)
    assert reporter.endings(second)[0][0] == "finished"


async def test_a_failed_batch_is_retried_job_by_job_so_only_the_bad_job_fails():
    """One job that breaks its batch fails alone; its batch mates get their results."""
    def break_on_seed_2(jobs):
        if any(job.seed == 2 for job in jobs):
            raise ValueError("malformed job: seed 2")

    renderer = StubRenderer(*[break_on_seed_2] * 4)
    jobs = [_job(user) for user in (1, 2, 3)]
    reporter = await _run(renderer, jobs, max_batch=4)
    assert [reporter.endings(job)[0][0] for job in jobs] == ["finished", "failed", "finished"]
    assert renderer.calls == 4  # the batch, then each job alone


async def test_the_worker_counts_a_try_in_the_journal_when_it_takes_a_job(tmp_path):
    """Taking a job counts one try for it, and only for it (the jobs behind it keep theirs)."""
    from placebot.jobs.journal import Journal

    journal = Journal(tmp_path / "jobs.sqlite3")
    taken, behind = _job(1), _job(2, steps=6)
    for job in (taken, behind):
        journal.add(job.id, job.user_id, job.render.to_dict(), {})
    held = threading.Event()
    renderer = StubRenderer(lambda jobs: held.wait(30))
    queue = JobQueue(max_size=10, user_max=5)
    reporter = RecordingReporter()
    worker = Worker(queue, renderer, reporter, max_batch=1, journal=journal)
    queue.submit(taken)
    queue.submit(behind)
    task = worker.start()
    try:
        await asyncio.wait_for(reporter.started_event.wait(), 10)
        assert (journal.tries(taken.id), journal.tries(behind.id)) == (1, 0)
    finally:
        held.set()
        task.cancel()


async def test_after_out_of_memory_the_model_reloads_before_the_timed_render():
    """The lower-mode reload happens before the retried render starts (and its timeout), not
    inside it."""

    class LoweringStore(StubStore):
        def __init__(self, events):
            super().__init__()
            self.events = events

        def get(self, key):
            if key not in self.loaded:
                self.events.append("load")
            super().get(key)

        def reload_lower(self, key):
            self.loaded.discard(key)  # as ModelStore does: unloaded, to load one mode lower
            self.events.append("lower")
            return super().reload_lower(key)

    class RecordingRenderer(StubRenderer):
        def render(self, jobs, on_pass=None, should_stop=None):
            events.append("render")
            return super().render(jobs, on_pass, should_stop)

    events = []
    renderer = RecordingRenderer(OutOfMemory("full", "CUDA out of memory"))
    renderer.store = LoweringStore(events)
    job = _job()
    reporter = await _run(renderer, [job])
    assert reporter.endings(job)[0][0] == "finished"
    assert events == ["load", "render", "lower", "load", "render"]


async def test_a_model_load_failure_is_logged_with_its_cause_and_traceback(caplog):
    """The owner reads the cause and the library's traceback in the log."""

    def fail_to_load(jobs):
        try:
            raise OSError("/srv/models/sd is not a diffusers folder")
        except OSError as exc:
            raise ModelLoadError("1.4", "/srv/models/sd", "set PLACE_MODEL_1_4") from exc

    job = _job()
    reporter = await _run(StubRenderer(fail_to_load), [job])
    assert reporter.endings(job)[0][0] == "failed"
    assert "set PLACE_MODEL_1_4" in caplog.text
    assert "Traceback" in caplog.text and "not a diffusers folder" in caplog.text
