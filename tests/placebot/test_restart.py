"""Accepted jobs survive restarts and signals; finished ones never run twice."""

import asyncio
import os
import signal
import time

from bot import run
from placebot.client import PlaceBot
from tests.support.bot_harness import bot_settings, embed_fields


def _channel_results(fake):
    return [m for m in fake.messages.values() if m.interaction_token is None and m.embeds]


async def test_jobs_kept_over_a_restart_are_posted_in_their_channel(fake, start_bot, gated,
                                                                    tmp_path):
    """Shutdown mid-job: users told the job is kept; after restart both results arrive once."""
    data = tmp_path / "data"
    async with start_bot(data_dir=data, max_batch=1) as bot:
        bot.shutdown_grace_s = 0.1
        gated.close()
        running = fake.slash("place", {"seed": 1}, user_id=1)
        await asyncio.to_thread(gated.entered.wait, 10)
        waiting = fake.slash("place", {"seed": 2}, user_id=2)
        await fake.wait_for(lambda: waiting.original and "position 1" in waiting.original.content)
        stopping = asyncio.create_task(bot.shutdown())
        await fake.wait_for(lambda: "restarting" in waiting.original.content)
        gated.open()  # the running job starts its steps and is stopped at the first one
        await stopping
    assert not _channel_results(fake) and not running.original.embeds
    async with start_bot(data_dir=data) as bot:
        posted = await fake.wait_for(lambda: len(_channel_results(fake)) == 2 and
                                     _channel_results(fake), timeout=60)
        ids = [row[0] for row in bot.journal._db.execute("SELECT job_id FROM jobs")]
        await fake.wait_for(lambda: {bot.journal.state(i) for i in ids} == {"done"})
    seeds = sorted(embed_fields(m)["Seed"] for m in posted)
    assert seeds == ["1", "2"]
    assert {m.content.split()[0] for m in posted} == {"<@1>", "<@2>"}


async def test_a_finished_job_is_never_rendered_again(fake, start_bot, gated, tmp_path):
    data = tmp_path / "data"
    async with start_bot(data_dir=data):
        await fake.wait_for(lambda: fake.slash("place") and True)
        await fake.wait_for(lambda: [m for m in fake.messages.values() if m.embeds], 60)
    calls = gated.calls
    async with start_bot(data_dir=data):
        await asyncio.sleep(0.3)
    assert gated.calls == calls


async def test_sigterm_finishes_the_running_job_and_exits_within_10_seconds(
        fake, tiny_model_dir, gated, tmp_path):
    """The real signal path of bot.py: SIGTERM lets the running job finish (it is well inside
    the grace period), delivers it, and exits well within Docker's 10 s."""
    settings = bot_settings(tmp_path / "data", tiny_model_dir)
    bot = PlaceBot(settings, renderer=gated, guild_ready_timeout=0.05)
    gated.close()
    runner = asyncio.create_task(run(bot, "fake-token"))
    await fake.wait_ready()
    job = fake.slash("place", user_id=3)
    await asyncio.to_thread(gated.entered.wait, 10)
    started = time.monotonic()
    os.kill(os.getpid(), signal.SIGTERM)
    await asyncio.sleep(0.2)
    gated.open()
    await asyncio.wait_for(runner, 10)
    assert time.monotonic() - started < 10
    assert bot.is_closed() and job.original.embeds
    assert type(bot.journal)(tmp_path / "data" / "jobs.sqlite3").recover() == ([], [])
