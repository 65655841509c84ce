"""Accepted jobs survive restarts and signals; finished ones never run twice."""

import asyncio
import os
import signal
import threading
import time

from bot import run
from placebot.discord_side.client import PlaceBot
from tests.support.bot_harness import bot_settings, custom_ids, embed_fields, wait_result
from tests.support.fast_renderer import FastRenderer
from tests.support.patience import PATIENCE_S


def _channel_results(fake):
    return [m for m in fake.messages.values() if m.interaction_token is None and m.embeds]


def _said(fake, interaction):
    """Every text the bot put in the interaction's response, in order."""
    return [r.json.get("content") or "" for r in fake.requests
            if r.method == "PATCH" and interaction.token in r.path and r.json]


async def _one_running_one_waiting(fake, gated):
    """User 1's job held at the render gate, user 2's waiting behind it at position 1."""
    gated.close()
    running = fake.slash("place", {"seed": 1}, user_id=1)
    assert await asyncio.to_thread(gated.entered.wait, PATIENCE_S)
    waiting = fake.slash("place", {"seed": 2}, user_id=2)
    await fake.wait_for(lambda: waiting.original and "position 1" in waiting.original.content)
    return running, waiting


async def test_jobs_kept_over_a_restart_are_delivered_once_in_their_own_messages(
        fake, start_bot, gated, tmp_path):
    """Shutdown mid-job: users told the job is kept; after restart both results arrive once,
    each edited into its user's message (the kept webhook, the token still alive)."""
    data = tmp_path / "data"
    async with start_bot(data_dir=data, max_batch=1) as bot:
        bot.shutdown_grace_s = 0.1
        running, waiting = await _one_running_one_waiting(fake, gated)
        stopping = asyncio.create_task(bot.shutdown())
        await fake.wait_for(lambda: "restarting" in waiting.original.content)
        gated.open()  # the running job starts its steps and is stopped at the first one
        await stopping
    assert not _channel_results(fake) and not running.original.embeds
    assert "restarting" in running.original.content  # the stopped job's user is told too
    async with start_bot(data_dir=data) as bot:
        posted = [await wait_result(fake, running), await wait_result(fake, waiting)]
        ids = [row[0] for row in bot.jobs.journal._db.execute("SELECT job_id FROM jobs")]
        await fake.wait_for(lambda: {bot.jobs.journal.state(i) for i in ids} == {"done"})
    assert [embed_fields(m)["Seed"] for m in posted] == ["1", "2"]
    assert [m.content.split()[0] for m in posted] == ["<@1>", "<@2>"]
    assert not _channel_results(fake)


async def test_a_finished_job_is_never_rendered_again(fake, start_bot, gated, tmp_path):
    """A job delivered before a restart is not queued again by the next start: the worker
    renders the new start's own job and then waits with nothing left to do."""
    data = tmp_path / "data"
    async with start_bot(data_dir=data):
        finished = await wait_result(fake, fake.slash("place", user_id=1))
    calls = gated.calls
    async with start_bot(data_dir=data, max_batch=1) as bot:  # one render call, one job
        # Recovered jobs are queued before any interaction is handled: a job restored from
        # the journal would be rendered too before the worker is idle with an empty queue.
        later = await wait_result(fake, fake.slash("place", user_id=2))
        queue = bot.jobs.queue
        await fake.wait_for(lambda: bot.jobs.worker.idle.is_set() and not queue.running
                            and not len(queue), PATIENCE_S)
    assert finished.embeds and later.embeds
    assert gated.calls == calls + 1


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
    assert await asyncio.to_thread(gated.entered.wait, PATIENCE_S)
    started = time.monotonic()
    os.kill(os.getpid(), signal.SIGTERM)
    await asyncio.sleep(0.2)
    gated.open()
    await asyncio.wait_for(runner, 10)
    assert time.monotonic() - started < 10
    assert bot.is_closed() and job.original.embeds
    assert type(bot.jobs.journal)(tmp_path / "data" / "jobs.sqlite3").recover().retry == []


