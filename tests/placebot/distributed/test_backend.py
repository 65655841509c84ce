"""The distributed mode through the real bot and discord.py over the fake Discord: PlaceBots
sharing a real Valkey server with render workers (a fast renderer), any bot delivering any
job through the stored interaction token."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import io
import re

import pytest
from PIL import Image

from placebot.discord_side.client import PlaceBot
from placebot.distributed import keys
from tests.support.bot_harness import bot_settings, custom_ids, embed_fields, wait_result
from tests.support.patience import PATIENCE_S
from tests.support.redis_harness import TEST_TIMINGS, TrackingRenderer, running_workers
from tests.support.valkey import ValkeyProcess

FINAL_EDIT = re.compile(r"/webhooks/\d+/[^/]+/messages/@original")


@pytest.fixture
def valkey(tmp_path):
    with ValkeyProcess(tmp_path / "valkey", password="test-secret") as server:
        yield server


@pytest.fixture
def redis_bot(fake, valkey, tmp_path, tiny_model_dir):
    """redis_bot(name) → an async context manager running a PlaceBot on the shared Redis."""

    @contextlib.asynccontextmanager
    async def start(name: str, timings=TEST_TIMINGS):
        settings = bot_settings(tmp_path / name, tiny_model_dir, redis_url=valkey.url)
        bot = PlaceBot(settings, guild_ready_timeout=0.05)
        bot.jobs.store.timings = timings  # take-overs after 2 s, not 30
        bot.shutdown_grace_s = 2.0
        async with fake.running(bot):
            yield bot

    return start


def result_edits(fake, interaction) -> list:
    """The edits of the interaction's response that carried a result (an embed)."""
    return [r for r in fake.requests if r.method == "PATCH" and interaction.token in r.path
            and FINAL_EDIT.search(r.path) and (r.json or {}).get("embeds")]


async def test_two_bots_and_two_workers_answer_one_place_once(fake, valkey, redis_bot):
    """Two bot processes and two workers: a /place gets its result in its own response,
    edited once, nothing is posted in the channel, and neither bot keeps the job after."""
    renderers = [TrackingRenderer(), TrackingRenderer()]
    async with (running_workers(valkey.url, renderers), redis_bot("a") as a,
                redis_bot("b") as b):
        interaction = fake.slash("place")
        result = await wait_result(fake, interaction)
        await fake.wait_for(lambda: not a.jobs.queue.local and not b.jobs.queue.local)
    assert interaction.callbacks[0]["type"] == 5  # deferred at once
    assert len(result_edits(fake, interaction)) == 1
    assert [i.split(":")[1] for i in custom_ids(result)] == ["reroll", "newcrop", "delete"]
    assert not [r for r in fake.requests if r.method == "POST" and "/channels/" in r.path]


async def test_a_bot_restarted_with_a_job_in_flight_delivers_it_after(fake, valkey, redis_bot):
    """A bot stops while its job renders; the bot started after it (another process, same
    Redis) edits the result into the job's response through the stored token."""
    renderer = TrackingRenderer()
    renderer.close()
    async with running_workers(valkey.url, [renderer]):
        async with redis_bot("first"):
            interaction = fake.slash("place")
            await asyncio.to_thread(renderer.entered.wait, 30)
        renderer.open()
        async with redis_bot("restarted"):
            result = await wait_result(fake, interaction)
    assert len(result_edits(fake, interaction)) == 1 and result.embeds


def die_on_close(bot: PlaceBot) -> None:
    """Closing the bot kills its Redis side as a SIGKILL would: nothing more is acknowledged,
    said or cleaned up (the Discord connection still closes, for the test's sake)."""

    async def die(grace_s: float) -> None:
        backend = bot.jobs
        for task in [*backend.queue._tasks, *backend.queue._chains.values(),
                     backend._positions]:
            task.cancel()
        await backend.store.redis.aclose()

    bot.jobs.shutdown = die  # type: ignore[method-assign]


