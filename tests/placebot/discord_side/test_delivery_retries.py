"""A finished result reaches its user once, whatever Discord or the process does meanwhile."""

import asyncio

import pytest

from pipeline.engine import Renderer
from pipeline.models import ModelStore
from tests.support.bot_harness import render_after_token_expiry, wait_result
from tests.support.patience import PATIENCE_S


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch):
    """Retry a refused upload after 10 ms (then 20, 40...) instead of seconds."""
    monkeypatch.setattr("placebot.jobs.outbox.FIRST_RETRY_S", 0.01)


def _is_result(rec):
    return bool(rec.json and rec.json.get("embeds"))


def _results(fake):
    return [m for m in fake.messages.values() if m.embeds and not m.deleted]


async def test_result_outlives_a_discord_outage_during_its_upload(fake, start_bot):
    """Discord answers 503 to the upload for longer than discord.py's own five tries of a
    webhook edit (about 25 s of its waits): the result arrives, "failed" never shows."""
    outage = fake.outage("PATCH", r"/messages/@original$", when=_is_result)
    async with start_bot():
        interaction = fake.slash("place")
        await fake.wait_for(lambda: outage.hits >= 6, PATIENCE_S)
        outage.lift()
        result = await wait_result(fake, interaction)
    assert len(result.attachments) == 3
    assert "failed" not in result.content and len(_results(fake)) == 1


async def test_result_goes_to_the_channel_when_the_token_dies_during_an_outage(
        fake, start_bot):
    """The outage outlasts the interaction token: the result is posted in the channel."""
    outage = fake.outage("PATCH", r"/messages/@original$", when=_is_result)
    async with start_bot():
        interaction = fake.slash("place", user_id=21)
        await fake.wait_for(lambda: outage.hits >= 2, 60)
        fake.expire_token(interaction.token)
        outage.lift()
        [posted] = await fake.wait_for(lambda: _results(fake), 60)
    assert posted.interaction_token is None and posted.content.startswith("<@21>")


async def test_result_kept_over_a_restart_is_delivered_without_rendering_again(
        fake, start_bot, gated, tmp_path):
    """Discord is down from the end of the render to the shutdown: the next start delivers
    the kept result and the renderer is not called for it again."""
    data = tmp_path / "data"
    outage = fake.outage("*", r"/messages", when=_is_result)
    async with start_bot(data_dir=data):
        fake.slash("place", user_id=22)
        await fake.wait_for(lambda: outage.hits >= 2, 60)
    outage.lift()
    renders = gated.calls
    assert not _results(fake)
    async with start_bot(data_dir=data):
        [delivered] = await fake.wait_for(lambda: _results(fake), 60)
        await asyncio.sleep(0)
    assert gated.calls == renders
    assert "<@22>" in delivered.content


async def test_result_posted_as_the_bot_died_is_not_posted_again(fake, start_bot, gated,
                                                                 tmp_path):
    """The channel post reached Discord but its reply was lost (the process died, or the
    connection broke); after the restart the bot posts again with the same nonce, and
    Discord keeps one message."""
    data = tmp_path / "data"
    fake.fail_next("POST", r"/channels/\d+/messages", 503, lose_reply=True, when=_is_result)
    outage = fake.outage("POST", r"/channels/\d+/messages", when=_is_result)
    async with start_bot(data_dir=data):
        await render_after_token_expiry(fake, gated, user_id=23)
        await fake.wait_for(lambda: outage.hits >= 1, 60)
    outage.lift()
    assert len(_results(fake)) == 1  # Discord has it; the bot could not know
    async with start_bot(data_dir=data) as bot:
        await fake.wait_for(lambda: sum(r.method == "POST" and r.status == 200 and _is_result(r)
                                        for r in fake.requests) >= 1, 60)
        journal = bot.jobs.journal
        ids = [row[0] for row in journal._db.execute("SELECT job_id FROM jobs")]
        await fake.wait_for(lambda: {journal.state(i) for i in ids} == {"done"})
    [posted] = _results(fake)
    assert posted.content.startswith("<@23>") and posted.nonce



async def test_a_refusal_no_retry_can_mend_is_reported_and_not_kept(fake, start_bot, tmp_path):
    """Discord refuses the upload with a 400: the user is told it failed (no endless retry)
    and the data folder keeps nothing of it."""
    data = tmp_path / "data"
    fake.fail_next("PATCH", r"/messages/@original$", 400, when=_is_result)
    async with start_bot(data_dir=data):
        interaction = fake.slash("place", user_id=24)
        await fake.wait_for(lambda: interaction.original and
                            "failed" in interaction.original.content, 60)
    assert not list((data / "outbox").iterdir())


def _is_failure_notice(rec):
    return bool(rec.json and "failed" in (rec.json.get("content") or ""))


async def test_failure_notice_outlives_a_discord_outage(fake, start_bot, tmp_path):
    """A job fails while Discord answers 503 for longer than discord.py's own five tries of a
    webhook edit: the reason is tried again until Discord takes it, in the user's own message
    (not lost, and not moved to a second message)."""
    missing = str(tmp_path / "no-model-here")
    renderer = Renderer(ModelStore({"1.4": missing, "1.5": missing}, device="cpu"))
    outage = fake.outage("PATCH", r"/messages/@original$", when=_is_failure_notice)
    async with start_bot(renderer=renderer):
        interaction = fake.slash("place", user_id=25)
        await fake.wait_for(lambda: outage.hits >= 6, PATIENCE_S)
        outage.lift()
        await fake.wait_for(lambda: interaction.original and
                            "failed" in interaction.original.content, PATIENCE_S)
    assert "could not be loaded" in interaction.original.content
    assert not [m for m in fake.messages.values() if m.interaction_token is None]