async def test_sigterm_during_a_discord_outage_stops_without_waiting_for_the_reconnect(
        fake, tiny_model_dir, gated, tmp_path, monkeypatch):
    """Discord down and discord.py asleep between two reconnects (its backoff, made an hour
    here: minutes in a long outage): SIGTERM still ends bot.py's run at once, the graceful
    part done, and both the running and the waiting job kept in the journal."""
    from discord.backoff import ExponentialBackoff

    from placebot.jobs.journal import Journal
    from tests.support.log_seen import watching

    monkeypatch.setattr(ExponentialBackoff, "delay", lambda self: 3600.0)
    bot = PlaceBot(bot_settings(tmp_path / "data", tiny_model_dir, max_batch=1),
                   renderer=gated, guild_ready_timeout=0.05)
    bot.shutdown_grace_s = 0.1
    runner = asyncio.create_task(run(bot, "fake-token"))
    await fake.wait_ready()
    await _one_running_one_waiting(fake, gated)
    with watching("discord.client", "Attempting a reconnect") as asleep:
        fake.outage("*", ".*")  # REST and the gateway both down
        fake.gateway_outage()
        await fake.drop_gateway()
        await asyncio.wait_for(asleep.seen.wait(), PATIENCE_S)
    os.kill(os.getpid(), signal.SIGTERM)
    await asyncio.wait_for(runner, PATIENCE_S)  # not the hour of the backoff
    assert bot.is_closed()
    kept = Journal(tmp_path / "data" / "jobs.sqlite3").recover().retry
    assert sorted(job.user_id for job in kept) == [1, 2]


async def test_buttons_of_a_result_keep_working_after_a_restart(fake, start_bot, tmp_path):
    data = tmp_path / "data"
    async with start_bot(data_dir=data):
        first = await wait_result(fake, fake.slash("place", {"canvas": "2022", "x": 7,
                                                             "y": 9}))
    async with start_bot(data_dir=data):  # a new process: no view state survives but the ids
        reroll = next(i for i in custom_ids(first) if i.startswith("place:reroll"))
        again = await wait_result(fake, fake.click(first.id, reroll, user_id=50))
    assert (embed_fields(again)["x"], embed_fields(again)["y"]) == ("7", "9")


async def test_a_job_given_up_after_its_tries_is_reported_and_the_jobs_behind_it_run(
        fake, start_bot, tmp_path):
    """The job that was taken MAX_TRIES times is dropped and its user told; the job queued
    behind it, never taken, is rendered; the bot keeps serving."""
    from placebot.jobs.journal import MAX_TRIES, Journal

    data = tmp_path / "data"
    journal = Journal(data / "jobs.sqlite3")
    render = {"model": "1.4", "canvas": "2017", "x": 1, "y": 1, "seed": 1, "strength": 0.5,
              "steps": 4, "passes": 2}
    context = {"user_id": 61, "channel_id": fake.channel_id, "guild_id": fake.guild_id,
               "created_at": 0.0, "size_limit": 8 << 20}
    journal.add("aaaaaaaaaaaa", 61, render, context)
    journal.add("bbbbbbbbbbbb", 62, {**render, "seed": 2}, {**context, "user_id": 62})
    for _ in range(MAX_TRIES):  # it was running each time the process died
        journal.mark_taken(["aaaaaaaaaaaa"])
    journal.close()
    async with start_bot(data_dir=data):
        told = await fake.wait_for(lambda: [m for m in fake.messages.values()
                                            if "was dropped" in m.content])
        behind = await fake.wait_for(lambda: _channel_results(fake), PATIENCE_S)
        later = await wait_result(fake, fake.slash("place", user_id=63))  # still working
    assert [m.content.split()[0] for m in told] == ["<@61>"]
    assert behind[0].content.split()[0] == "<@62>" and later.embeds


