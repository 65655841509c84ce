"""A render worker process whose render never returns: `python -m tests.support.hanging_worker
URL`. It prints "rendering" once it holds a batch, for a test to SIGKILL it then."""

from __future__ import annotations

import asyncio
import sys
import threading

from placebot.distributed.render_worker import run_worker
from tests.support.redis_harness import TEST_TIMINGS, TrackingRenderer, worker_settings


class HangingRenderer(TrackingRenderer):
    def render(self, jobs, on_pass=None, should_stop=None):
        print("rendering", flush=True)
        threading.Event().wait()


if __name__ == "__main__":
    asyncio.run(run_worker(worker_settings(sys.argv[1]), renderer=HangingRenderer(),
                           timings=TEST_TIMINGS, name="doomed-worker"))
