"""What the worker tells its reporter without waiting for it: a job's progress (sent from the
render thread) and its ending (told in the background, so that a Discord outage holds up no
job behind it), in that order, never the other way round."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections import defaultdict
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger(__name__)

PROGRESS_WAIT_S = 10  # an ending waits this long at most for its job's progress to land


async def safely(coroutine: Coroutine[Any, Any, None]) -> None:
    """A reporting failure (Discord down, message deleted) must not stop the worker."""
    try:
        await coroutine
    except Exception:
        log.exception("reporting failed")


class Telling:
    """One worker's reports under way: each job's progress, and the endings being told."""

    def __init__(self) -> None:
        self._progress: dict[str, list[concurrent.futures.Future]] = defaultdict(list)
        self._endings: set[asyncio.Task] = set()

    def progress_sent(self, job_id: str, sending: concurrent.futures.Future) -> None:
        """A progress report of the job is on its way (from the render thread)."""
        self._progress[job_id].append(sending)

    async def progress_done(self, job_id: str) -> None:
        """Let the job's progress updates land before its ending, never after it."""
        pending = self._progress.pop(job_id, [])
        if pending:
            await asyncio.wait([asyncio.wrap_future(f) for f in pending],
                               timeout=PROGRESS_WAIT_S)

    def in_background(self, telling: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(telling)
        self._endings.add(task)
        task.add_done_callback(self._endings.discard)

    async def settled(self, timeout_s: float | None = None) -> None:
        """Until every ending under way has been told (or timeout_s has passed)."""
        if self._endings:
            await asyncio.wait(list(self._endings), timeout=timeout_s)

    async def cut(self) -> None:
        """Stop telling what is still being told (a result stays kept by the reporter)."""
        for telling in list(self._endings):
            telling.cancel()
        await asyncio.gather(*self._endings, return_exceptions=True)