async def test_a_damaged_journal_file_does_not_stop_the_bot_starting(fake, start_bot, tmp_path):
    """A journal SQLite cannot read is set aside under a dated name and the bot serves."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "jobs.sqlite3").write_bytes(b"not a database " * 500)
    async with start_bot(data_dir=data):
        result = await wait_result(fake, fake.slash("place", user_id=64))
    assert result.embeds
    assert [p.name for p in data.iterdir() if p.name.startswith("jobs.sqlite3.unreadable-")]


async def test_a_journal_row_that_cannot_be_decoded_is_skipped_and_the_others_run(
        fake, start_bot, tmp_path):
    """One undecodable row (an unknown model, say) is skipped; the good rows are rendered."""
    from placebot.jobs.journal import Journal

    data = tmp_path / "data"
    journal = Journal(data / "jobs.sqlite3")
    render = {"model": "1.4", "canvas": "2017", "x": 1, "y": 1, "seed": 5, "strength": 0.5,
              "steps": 4, "passes": 2}
    context = {"user_id": 65, "channel_id": fake.channel_id, "guild_id": fake.guild_id,
               "created_at": 0.0, "size_limit": 8 << 20}
    journal.add("badbadbadbad", 66, {**render, "model": "9.9"}, {**context, "user_id": 66})
    journal.add("goodgoodgood", 65, render, context)
    journal.close()
    async with start_bot(data_dir=data) as bot:
        posted = await fake.wait_for(lambda: _channel_results(fake), PATIENCE_S)
        assert bot.jobs.journal.state("badbadbadbad") == "failed"
    assert [m.content.split()[0] for m in posted] == ["<@65>"]


async def test_users_of_a_batch_that_will_not_stop_are_told_before_it_is_left(
        fake, start_bot, gated, tmp_path):
    """SIGTERM while a render never reaches a stop check: its user is told the job is kept,
    and the journal keeps it with its try given back."""
    from placebot.jobs.journal import Journal

    data = tmp_path / "data"
    async with start_bot(data_dir=data) as bot:
        bot.shutdown_grace_s = 0.1
        gated.close()  # the render waits at the gate: it polls no stop flag
        job = fake.slash("place", user_id=67)
        assert await asyncio.to_thread(gated.entered.wait, PATIENCE_S)
        await fake.wait_for(lambda: job.original and "Dreaming" in job.original.content)
        await bot.shutdown()
        assert "restarting" in job.original.content
    [kept] = Journal(data / "jobs.sqlite3").recover().retry
    assert kept.user_id == 67 and kept.tries == 0


async def test_cancel_with_a_forged_owner_is_refused(fake, start_bot, gated):
    from placebot.discord_side.views import cancel_id

    async with start_bot():
        gated.close()
        victim = fake.slash("place", user_id=70)
        await fake.wait_for(lambda: victim.original and custom_ids(victim.original))
        job_id = custom_ids(victim.original)[0].split(":")[2]
        forged = fake.click_forged(victim.original.id, cancel_id(job_id, 71), user_id=71)
        await fake.wait_for(lambda: forged.callbacks)
        gated.open()
        await wait_result(fake, victim)
    assert "no longer waiting or running" in forged.callbacks[0]["data"]["content"]


_REEXEC_ONCE = """
import json, os, sys
from pathlib import Path
from placebot.restart import reexec
runs = Path(sys.argv[1])
lines = runs.read_text().splitlines() if runs.exists() else []
runs.write_text("\\n".join([*lines, json.dumps([os.getpid(), sys.orig_argv[1:]])]))
if not lines:
    reexec("test")
