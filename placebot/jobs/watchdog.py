"""The render watchdog: a render that never returns is reported, and the engine replaced.

The worker stops a job cooperatively at PLACE_JOB_TIMEOUT: the engine checks a stop flag
between denoising steps. Code that never reaches that check (a wedged CUDA call, a deadlock,
a hung download) cannot be stopped from outside, since a Python thread cannot be killed. So
the worker waits for its render thread through `wait_for_engine`, with a limit of the job
timeout plus STUCK_GRACE_S (the longest piece of work between two checks: a step, a VAE
decode). Past it, `EngineStuck` is raised: the worker reports the batch as failed with that
reason and asks for a fresh engine through the action it was given.

The fresh engine is a fresh process: the bot closes gracefully (bounded, waiting users told
their job is kept) and re-executes itself (`placebot.restart`). Chosen over running the
engine in a child process because:
- a normal job pays nothing: no frames pickled through a pipe after each pass, no second
  copy of the request and result, no IPC for cancellation; the render thread's wait gains
  one timer (a job takes 0.86 s on a fast GPU, and that stays so);
- a wedged CUDA context, a leaked thread, half-compiled graphs: all go with the process,
  which is the only boundary that reliably frees a GPU;
- the engine's state (CUDA graphs, the background compile, the loaded models) stays where
  it is built and used, and tests and the benchmark keep driving the engine in-process;
- a separate GPU worker process (a Redis queue's) uses the same Worker and gets the same
  behaviour by passing its own restart action;
- recovery already exists: the journal resumes the other jobs after any restart.
The price: a restart reconnects to Discord and reloads the model (seconds), once per stuck
render, which is rare; the other jobs wait that long.

Loading a model is not rendering: it is not counted against PLACE_JOB_TIMEOUT (a slow
first download must not kill the job that triggered it). A load is watched with its own,
much longer limit, LOAD_LIMIT_S.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Callable
from typing import TypeVar

from pipeline.errors import PipelineError
from placebot import texts

# Longer than any work between two stop checks that we have seen (a denoising step or the VAE
# decode of a batch; seconds on a CPU); past the job timeout the job fails anyway, so a wrong
# guess here costs a restart, not a result.
STUCK_GRACE_S = 60.0
# A first download of the fp32 weights (4 GB) at 10 Mbit/s takes under an hour; the Hub
# client raises by itself on a stalled connection, so this only catches a load that wedges.
LOAD_LIMIT_S = 2 * 3600.0

T = TypeVar("T")
log = logging.getLogger(__name__)


class EngineStuck(PipelineError):
    """The render engine did not return within its limit; its thread is abandoned."""

    def __init__(self, doing: str, limit_s: float):
        self.doing = doing
        self.limit_s = limit_s
        super().__init__(texts.ENGINE_STUCK.format(doing=doing, limit_s=limit_s))


async def wait_for_engine(executor: concurrent.futures.Executor, work: Callable[[], T], *,
                          limit_s: float, doing: str) -> T:
    """Run work on the engine's thread and return its result; raise EngineStuck if it has not
    returned after limit_s. The thread cannot be stopped and is left to the process's end."""
    future = asyncio.get_running_loop().run_in_executor(executor, work)
    try:
        # shield: a timeout must not mark the future cancelled while its thread still runs
        return await asyncio.wait_for(asyncio.shield(future), limit_s)
    except TimeoutError:
        future.add_done_callback(_note_late_end)
        raise EngineStuck(doing, limit_s) from None
    except asyncio.CancelledError:  # the worker is stopping; the thread may end later
        future.add_done_callback(_note_late_end)
        raise


def _note_late_end(future: asyncio.Future) -> None:
    """Collect the outcome of work nobody waits for any more (a late render, stopped work)."""
    if not future.cancelled() and future.exception() is not None:
        log.info("abandoned engine work ended late: %s", future.exception())