async def test_a_bot_killed_while_delivering_has_its_job_delivered_by_the_next(
        fake, valkey, redis_bot):
    """A bot dies inside the upload of a result; the bot started after it takes the result
    over once it has been idle past the bound, and edits it in, once."""
    async with running_workers(valkey.url, [TrackingRenderer()]):
        async with redis_bot("dying") as dying:
            uploading = asyncio.Event()

            async def hang(job, result):
                uploading.set()
                await asyncio.Event().wait()

            dying.reporter.finished = hang  # type: ignore[method-assign]
            die_on_close(dying)
            interaction = fake.slash("place")
            await asyncio.wait_for(uploading.wait(), 60)
        async with redis_bot("next"):
            result = await wait_result(fake, interaction)
    assert len(result_edits(fake, interaction)) == 1 and result.embeds


async def test_a_dead_bots_old_event_taken_over_later_never_rewinds_the_result(
        fake, valkey, redis_bot):
    """A bot dies while it shows a running job's "started"; the bot after it delivers the
    result; when it then takes over the dead bot's unacknowledged "started", that event is
    skipped: the result keeps its embed and its Re-roll / New crop / Delete buttons (it was
    turned back into "Dreaming: pass 0/2" with Cancel)."""
    renderer = TrackingRenderer()
    renderer.close()
    async with running_workers(valkey.url, [renderer]):
        async with redis_bot("dying") as dying:
            showing = asyncio.Event()

            async def hang(jobs):
                showing.set()
                await asyncio.Event().wait()

            dying.reporter.started = hang  # type: ignore[method-assign]
            die_on_close(dying)
            interaction = fake.slash("place")
            await asyncio.wait_for(showing.wait(), PATIENCE_S)
        no_take_over = dataclasses.replace(TEST_TIMINGS, claim_idle_s=3600.0)
        async with redis_bot("next", timings=no_take_over) as heir:
            renderer.open()
            result = await wait_result(fake, interaction)
            heir.jobs.store.timings = TEST_TIMINGS  # now it takes the dead bot's event over
            await until_no_event_pending(heir)
    assert [i.split(":")[1] for i in custom_ids(result)] == ["reroll", "newcrop", "delete"]
    final = interaction.original
    assert final.embeds and custom_ids(final) == custom_ids(result)
    assert "Dreaming" not in (final.content or "")


async def until_no_event_pending(bot: PlaceBot) -> None:
    """Until every event was acknowledged, and this bot has none in hand."""
    store = bot.jobs.store

    async def settled() -> None:
        while True:
            summary = await store.redis.xpending(keys.EVENTS, keys.BOT_GROUP)
            if not summary["pending"] and not bot.jobs.queue._chains:
                return
            await asyncio.sleep(0.05)

    await asyncio.wait_for(settled(), PATIENCE_S)


async def test_cancel_clicked_on_another_bot_stops_a_waiting_job(fake, valkey, redis_bot):
    """A job waits (no worker yet); its Cancel button is handled by another bot process:
    the job is dropped, its response says so, and a worker started later never renders it."""
    async with redis_bot("accepting"):
        interaction = fake.slash("place")
        original = await fake.wait_for(
            lambda: interaction.original if interaction.original
            and "Queued" in (interaction.original.content or "") else None)
    [cancel] = custom_ids(original)
    renderer = TrackingRenderer()
    async with redis_bot("clicked"), running_workers(valkey.url, [renderer]):
        click = fake.click(original.id, cancel, user_id=interaction.user_id)
        await fake.wait_for(lambda: click.callbacks)
        await fake.wait_for(lambda: interaction.original.content == "Cancelled.")
    assert click.callbacks[0]["data"]["content"] == "Your job was cancelled."
    assert not renderer.rendered


async def test_place_status_lists_the_render_workers(fake, valkey, redis_bot):
    """/place_status shows each live worker: host, GPU, VRAM mode, model, jobs, heartbeat."""
    renderers = [TrackingRenderer(), TrackingRenderer(("1.5",))]
    async with running_workers(valkey.url, renderers), redis_bot("a"):
        await wait_result(fake, fake.slash("place"))
        status = fake.slash("place_status", user_id=2)
        await fake.wait_for(lambda: status.callbacks)
    fields = status.callbacks[0]["data"]["embeds"][0]["fields"]
    workers = [f["value"] for f in fields if f["name"].startswith("Worker ")]
    assert len(workers) == 2 and any("SD 1.5" in w for w in workers)
    assert all("VRAM full" in w and "last heartbeat" in w for w in workers)


