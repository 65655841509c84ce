"""Buttons: each action parsed by its own DynamicItem; ids that don't parse are answered."""

import re

import pytest

from pipeline.params import Crop, RenderJob
from placebot import client
from placebot.views import (
    BUTTONS,
    CancelButton,
    DeleteButton,
    NewCropButton,
    RerollButton,
    cancel_id,
    delete_id,
    is_known_button,
    newcrop_id,
    reroll_id,
)
from tests.support.bot_harness import custom_ids, embed_fields, wait_result

RENDER = RenderJob(model="1.5", crop=Crop("2022", 10, 20), seed=7, strength=0.8, steps=50,
                   passes=4)
FORGED = [
    "place:reroll:../../etc/passwd",
    "place:reroll:1.4:2017:3:4:0.5:4:99",  # 98 recursions
    "place:delete:not-a-user",
    "place:explode:1",
    "someone-elses-button",
]


@pytest.mark.parametrize(("custom_id", "button"), [
    (reroll_id(RENDER), RerollButton),
    (newcrop_id(RENDER), NewCropButton),
    (delete_id(42), DeleteButton),
    (cancel_id("0123456789ab", 42), CancelButton),
])
def test_each_action_is_parsed_by_its_own_button_class(custom_id, button):
    """Exactly one registered DynamicItem's template matches each kind of id."""
    matching = [b for b in BUTTONS if b.__discord_ui_compiled_template__.fullmatch(custom_id)]
    assert matching == [button]


async def test_reroll_and_newcrop_ids_give_back_their_request():
    """A Re-roll id keeps the crop and settings (seed left open); New crop keeps the settings."""
    reroll = await _parsed(RerollButton, reroll_id(RENDER))
    newcrop = await _parsed(NewCropButton, newcrop_id(RENDER))
    assert (reroll.request.canvas, reroll.request.x, reroll.request.y) == ("2022", 10, 20)
    assert (reroll.request.recursions, reroll.request.seed) == (3, None)
    assert (newcrop.request.model, newcrop.request.strength, newcrop.request.canvas) == \
        ("1.5", 0.8, None)


async def test_delete_and_cancel_ids_give_back_owner_and_job():
    """Delete carries its owner; Cancel its job id and owner."""
    delete = await _parsed(DeleteButton, delete_id(42))
    cancel = await _parsed(CancelButton, cancel_id("0123456789ab", 43))
    assert delete.owner_id == 42
    assert (cancel.job_id, cancel.owner_id) == ("0123456789ab", 43)


async def _parsed(button, custom_id):
    match = button.__discord_ui_compiled_template__.fullmatch(custom_id)
    return await button.from_custom_id(None, None, match)


def test_custom_ids_carry_no_path_or_free_text():
    """Only digits and dots parse: no user text can reach a file name."""
    assert is_known_button("place:reroll:1.5:2022:10:20:0.8:50:4")
    assert not is_known_button("place:reroll:1.5:../..:10:20:0.8:50:4")
    assert not re.search(r"[^\w:.]", reroll_id(RENDER))


@pytest.mark.parametrize("custom_id", FORGED)
async def test_forged_or_stale_custom_ids_get_an_ephemeral_answer(fake, start_bot, custom_id):
    """An id no button parses, or whose values are out of bounds, is refused ephemerally."""
    async with start_bot() as bot:
        result = await wait_result(fake, fake.slash("place"))
        click = fake.click_forged(result.id, custom_id, user_id=77)
        await fake.wait_for(lambda: click.callbacks)
        assert len(bot.jobs.queue) == 0
    callback = click.callbacks[0]
    assert callback["type"] == 4 and callback["data"]["flags"] & 64
    assert ("no longer valid" in callback["data"]["content"]
            or "recursions must be 0-5" in callback["data"]["content"])


async def test_cancel_of_a_finished_job_says_so(fake, start_bot):
    """Cancel on a job that already ended gets an ephemeral 'no longer waiting or running'."""
    async with start_bot():
        interaction = fake.slash("place", user_id=4)
        result = await wait_result(fake, interaction)
        stale = fake.click_forged(result.id, cancel_id("0123456789ab", 4), user_id=4)
        await fake.wait_for(lambda: stale.callbacks)
    assert "no longer waiting or running" in stale.callbacks[0]["data"]["content"]


async def test_a_click_works_when_the_cogs_failed_to_load(fake, start_bot, tmp_path,
                                                          monkeypatch):
    """Buttons need no cog: with every extension failing to load, Re-roll still renders."""
    data = tmp_path / "data"
    async with start_bot(data_dir=data):
        first = await wait_result(fake, fake.slash("place", {"canvas": "2017", "x": 3, "y": 4}))
    monkeypatch.setattr(client, "EXTENSIONS", ("cogs.no_such_cog",))
    async with start_bot(data_dir=data) as bot:
        assert not bot.cogs  # nothing loaded
        reroll = next(i for i in custom_ids(first) if i.startswith("place:reroll"))
        again = await wait_result(fake, fake.click(first.id, reroll, user_id=50))
    assert (embed_fields(again)["x"], embed_fields(again)["y"]) == ("3", "4")
