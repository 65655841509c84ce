"""200 /place interactions from 100 users at once, against the fake Discord.

A fast stand-in renderer replaces the model: this exercises the bot, not Stable Diffusion.
Nothing here is a speed check (the machine may be busy): the test counts answers, results and
live objects, and only logs the timings and the resident memory it sees.
"""

import asyncio
import contextlib
import ctypes
import gc
import logging
import os
import threading

from PIL import Image

from pipeline.canvases import CANVAS_KEYS, load_canvas
from tests.support.fast_renderer import FastRenderer
from tests.support.patience import PATIENCE_S

log = logging.getLogger(__name__)

DEFERRED, MESSAGE = 5, 4  # interaction callback types: "thinking…", and a message (a refusal)


class HeldFastRenderer(FastRenderer):
    """The fast renderer behind a gate: while closed, a render waits in its thread."""

    def __init__(self):
        super().__init__()
        self._gate = threading.Event()
        self._gate.set()
        self.entered = threading.Event()

    def close(self) -> None:
        self._gate.clear()
        self.entered.clear()

    def open(self) -> None:
        self._gate.set()

    def render(self, jobs, on_pass=None, should_stop=None):
        self.entered.set()
        if not self._gate.wait(PATIENCE_S):
            raise TimeoutError("the test never opened the render gate")
        return super().render(jobs, on_pass=on_pass, should_stop=should_stop)


def _resident_memory(fake) -> int:
    """Resident memory of this process, without what the fake Discord keeps as evidence (for
    the log only: it depends on the allocator and on what else the process did)."""
    fake.forget_uploads()
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open(f"/proc/{os.getpid()}/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _live_job_objects() -> dict:
    """How many jobs, results, discord.py interactions and images are still alive (after gc)."""
    import discord

    from pipeline.results import RenderResult
    from placebot.jobs.jobqueue import Job

    gc.collect()
    kinds = {"Job": Job, "RenderResult": RenderResult, "Interaction": discord.Interaction,
             "Image": Image.Image}
    alive = gc.get_objects()
    return {name: sum(issubclass(type(o), kind) for o in alive) for name, kind in kinds.items()}


def _send(fake, count, users, first_user):
    """`count` /place from `users` users, one after the other without waiting."""
    return [fake.slash("place", user_id=first_user + n % users) for n in range(count)]


async def _all_answered(fake, interactions):
    """Wait until each interaction has its first answer; return those accepted (deferred)."""
    await fake.wait_for(lambda: all(i.callbacks for i in interactions), PATIENCE_S)
    return [i for i in interactions if i.callbacks[0]["type"] == DEFERRED]


async def _all_delivered(fake, renderer, queue, accepted, rendered):
    """Wait until each accepted job's result is in its message, `rendered` jobs have been
    rendered in all, and no job is waiting or running."""
    await fake.wait_for(lambda: all(i.original and i.original.embeds for i in accepted),
                        PATIENCE_S)
    await fake.wait_for(lambda: renderer.jobs_rendered == rendered and not queue.running
                        and not len(queue), PATIENCE_S)


def _no_more_alive_than(before: dict) -> dict | None:
    now = _live_job_objects()
    return now if all(now[kind] <= before[kind] for kind in now) else None


def _refusal(interaction) -> str:
    return interaction.callbacks[0]["data"]["content"]


async def test_200_interactions_from_100_users_at_once_are_each_answered_once(fake, start_bot):
    """200 /place from 100 users at once: each answered, the first 100 while every render is
    held; the queue stops at PLACE_QUEUE_MAX; each accepted job rendered and delivered once;
    no job, result, interaction or image left alive afterwards."""
    # Discord forgets an interaction not answered in 3 s; this test counts answers and logs
    # their delays, since a busy machine may take longer than Discord allows.
    fake.ack_timeout = PATIENCE_S
    # Made once per process, not a job's leftover: the canvases, and the images PIL's format
    # plugins make when they are all loaded (at the first encode).
    for canvas in CANVAS_KEYS:
        await asyncio.to_thread(load_canvas, canvas)
    Image.init()
    renderer = HeldFastRenderer()
    async with start_bot(renderer=renderer, queue_max=20, user_max=1, max_batch=4) as bot:
        queue = bot.jobs.queue
        kept_before = _live_job_objects()  # earlier tests' closed bots may still hold some
        # Warm-up: thread pools and connections at their working size.
        warm = _send(fake, 40, 20, first_user=1)
        warm_accepted = await _all_answered(fake, warm)
        await _all_delivered(fake, renderer, queue, warm_accepted, len(warm_accepted))
        memory_before = _resident_memory(fake)

        # Renders held: nothing leaves the queue, so every first answer below comes without
        # waiting for a render, and the queue is at its longest once all are queued.
        renderer.close()
        held = _send(fake, 1, 1, first_user=1000)
        # its batch taken and held: from now on no job leaves the queue
        assert await asyncio.to_thread(renderer.entered.wait, PATIENCE_S)
        held += _send(fake, 99, 99, first_user=1001)
        held_accepted = await _all_answered(fake, held)
        # (a job is deferred once admitted, and queued a moment later)
        await fake.wait_for(lambda: len(queue) + len(queue.running) == len(held_accepted),
                            PATIENCE_S)
        longest_queue, running = len(queue), len(queue.running)
        renderer.open()
        # The same 100 users again while results are rendered and uploaded, in waves of 20,
        # each sent once the one before it is answered.
        flowing, accepted = [], list(held_accepted)
        for wave in range(5):
            flowing += (sent := _send(fake, 20, 20, first_user=1000 + 20 * wave))
            accepted += await _all_answered(fake, sent)
        await _all_delivered(fake, renderer, queue, accepted,
                             len(warm_accepted) + len(accepted))
        results = [m for m in fake.messages.values() if m.embeds]
        # Nothing accumulates: back to the count from before the first job once the worker
        # lets go of its last batch. What grew with the jobs would stay above it for good.
        kept = await fake.wait_for(lambda: _no_more_alive_than(kept_before), PATIENCE_S)
        memory_after = _resident_memory(fake)

    interactions = held + flowing
    refused = [i for i in interactions if i.callbacks[0]["type"] == MESSAGE]
    answer_delays = [i.answered_at - i.dispatched_at for i in interactions]
    log.warning("load: %d accepted, %d refused; slowest first answer %.2f s; longest queue %d "
                "(+%d running); RSS %.0f → %.0f MB; job objects alive %s → %s", len(accepted),
                len(refused), max(answer_delays), longest_queue, running,
                memory_before / 2**20, memory_after / 2**20, kept_before, kept)
    assert len(accepted) + len(refused) == 200
    assert longest_queue == 20 and running == 1  # full, the first job held, the rest refused
    assert len(held_accepted) == 21
    assert all("you already have 1 job waiting" in _refusal(i) or "the queue is full"
               in _refusal(i) for i in refused)
    assert any("the queue is full" in _refusal(i) for i in refused if i in held)
    # each accepted job answered exactly once, and rendered once
    assert len(results) == len(accepted) + len(warm_accepted)
    for interaction in accepted:
        result_edits = [r for r in fake.requests if interaction.token in r.path
                        and r.method == "PATCH" and r.json and r.json.get("embeds")]
        assert len(result_edits) == 1
    assert renderer.jobs_rendered == len(results)