"""


def test_reexec_runs_the_same_command_again_in_the_same_process(tmp_path):
    """The restart replaces the process in place: same pid, same interpreter options and args."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    script = tmp_path / "once.py"
    script.write_text(_REEXEC_ONCE)
    runs = tmp_path / "runs"
    root = Path(__file__).parents[2]
    done = subprocess.run([sys.executable, "-X", "utf8", str(script), str(runs)],
                          env={**os.environ, "PYTHONPATH": str(root)}, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    first, second = (json.loads(line) for line in runs.read_text().splitlines())
    assert first == second and first[1] == ["-X", "utf8", str(script), str(runs)]


async def test_a_render_that_never_returns_is_reported_and_the_bot_restarts_for_a_new_engine(
        fake, start_bot, gated, tmp_path):
    """Past the job timeout plus the grace, a wedged render's user is told why it failed, the
    bot closes itself to restart (as bot.py does), and the job behind it runs after that."""
    data = tmp_path / "data"
    async with start_bot(data_dir=data, job_timeout_s=0.3, max_batch=1) as bot:
        bot.jobs.worker.stuck_grace_s = 0.3
        gated.close()  # the render waits at the gate: it polls no stop flag, like a hung call
        stuck = fake.slash("place", {"seed": 1}, user_id=71)
        assert await asyncio.to_thread(gated.entered.wait, PATIENCE_S)
        behind = fake.slash("place", {"seed": 2}, user_id=72)
        await fake.wait_for(lambda: bot.is_closed(), PATIENCE_S)
        assert "stopped responding" in stuck.original.content
        assert "stopped responding" in bot.restart_reason
        assert "restarting" in behind.original.content
    async with start_bot(data_dir=data):  # what bot.py's re-execution starts
        posted = await wait_result(fake, behind, PATIENCE_S)
    assert posted.content.split()[0] == "<@72>" and not _channel_results(fake)


class HoldThenWedge:
    """The real renderer, except that while `held` every render waits, and a batch holding a
    job of `wedge_seed` always does: until the test releases them, polling no stop flag (as
    a wedged CUDA call would). `batches` lists each call's seeds."""

    def __init__(self, inner, wedge_seed: int):
        self.inner = inner
        self.store = inner.store
        self.wedge_seed = wedge_seed
        self.held = threading.Event()
        self.entered = threading.Event()
        self.released = threading.Event()
        self.batches: list[list[int]] = []

    def is_ready(self, jobs):
        return self.inner.is_ready(jobs)

    def prepare(self, jobs):
        self.inner.prepare(jobs)

    def render(self, jobs, **kwargs):
        seeds = sorted(job.seed for job in jobs)
        self.batches.append(seeds)
        self.entered.set()
        if self.held.is_set() or self.wedge_seed in seeds:
            self.released.wait(PATIENCE_S)
            raise RuntimeError("an abandoned render, let go at the end of the test")
        return self.inner.render(jobs, **kwargs)


async def test_a_wedged_batch_is_retried_job_by_job_and_only_the_wedging_job_fails(
        fake, start_bot, tmp_path):
    """A batch wedges the engine: its users are told the bot restarts, and after it each job
    runs alone; the one that wedges again is reported, its batch mate gets its result."""
    data = tmp_path / "data"
    # Renders that succeed take milliseconds: far inside the job timeout, busy machine or not
    engine = HoldThenWedge(FastRenderer(), wedge_seed=1)
    try:
        engine.held.set()
        async with start_bot(renderer=engine, data_dir=data, max_batch=4):
            mate = fake.slash("place", {"seed": 2}, user_id=95)
            assert await asyncio.to_thread(engine.entered.wait, PATIENCE_S)
            culprit = fake.slash("place", {"seed": 1}, user_id=96)
            await fake.wait_for(lambda: culprit.original and
                                "Queued" in culprit.original.content, PATIENCE_S)
        engine.held.clear()  # the stop left the mate's render; both are in the journal
        async with start_bot(renderer=engine, data_dir=data, max_batch=4,
                             job_timeout_s=2.0) as bot:
            bot.jobs.worker.stuck_grace_s = 0.5
            await fake.wait_for(lambda: bot.is_closed(), PATIENCE_S)  # restarting
        assert engine.batches[-1] == [1, 2]
        assert "restarting" in mate.original.content and "restarting" in culprit.original.content
        async with start_bot(renderer=engine, data_dir=data, max_batch=4,
                             job_timeout_s=2.0) as bot:
            bot.jobs.worker.stuck_grace_s = 0.5
            result = await wait_result(fake, mate, PATIENCE_S)
            await fake.wait_for(lambda: bot.is_closed(), PATIENCE_S)
        assert engine.batches[-2:] == [[2], [1]]
        assert result.content.split()[0] == "<@95>"
        assert "stopped responding" in culprit.original.content
    finally:
        engine.released.set()


async def test_bot_py_restarts_its_process_for_a_new_engine_and_resumes_the_other_jobs(
        fake, tiny_model_dir, tmp_path):
    """The real path: `python bot.py` whose render hangs reports the job, re-executes itself
    (same process id, a second login) and renders the job that was waiting."""
    import subprocess
    import sys
    from pathlib import Path

    from tests.support.bot_harness import GUILD_ID

    root = Path(__file__).parents[2]
    marker = tmp_path / "wedged-pid"
    env = {**os.environ, "DISCORD_TOKEN": "fake-token", "DISCORD_GUILD_ID": str(GUILD_ID),
           "PLACE_MODEL_1_4": str(tiny_model_dir), "PLACE_MODEL_1_5": str(tiny_model_dir),
           "PLACE_DEVICE": "cpu", "PLACE_STEPS": "4", "PLACE_STRENGTH": "0.5",
           "PLACE_RECURSIONS": "1", "PLACE_MAX_BATCH": "1", "PLACE_JOB_TIMEOUT": "1",
           "PLACE_DATA_DIR": str(tmp_path / "data"), "HF_HUB_OFFLINE": "1",
           "FAKE_DISCORD_URL": fake.url, "WEDGE_GRACE_S": "0.5", "WEDGE_MARKER": str(marker)}
    with (tmp_path / "bot.log").open("w") as log_file:
        process = await asyncio.create_subprocess_exec(
            sys.executable, str(root / "tests/support/wedging_bot.py"), cwd=tmp_path, env=env,
            stdout=log_file, stderr=subprocess.STDOUT)
    try:
        await fake.wait_ready(timeout=120)
        stuck = fake.slash("place", {"seed": 1}, user_id=81)
        await fake.wait_for(marker.exists, 2 * PATIENCE_S)
        behind = fake.slash("place", {"seed": 2}, user_id=82)
        posted = await wait_result(fake, behind, 2 * PATIENCE_S)
        assert "stopped responding" in stuck.original.content
        assert any("restarting" in text for text in _said(fake, behind))
        assert posted.content.split()[0] == "<@82>" and not _channel_results(fake)
        assert fake.identifies == 2 and int(marker.read_text()) == process.pid
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), 30)
        except TimeoutError:
            process.kill()
            await process.wait()
        print((tmp_path / "bot.log").read_text()[-3000:])


