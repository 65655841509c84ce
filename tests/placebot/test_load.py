"""200 /place interactions from 100 users within one second, against the fake Discord.

A fast stand-in renderer replaces the model: this measures the bot, not Stable Diffusion.
"""

import asyncio
import contextlib
import ctypes
import gc
import logging
import os

from tests.support.fast_renderer import FastRenderer
from tests.support.patience import PATIENCE_S

log = logging.getLogger(__name__)


def _bot_memory(fake) -> int:
    """Resident memory of this process, without what the fake Discord keeps as evidence.

    The fake runs in the same process and stores every upload it receives; those bytes are
    the test's, not the bot's, so they are dropped before measuring. Freed heap is handed
    back to the OS (malloc_trim) so that RSS shows what is still held.
    """
    fake.forget_uploads()
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open(f"/proc/{os.getpid()}/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _live_job_objects() -> dict:
    """How many jobs, results and discord.py interactions are still alive (after gc)."""
    import discord

    from pipeline.engine import RenderResult
    from placebot.jobqueue import Job

    gc.collect()
    kinds = {"Job": Job, "RenderResult": RenderResult, "Interaction": discord.Interaction}
    alive = gc.get_objects()
    return {name: sum(type(o) is kind for o in alive) for name, kind in kinds.items()}


async def _burst(fake, count, users, first_user):
    """`count` /place from `users` users, sent in 10 waves; returns (interactions, seconds)."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    interactions = []
    for n in range(count):
        interactions.append(fake.slash("place", user_id=first_user + n % users))
        if n % (count // 10) == count // 10 - 1:
            await asyncio.sleep(0.02)
    return interactions, loop.time() - started


async def _all_answered(fake, interactions):
    await fake.wait_for(lambda: all(i.callbacks for i in interactions), PATIENCE_S)
    accepted = [i for i in interactions if i.callbacks[0]["type"] == 5]
    await fake.wait_for(lambda: all(i.original and i.original.embeds for i in accepted), PATIENCE_S)
    return accepted


async def test_200_interactions_from_100_users_in_one_second(fake, start_bot):
    renderer = FastRenderer()
    async with start_bot(renderer=renderer, queue_max=20, user_max=1, max_batch=4) as bot:
        # Warm-up: canvases decoded, thread pools and connections at their working size.
        warm, _ = await _burst(fake, 40, 20, first_user=1)
        warm_accepted = await _all_answered(fake, warm)
        memory_before = _bot_memory(fake)
        kept_before = _live_job_objects()  # earlier tests' closed bots may still hold some
        longest_queue = 0

        async def watch_queue():
            nonlocal longest_queue
            while True:
                longest_queue = max(longest_queue, len(bot.jobs.queue))
                await asyncio.sleep(0.005)

        watcher = asyncio.create_task(watch_queue())
        interactions, sent_in = await _burst(fake, 200, 100, first_user=1000)
        accepted = await _all_answered(fake, interactions)
        await asyncio.sleep(0.2)
        watcher.cancel()
        results = [m for m in fake.messages.values() if m.embeds]
        memory_after = _bot_memory(fake)
        kept = _live_job_objects()

    refused = [i for i in interactions if i.callbacks[0]["type"] == 4]
    answer_delays = [i.answered_at - i.dispatched_at for i in interactions]
    log.warning("load: %d sent in %.2f s; %d accepted, %d refused; slowest first answer "
                "%.2f s; longest queue %d; RSS %.0f → %.0f MB; job objects alive %s → %s",
                len(interactions), sent_in, len(accepted), len(refused), max(answer_delays),
                longest_queue, memory_before / 2**20, memory_after / 2**20, kept_before, kept)
    assert sent_in < 1.0
    assert max(answer_delays) < 3.0  # Discord's limit for the first answer
    assert len(accepted) + len(refused) == 200 and accepted and refused
    assert longest_queue <= 20
    assert all(("you already have 1 job waiting" in i.callbacks[0]["data"]["content"]
                or "the queue is full" in i.callbacks[0]["data"]["content"]) for i in refused)
    # each accepted job answered exactly once, and rendered once
    assert len(results) == len(accepted) + len(warm_accepted)
    for interaction in accepted:
        result_edits = [r for r in fake.requests if interaction.token in r.path
                        and r.method == "PATCH" and r.json and r.json.get("embeds")]
        assert len(result_edits) == 1
    assert renderer.jobs_rendered == len(results)
    assert memory_after <= memory_before * 1.10
    assert all(kept[kind] <= kept_before[kind] for kind in kept)  # nothing accumulates
