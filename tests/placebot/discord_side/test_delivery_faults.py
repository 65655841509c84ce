"""Faults between the bot and Discord or the model: the user is told, the bot carries on."""

import asyncio
import io
import shutil

from PIL import Image

from pipeline.engine import Renderer
from pipeline.models import ModelStore
from tests.support.bot_harness import embed_fields, render_after_token_expiry, wait_result
from tests.support.patience import PATIENCE_S


def _patches(fake, interaction):
    return [r for r in fake.requests if r.method == "PATCH" and interaction.token in r.path]


async def test_model_that_fails_to_load_is_reported_and_the_next_job_retries(
        fake, start_bot, tiny_model_dir, tmp_path):
    """Unknown folder → the user is told in one line; once it exists, the next job works."""
    model = tmp_path / "model-later"
    renderer = Renderer(ModelStore({"1.4": str(model), "1.5": str(model)}, device="cpu"))
    async with start_bot(renderer=renderer) as bot:
        first = fake.slash("place", user_id=1)
        await fake.wait_for(lambda: first.original and "failed" in first.original.content)
        assert "model 1.4 could not be loaded" in first.original.content
        assert "Traceback" not in first.original.content
        shutil.copytree(tiny_model_dir, model)
        second = fake.slash("place", user_id=1)
        await wait_result(fake, second)
        assert not bot.is_closed()


async def test_first_job_says_the_model_is_loading(fake, start_bot, tiny_model_dir):
    renderer = Renderer(ModelStore({"1.4": str(tiny_model_dir)}, device="cpu"))
    async with start_bot(renderer=renderer):
        first = fake.slash("place", user_id=1)
        await wait_result(fake, first)
        second = fake.slash("place", user_id=2)
        await wait_result(fake, second)
    said = lambda i: [r.json.get("content") or "" for r in _patches(fake, i) if r.json]  # noqa: E731
    texts = said(first)
    loading = next(n for n, text in enumerate(texts) if "Loading Stable Diffusion 1.4" in text)
    # the notice stays up during the load: nothing but the passes and the result follow it
    assert all("pass" in text or text.startswith("<@") for text in texts[loading + 1:])
    assert not any("position 0" in text for text in texts)
    assert not any("Loading" in text for text in said(second))


async def test_gateway_drop_mid_job_resumes_and_the_result_arrives(fake, start_bot, gated):
    async with start_bot():
        gated.close()
        interaction = fake.slash("place")
        assert await asyncio.to_thread(gated.entered.wait, PATIENCE_S)
        await fake.drop_gateway()
        gated.open()
        await fake.wait_for(lambda: fake.resumes == 1)
        await wait_result(fake, interaction)
        later = fake.slash("place", user_id=99)  # and the resumed session still takes commands
        await wait_result(fake, later)


async def test_rate_limited_upload_is_retried_and_arrives(fake, start_bot):
    fake.fail_next("PATCH", r"/messages/@original", 429, times=2, retry_after=0.2,
                   when=lambda rec: bool(rec.json and rec.json.get("embeds")))
    async with start_bot():
        result = await wait_result(fake, fake.slash("place"))
    assert len(result.attachments) == 3
    assert sum(r.status == 429 for r in fake.requests) == 2


async def test_small_upload_limit_gets_a_smaller_encoding(fake, start_bot):
    """A server whose limit is below the PNGs gets JPEGs instead of a failure."""
    async with start_bot():
        interaction = fake.slash("place", attachment_size_limit=200_000)
        result = await wait_result(fake, interaction)
    assert all(len(data) <= 200_000 for _, data in result.attachments)
    assert result.attachments[0][0].endswith(".jpg")
    Image.open(io.BytesIO(result.attachments[0][1])).verify()


async def test_upload_refused_as_too_large_is_re_encoded(fake, start_bot):
    fake.fail_next("PATCH", r"/messages/@original$", 413,
                   {"code": 40005, "message": "Request entity too large"},
                   when=lambda rec: bool(rec.json and rec.json.get("embeds")))
    async with start_bot():
        result = await wait_result(fake, fake.slash("place"))
    assert [name[-4:] for name, _ in result.attachments] == [".png", ".png"]  # no animation


INVALID_FORM_BODY = {"code": 50035, "message": "Invalid Form Body", "errors": {"embeds": {
    "0": {"title": {"_errors": [{"code": "BASE_TYPE_MAX_LENGTH",
                                 "message": "Must be 256 or fewer in length."}]}}}}}


def _carries_the_result(rec, *parts):
    """A request with the result's strip attached and any of `parts` in its body."""
    return (any("_strip" in name for name, _ in rec.files)
            and any((rec.json or {}).get(part) for part in parts))


async def _delivered(fake, interaction):
    """The interaction's @original once it carries the result's strip, embed or not."""
    return await fake.wait_for(
        lambda: interaction.original if interaction.original and any(
            "_strip" in name for name, _ in interaction.original.attachments) else None)


