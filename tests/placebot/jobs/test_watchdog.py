import concurrent.futures
import threading

import pytest

from placebot.jobs.watchdog import EngineStuck, wait_for_engine


@pytest.fixture
def engine_thread():
    executor = concurrent.futures.ThreadPoolExecutor(1, "test-engine")
    yield executor
    executor.shutdown(wait=False, cancel_futures=True)


async def test_work_that_returns_gives_its_result(engine_thread):
    """A render that returns in time is handed back unchanged."""
    assert await wait_for_engine(engine_thread, lambda: 42, limit_s=30, doing="rendering") == 42


async def test_work_that_never_returns_raises_engine_stuck_naming_the_limit(engine_thread):
    """A render that never returns is given up on at its limit, with a reason for the user."""
    release = threading.Event()
    try:
        with pytest.raises(EngineStuck) as stuck:
            await wait_for_engine(engine_thread, release.wait, limit_s=0.2, doing="the render")
    finally:
        release.set()
    assert "the render stopped responding (no answer after 0.2 s)" in str(stuck.value)


async def test_an_error_in_the_work_is_raised_as_it_is(engine_thread):
    """The engine's own errors pass through the watchdog untouched."""
    def fail():
        raise ValueError("bad crop")

    with pytest.raises(ValueError, match="bad crop"):
        await wait_for_engine(engine_thread, fail, limit_s=30, doing="rendering")
