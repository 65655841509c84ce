"""The render worker process (python -m placebot.gpu_worker) on a real Valkey server: how it
stops."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from placebot.distributed.render_worker import run_worker
from tests.support.log_seen import watching
from tests.support.patience import PATIENCE_S
from tests.support.redis_harness import TEST_TIMINGS, TrackingRenderer, worker_settings
from tests.support.valkey import ValkeyProcess

LOGGER = "placebot.distributed.render_worker"


@pytest.fixture
def valkey(tmp_path):
    with ValkeyProcess(tmp_path / "valkey", password="test-secret") as server:
        yield server


def start_worker(url: str, stop: asyncio.Event | None = None) -> asyncio.Task:
    return asyncio.create_task(run_worker(worker_settings(url), renderer=TrackingRenderer(),
                                          timings=TEST_TIMINGS, name="w", stop=stop))


async def test_ctrl_c_stops_a_render_worker_without_loop_signal_handlers(valkey, monkeypatch):
    """Without loop.add_signal_handler (Windows), Ctrl+C still stops a render worker cleanly,
    and its signal handler is taken away after."""

    def refuse(self, *args):
        raise NotImplementedError

    monkeypatch.setattr(type(asyncio.get_running_loop()), "add_signal_handler", refuse)
    before = signal.getsignal(signal.SIGINT)
    with watching(LOGGER, "taking jobs from Redis") as started:
        worker = start_worker(valkey.url)
        await asyncio.wait_for(started.seen.wait(), PATIENCE_S)
    assert signal.getsignal(signal.SIGINT) is not before  # the fallback handler is in place
    os.kill(os.getpid(), signal.SIGINT)
    assert await asyncio.wait_for(worker, PATIENCE_S) is None
    assert signal.getsignal(signal.SIGINT) is before


async def test_a_worker_that_cannot_reach_redis_as_it_stops_says_so(valkey):
    """Redis gone as a worker stops: it cannot take itself off the worker list, and the log
    says so (and when it drops off), instead of nothing."""
    stop = asyncio.Event()
    with watching(LOGGER, "taking jobs from Redis") as started:
        worker = start_worker(valkey.url, stop)
        await asyncio.wait_for(started.seen.wait(), PATIENCE_S)
    valkey.stop()
    with watching(LOGGER, "could not take itself off the worker list") as warned:
        stop.set()
        await asyncio.wait_for(worker, PATIENCE_S)
    assert warned.seen.is_set()


async def test_a_stop_while_redis_was_never_reached_ends_the_worker_cleanly(tmp_path):
    """Nothing listens at PLACE_REDIS_URL: the worker waits for it, and a stop signal then
    ends it at once (no traceback, nothing to hand back)."""
    url = "redis://:test-secret@127.0.0.1:9/0"  # the discard port: nothing answers there
    with watching(LOGGER, "Redis is unreachable") as waiting:
        worker = start_worker(url)
        await asyncio.wait_for(waiting.seen.wait(), PATIENCE_S)
    with watching(LOGGER, "Redis was never reached") as stopped:
        os.kill(os.getpid(), signal.SIGINT)
        assert await asyncio.wait_for(worker, PATIENCE_S) is None
    assert stopped.seen.is_set()


ROOT = Path(__file__).resolve().parents[3]


def wrong_password(url: str) -> str:
    return url.replace(":test-secret@", ":not-the-secret@")


@pytest.mark.parametrize("login", ["wrong password", "no password"])
def test_a_refused_login_is_a_settings_error_not_an_outage(valkey, tmp_path, login):
    """The server refuses PLACE_REDIS_URL's login: the worker says so in one line naming the
    setting and exits with 2, as for any bad setting (it retried "unreachable" forever)."""
    url = wrong_password(valkey.url) if login == "wrong password" else \
        valkey.url.replace(":test-secret@", "")
    done = subprocess.run([sys.executable, "-m", "placebot.gpu_worker"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=PATIENCE_S,
                          env={"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT),
                               "PLACE_REDIS_URL": url, "PLACE_DEVICE": "cpu",
                               "PLACE_DATA_DIR": str(tmp_path / "data")})
    assert done.returncode == 2, done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("configuration error: PLACE_REDIS_URL: the Redis server refused")
    assert "test-secret" not in line and "not-the-secret" not in line
