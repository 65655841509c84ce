"""Buttons under messages posted before the custom_id format changed keep working."""

import pytest

from pipeline.params import decode_payload
from placebot.discord_side.views import (
    NewCropButton,
    OldNewCropButton,
    OldRerollButton,
    RerollButton,
)
from tests.support.bot_harness import embed_fields, wait_result


def _results(fake):
    return [m for m in fake.messages.values() if m.embeds]


async def test_an_old_reroll_button_renders_the_same_crop(fake, start_bot):
    """place:reroll:model:canvas:x:y:strength:steps:passes becomes today's request."""
    async with start_bot():
        first = await wait_result(fake, fake.slash("place", user_id=41))
        click = fake.click_forged(first.id, "place:reroll:1.5:2017:3:4:0.5:4:3", user_id=42)
        again = await wait_result(fake, click)
    fields = embed_fields(again)
    assert (fields["Model"], fields["Canvas"], fields["x"], fields["y"]) == ("1.5", "2017",
                                                                            "3", "4")
    assert (fields["Strength"], fields["Steps"], fields["Recursions"]) == ("0.5", "4", "2")


async def test_an_old_newcrop_button_renders_with_its_settings(fake, start_bot):
    """place:newcrop:model:strength:steps:passes becomes today's request, with a new crop."""
    async with start_bot():
        first = await wait_result(fake, fake.slash("place", user_id=43))
        click = fake.click_forged(first.id, "place:newcrop:1.4:0.75:4:1", user_id=44)
        again = await wait_result(fake, click)
    fields = embed_fields(again)
    assert (fields["Model"], fields["Strength"], fields["Recursions"]) == ("1.4", "0.75", "0")


async def test_an_old_button_with_bad_values_is_refused_like_a_new_one(fake, start_bot):
    """The old template's values are checked as any request's are (passes 99: too many)."""
    async with start_bot():
        first = await wait_result(fake, fake.slash("place", user_id=45))
        click = fake.click_forged(first.id, "place:reroll:1.4:2017:3:4:0.5:4:99", user_id=46)
        await fake.wait_for(lambda: click.callbacks)
    assert click.callbacks[0]["data"]["flags"] & 64
    assert "recursions must be 0-5" in click.callbacks[0]["data"]["content"]




@pytest.mark.parametrize(("old_id", "new_id", "old", "today"), [
    ("place:reroll:1.5:2017:3:4:0.5:4:3", "place:reroll:m1.5:c2017:x3:y4:s0.5:t4:r2",
     OldRerollButton, RerollButton),
    ("place:newcrop:1.4:0.75:4:1", "place:newcrop:m1.4:s0.75:t4:r0", OldNewCropButton,
     NewCropButton),
])
async def test_an_old_button_is_todays_button_with_another_template(old_id, new_id, old, today):
    """An old id reads into the payload of today's id for the same job, and its click is
    handled by today's class (no handling of its own)."""
    async def parsed(button, custom_id):
        match = button.__discord_ui_compiled_template__.fullmatch(custom_id)
        return await button.from_custom_id(None, None, match)

    from_old, from_today = await parsed(old, old_id), await parsed(today, new_id)
    assert decode_payload(from_old.payload) == decode_payload(from_today.payload)
    assert isinstance(from_old, today) and old.callback is today.callback
