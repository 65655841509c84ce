"""Buttons that don't parse, or whose job is gone, are answered, never ignored."""

import pytest

from placebot.views import cancel_id, parse_custom_id
from tests.support.bot_harness import wait_result

FORGED = [
    "place:reroll:../../etc/passwd",
    "place:reroll:m1.4:c2017:x3:y4:s0.5:t4:r98",  # 98 recursions
    "place:reroll:1.4:2017:3:4:0.5:4:4",  # the first version's format
    "place:delete:not-a-user",
    "place:explode:1",
    "someone-elses-button",
]


@pytest.mark.parametrize("custom_id", FORGED)
async def test_forged_or_stale_custom_ids_get_an_ephemeral_answer(fake, start_bot, custom_id):
    async with start_bot() as bot:
        result = await wait_result(fake, fake.slash("place"))
        click = fake.click_forged(result.id, custom_id, user_id=77)
        await fake.wait_for(lambda: click.callbacks)
        assert len(bot.queue) == 0
    callback = click.callbacks[0]
    assert callback["type"] == 4 and callback["data"]["flags"] & 64
    assert ("no longer valid" in callback["data"]["content"]
            or "recursions must be 0-5" in callback["data"]["content"])


async def test_cancel_of_a_finished_job_says_so(fake, start_bot):
    async with start_bot():
        interaction = fake.slash("place", user_id=4)
        result = await wait_result(fake, interaction)
        stale = fake.click_forged(result.id, cancel_id("0123456789ab", 4), user_id=4)
        await fake.wait_for(lambda: stale.callbacks)
    assert "no longer waiting or running" in stale.callbacks[0]["data"]["content"]


def test_custom_ids_carry_no_path_or_free_text():
    """Only digits and dots reach a parsed request: no user text can reach a file name."""
    action = parse_custom_id("place:reroll:m1.5:c2022:x10:y20:s0.8:t50:r3")
    assert (action.request.canvas, action.request.x, action.request.recursions) == ("2022", 10, 3)
    with pytest.raises(ValueError, match="unknown button"):
        parse_custom_id("place:reroll:m1.5:c../..:x10:y20:s0.8:t50:r3")