def queued_text(interaction) -> str:
    return (interaction.original.content or "") if interaction.original else ""


async def test_a_waiting_user_sees_the_line_move(fake, valkey, redis_bot):
    """Two jobs wait (no worker yet); the first is cancelled: the second's response moves
    from position 2 to position 1."""
    async with redis_bot("a"):
        first = fake.slash("place", user_id=1)
        await fake.wait_for(lambda: "position 1" in queued_text(first))
        second = fake.slash("place", user_id=2)
        await fake.wait_for(lambda: "position 2" in queued_text(second))
        [cancel] = custom_ids(first.original)
        fake.click(first.original.id, cancel, user_id=1)
        await fake.wait_for(lambda: "position 1" in queued_text(second))
    assert queued_text(first) == "Cancelled."


async def test_redis_out_of_reach_gets_one_clear_line(fake, valkey, redis_bot):
    """The server is down: /place answers at once, ephemerally, that what it needs (the
    server's settings, the queue: both in Redis) can't be reached, and queues nothing."""
    valkey.stop()
    async with redis_bot("a"):
        interaction = fake.slash("place")
        await fake.wait_for(lambda: interaction.callbacks)
    callback = interaction.callbacks[0]
    assert callback["type"] == 4 and callback["data"]["flags"] & 64
    assert "can't be reached right now" in callback["data"]["content"]


async def test_a_job_redis_does_not_store_is_refused_in_a_line_only_its_user_sees(
        fake, valkey, redis_bot):
    """A job whose storing in Redis is refused (its reservation ran out while it was
    prepared) was never accepted: its user reads why in one ephemeral line, the public
    "thinking" message goes, and nothing says "Queued" (a Cancel for a job that does not
    exist)."""
    async with redis_bot("a") as bot:
        # Held for no time: the reservation has run out by the time the job is stored.
        bot.jobs.store.timings = dataclasses.replace(TEST_TIMINGS, reservation_s=-1.0)
        interaction = fake.slash("place")
        await fake.wait_for(lambda: interaction.ephemeral_texts)
        assert await bot.jobs.store.counts() == (0, 0)
    assert "your place in the queue ran out" in interaction.ephemeral_texts[0]
    assert not [r for r in fake.requests if says_queued(r)]


def says_queued(rec) -> bool:
    return isinstance(rec.json, dict) and says_queued_json(rec.json)


async def test_a_job_is_in_redis_before_its_user_reads_queued_so_a_bot_killed_then_loses_none(
        fake, valkey, redis_bot):
    """The bot is killed while its "Queued" edit is on the way: the job is already in Redis
    by then, and the bot started after it (with a worker) delivers its result into the
    user's message (the job was lost, and the message stayed "Queued")."""
    queued = fake.hold("PATCH", r"/messages/@original$", when=says_queued)
    async with redis_bot("dying") as dying:
        die_on_close(dying)
        interaction = fake.slash("place")
        await asyncio.wait_for(queued.reached.wait(), PATIENCE_S)
        stored = await dying.jobs.store.counts()
    queued.release(apply=False)  # the edit never lands: its bot is gone
    assert stored == (1, 0)
    async with running_workers(valkey.url, [TrackingRenderer()]), redis_bot("next"):
        result = await wait_result(fake, interaction)
    assert len(result_edits(fake, interaction)) == 1 and result.embeds


async def test_no_word_of_a_worker_overtakes_the_first_edit_through_any_bot(
        fake, valkey, redis_bot):
    """Two bots: while the accepting bot's "Queued" edit is held, the job is rendered and
    its events read; none of them is shown before "Queued" lands, through either bot, and
    the result is the last word."""
    queued = fake.hold("PATCH", r"/messages/@original$", when=says_queued)
    async with (running_workers(valkey.url, [TrackingRenderer()]), redis_bot("a") as a,
                redis_bot("b")):
        interaction = fake.slash("place")
        await asyncio.wait_for(queued.reached.wait(), PATIENCE_S)
        await until_all_events_read(a.jobs.store)
        queued.release()
        await wait_result(fake, interaction)
    edits = [r.json or {} for r in fake.requests if r.method == "PATCH"
             and interaction.token in r.path and r.path.endswith("/messages/@original")]
    assert str(edits[0].get("content")).startswith("Queued")
    assert not any(says_queued_json(edit) for edit in edits[1:])
    assert edits[-1].get("embeds")