async def test_a_result_refused_as_malformed_is_delivered_without_its_embed(fake, start_bot):
    """Discord refuses the result's message as malformed (400/50035): the picture is sent
    again without the embed, buttons kept, and the user gets it, not a failure."""
    fake.fail_next("PATCH", r"/messages/@original$", 400, INVALID_FORM_BODY,
                   when=lambda rec: _carries_the_result(rec, "embeds"))
    async with start_bot():
        interaction = fake.slash("place", user_id=21)
        result = await _delivered(fake, interaction)
    assert result.embeds == [] and "details could not be shown" in result.content
    assert len(result.attachments) == 3 and "<@21>" in result.content
    assert [c["custom_id"].split(":")[1] for c in result.components[0]["components"]] == [
        "reroll", "newcrop", "delete"]
    assert "failed" not in result.content


async def test_a_result_refused_again_without_its_embed_goes_without_buttons(fake, start_bot):
    """Refused with its embed and then with its buttons: the picture still arrives, bare,
    and the Cancel button of the waiting message is gone."""
    fake.fail_next("PATCH", r"/messages/@original$", 400, INVALID_FORM_BODY, times=2,
                   when=lambda rec: _carries_the_result(rec, "embeds", "components"))
    async with start_bot():
        interaction = fake.slash("place", user_id=22)
        result = await _delivered(fake, interaction)
    assert (result.embeds, result.components) == ([], [])
    assert len(result.attachments) == 3 and "details and buttons" in result.content


async def test_channel_that_refuses_the_bot_gets_a_dm_instead(fake, start_bot, gated):
    """Token dead and no permission in the channel: the user still gets the result, by DM."""
    fake.forbidden_channels.add(str(fake.channel_id))
    async with start_bot():
        await render_after_token_expiry(fake, gated, user_id=12)
        dm = await fake.wait_for(lambda: [m for m in fake.messages.values()
                                          if m.embeds and m.channel_id != str(fake.channel_id)])
    assert fake.channels[dm[0].channel_id]["type"] == 1  # a DM channel
    assert embed_fields(dm[0])["Recursions"] == "1"


async def test_job_past_the_timeout_is_stopped_and_its_user_told(fake, start_bot, gated):
    async with start_bot(job_timeout_s=0.05, steps=40, strength=1.0) as bot:
        interaction = fake.slash("place")
        await fake.wait_for(lambda: interaction.original and
                            "longer than the 0.05 s limit" in interaction.original.content, 60)
        after = fake.slash("place", user_id=5)
        bot.jobs.worker.job_timeout_s = 600
        await wait_result(fake, after)


async def test_unwritable_output_dir_costs_the_user_nothing(fake, start_bot, tmp_path, caplog):
    """PLACE_OUTPUT_DIR under a file (unwritable even for root): both results are delivered,
    the log names the setting, and /place_status says it once."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the output folder should be")
    async with start_bot(output_dir=blocker / "outputs"):
        first = await wait_result(fake, fake.slash("place", user_id=31))
        second = await wait_result(fake, fake.slash("place", user_id=32))
        status = fake.slash("place_status", user_id=33)
        await fake.wait_for(lambda: status.callbacks)
    assert first.embeds and second.embeds and "failed" not in first.content
    described = str(status.callbacks[0]["data"])
    assert described.count("PLACE_OUTPUT_DIR") == 1
    assert any("PLACE_OUTPUT_DIR" in r.getMessage() for r in caplog.records)


async def test_full_output_dir_costs_the_user_nothing(fake, start_bot, tmp_path, monkeypatch):
    """A full disk (the save made to fail in-process with ENOSPC): the result is delivered and
    /place_status gives the reason."""
    import errno

    def disk_full(result, folder):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("placebot.discord_side.discord_reporter.save_result", disk_full)
    async with start_bot(output_dir=tmp_path / "outputs"):
        result = await wait_result(fake, fake.slash("place", user_id=34))
        status = fake.slash("place_status", user_id=35)
        await fake.wait_for(lambda: status.callbacks)
    assert result.embeds and "failed" not in result.content
    assert "No space left on device" in str(status.callbacks[0]["data"])


def _result_of(interaction):
    """A request carrying the interaction's result (its embed)."""
    return lambda rec: interaction.token in rec.path and isinstance(rec.json, dict) \
        and bool(rec.json.get("embeds"))


async def test_a_result_retried_through_an_outage_holds_up_no_job_behind_it(
        fake, start_bot, gated):
    """Discord refuses the first job's result (503, again and again) while a second job waits
    behind it: the second is rendered and delivered during the outage (it waited until
    Discord took the first), and the first is delivered once Discord is back."""
    async with start_bot() as bot:
        gated.close()
        first = fake.slash("place", user_id=1)
        assert await asyncio.to_thread(gated.entered.wait, PATIENCE_S)
        outage = fake.outage("PATCH", r"/messages/@original$", when=_result_of(first))
        second = fake.slash("place", user_id=2)
        await fake.wait_for(lambda: "Queued" in (second.original.content or "")
                            if second.original else False)
        gated.open()
        await wait_result(fake, second)
        assert outage.hits >= 1 and not first.original.embeds  # still retried
        outage.lift()
        await wait_result(fake, first)
        await bot.jobs.worker.settled(PATIENCE_S)
    assert len([r for r in fake.requests if _result_of(first)(r) and r.status == 200]) == 1