async def test_messages_left_from_before_a_restart_are_updated_when_their_job_resumes(
        fake, start_bot, gated, tmp_path):
    """The restart notice never reached Discord (killed, or Discord down): after the restart
    the old "Queued"/"Dreaming" messages lose their Cancel button and get the result, through
    the interaction's webhook while its token lives."""
    data = tmp_path / "data"
    async with start_bot(data_dir=data, max_batch=1) as bot:
        bot.shutdown_grace_s = 0.1
        running, waiting = await _one_running_one_waiting(fake, gated)
        down = fake.outage("PATCH", r"/messages/@original$")
        stopping = asyncio.create_task(bot.shutdown())
        await fake.wait_for(lambda: down.hits >= 1)
        gated.open()
        await stopping
        down.lift()
    assert "Cancel" in str(waiting.original.components)
    async with start_bot(data_dir=data):
        await wait_result(fake, running)
        await wait_result(fake, waiting)
    for interaction in (running, waiting):
        assert "Cancel" not in str(interaction.original.components)
    assert not _channel_results(fake)  # each result went to its own message


async def test_a_bot_killed_on_its_defer_answers_the_thinking_message_after_the_restart(
        fake, start_bot, tmp_path):
    """The bot dies while its "thinking..." (the defer) is on the way, before the job is
    queued: the reservation was journalled with where its answer goes, and the bot started
    next tells the user that nothing was queued (it stayed "thinking..." forever)."""
    data = tmp_path / "data"
    defer = fake.hold("POST", r"/callback$")
    async with start_bot(data_dir=data) as bot:
        interaction = fake.slash("place")
        await asyncio.wait_for(defer.reached.wait(), PATIENCE_S)

        async def dead(reservation):  # a killed process gives nothing back
            return None

        bot.jobs.release = dead  # type: ignore[method-assign]
    defer.release()  # Discord had it: the user sees "thinking..."
    async with start_bot(data_dir=data):
        told = await fake.wait_for(lambda: interaction.original and "queued" in
                                   (interaction.original.content or "") and interaction.original)
    assert told.content == ("Sorry, your dream failed: the bot restarted before your dream was "
                            "queued, so nothing was started; try again.")