def says_queued_json(body: dict) -> bool:
    return str(body.get("content", "")).startswith("Queued")


async def until_all_events_read(store) -> None:
    """Until the job has ended in Redis and the bots have read every event of it."""

    async def read() -> None:
        while True:
            ended = await store.redis.zcard(keys.RUNNING) == 0 \
                and await store.redis.zcard(keys.WAITING) == 0
            [group] = await store.redis.xinfo_groups(keys.EVENTS)
            if ended and group["lag"] == 0 and group["pending"] >= 1:
                return
            await asyncio.sleep(0.02)

    await asyncio.wait_for(read(), PATIENCE_S)


async def test_re_roll_of_a_result_works_on_another_bot(fake, valkey, redis_bot):
    """A result delivered in the distributed mode: its Re-roll, clicked after the bot that
    accepted the job stopped, is handled by another bot and answered with a new result of
    the same crop."""
    async with running_workers(valkey.url, [TrackingRenderer()]):
        async with redis_bot("first"):
            first = fake.slash("place")
            result = await wait_result(fake, first)
        async with redis_bot("second"):
            [reroll] = [i for i in custom_ids(result) if i.split(":")[1] == "reroll"]
            again = fake.click(result.id, reroll, user_id=first.user_id)
            second = await wait_result(fake, again)
    before, after = embed_fields(result), embed_fields(second)
    assert (after["Canvas"], after["x"], after["y"]) == (before["Canvas"], before["x"],
                                                         before["y"])


async def test_re_roll_of_a_dream_result_works_on_another_bot(fake, valkey, redis_bot):
    """A /dream result's Re-roll, clicked after the bot that kept the user's picture stopped,
    is handled by another bot process (its own data folder): the picture is read back from
    Redis and the same square is dreamed on again, the file fetched only once."""
    buffer = io.BytesIO()
    Image.effect_noise((96, 64), 60).convert("RGB").save(buffer, format="PNG")
    attached = fake.user_attachment("me.png", buffer.getvalue())
    async with running_workers(valkey.url, [TrackingRenderer()]):
        async with redis_bot("first"):
            result = await wait_result(fake, fake.slash("dream", {"image": attached}))
        async with redis_bot("second"):
            [reroll] = [i for i in custom_ids(result) if i.split(":")[1] == "reroll"]
            click = fake.click(result.id, reroll, user_id=50)
            await fake.wait_for(lambda: click.ephemeral_texts
                                or (click.original and click.original.embeds))
            assert click.ephemeral_texts == []  # not "the picture ... has expired"
            again = click.original
    before, after = embed_fields(result), embed_fields(again)
    assert (after["Square"], after["Pixel"]) == (before["Square"], before["Pixel"])
    assert after["Seed"] != before["Seed"]
    assert _strip_start(again) == _strip_start(result)
    assert len(fake.attachment_fetches) == 1


def _strip_start(message) -> bytes:
    """The strip's first frame (what the job dreamed on), as raw pixels."""
    data = next(d for n, d in message.attachments if n.endswith("_strip.png"))
    image = Image.open(io.BytesIO(data)).convert("RGB")
    return image.crop((0, 0, image.height, image.height)).tobytes()


def taken_results(fake, interaction) -> list:
    """The result edits of the interaction's response that Discord took."""
    return [r for r in result_edits(fake, interaction) if r.status == 200]


def carries_result_of(interaction):
    return lambda rec: interaction.token in rec.path and isinstance(rec.json, dict) \
        and bool(rec.json.get("embeds"))


async def test_a_result_retried_through_an_outage_holds_up_no_other_jobs_events(
        fake, valkey, redis_bot, monkeypatch):
    """Discord refuses one job's result again and again; another job's result is delivered
    meanwhile. (The bot handles a bounded number of events at once, here one: a result being
    retried held that slot, and every other job's events waited behind it.)"""
    from placebot.distributed import bot_side

    monkeypatch.setattr(bot_side, "CONCURRENT_EVENTS", 1)
    async with running_workers(valkey.url, [TrackingRenderer()]), redis_bot("a"):
        first = fake.slash("place", user_id=1)
        outage = fake.outage("PATCH", r"/messages/@original$", when=carries_result_of(first))
        await fake.wait_for(lambda: outage.hits >= 1)
        second = fake.slash("place", user_id=2)
        await wait_result(fake, second)
        assert not first.original.embeds
        outage.lift()
        await wait_result(fake, first)
    assert len(taken_results(fake, first)) == 1


async def test_a_result_kept_through_an_outage_is_delivered_once_by_the_next_bot(
        fake, valkey, redis_bot):
    """A result is being retried through a Discord outage when its bot stops: it stays kept
    in Redis, and once Discord is back the bot started next delivers it, once."""
    async with running_workers(valkey.url, [TrackingRenderer()]):
        async with redis_bot("stopping"):
            interaction = fake.slash("place")
            outage = fake.outage("PATCH", r"/messages/@original$",
                                 when=carries_result_of(interaction))
            await fake.wait_for(lambda: outage.hits >= 1)
        outage.lift()
        async with redis_bot("next"):
            result = await wait_result(fake, interaction)
    assert len(taken_results(fake, interaction)) == 1 and result.embeds


async def test_an_interaction_delivered_to_two_bot_processes_is_admitted_once(
        fake, valkey, redis_bot):
    """Two bot processes without shards of their own both receive every interaction: a
    /place of a user allowed one job is admitted once (one "thinking", one job, its result),
    and nobody is told "you already have 1 job waiting" of a job that does not exist."""
    async with (running_workers(valkey.url, [TrackingRenderer()]), redis_bot("a") as a,
                redis_bot("b")):
        assert len(fake.sessions) == 2 and set(fake.sessions.values()) == {(0, 1)}
        interaction = fake.slash("place")
        result = await wait_result(fake, interaction)
        jobs = await a.jobs.store.redis.keys(keys.job("*"))
    assert interaction.callbacks == [{"type": 5}] and interaction.ephemeral_texts == []
    assert len(jobs) == 1 and len(taken_results(fake, interaction)) == 1 and result.embeds


async def test_bot_processes_with_their_own_shards_each_receive_their_guilds_only(
        fake, valkey, tmp_path, tiny_model_dir):
    """PLACE_SHARDS=2 with PLACE_SHARD_IDS=0 in one process and 1 in the other: each
    connects with its own shard, and the guild's /place reaches the one whose shard holds
    the guild, which answers it."""
    from placebot.discord_side.client import build_bot

    owner = fake.shard_of_guild(2)
    bots = [build_bot(bot_settings(tmp_path / f"shard{n}", tiny_model_dir, shards="2",
                                   shard_ids=(n,), redis_url=valkey.url),
                      guild_ready_timeout=0.05) for n in (0, 1)]
    async with (running_workers(valkey.url, [TrackingRenderer()]),
                fake.running(bots[0]), fake.running(bots[1])):
        assert sorted(fake.sessions.values()) == [(0, 2), (1, 2)]
        interaction = fake.slash("place")
        result = await wait_result(fake, interaction)
        answered = [bot for bot in bots if bot.get_guild(fake.guild_id) is not None]
    assert answered == [bots[owner]] and result.embeds
    assert interaction.callbacks == [{"type": 5}]


async def test_a_bot_killed_on_its_defer_has_the_thinking_message_answered_by_a_bot(
        fake, valkey, redis_bot):
    """The bot dies while its "thinking..." is on the way, before the job is stored: the
    reservation kept where its answer goes, and once it runs out a bot tells the user that
    nothing was queued (it stayed "thinking..." forever)."""
    defer = fake.hold("POST", r"/callback$")
    brief = dataclasses.replace(TEST_TIMINGS, reservation_s=1.0)
    async with redis_bot("dying", timings=brief) as dying:
        die_on_close(dying)
        interaction = fake.slash("place")
        await asyncio.wait_for(defer.reached.wait(), PATIENCE_S)

        async def dead(reservation):  # a killed process gives nothing back
            return None

        dying.jobs.release = dead  # type: ignore[method-assign]
    defer.release()  # Discord had it: the user sees "thinking..."
    async with redis_bot("next"):
        told = await fake.wait_for(lambda: interaction.original and "queued" in
                                   (interaction.original.content or "") and interaction.original)
    assert "the bot restarted before your dream was queued" in told.content
