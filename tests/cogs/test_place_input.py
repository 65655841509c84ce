"""Every /place option at and past its bounds, DMs and the cooldown, through the real bot."""

import asyncio

import pytest

from pipeline.params import MAX_SEED

ACCEPTED = [
    {"canvas": "2017", "x": 0, "y": 0},
    {"canvas": "2017", "x": 968, "y": 968},
    {"canvas": "2023", "x": 2968, "y": 1968},
    {"seed": 0},
    {"seed": MAX_SEED},
    {"strength": 1.0},
    {"strength": 0.25},  # 4 steps x 0.25 = exactly one denoising step
    {"recursions": 0},
    {"recursions": 5},
    {"model": "1.5"},
]
REFUSED = [
    ({"canvas": "2017", "x": 969, "y": 0}, "x must be 0-968 and y 0-968"),
    ({"canvas": "2022", "x": 0, "y": 1969}, "x must be 0-1968 and y 0-1968"),
    ({"canvas": "2023", "x": -1, "y": 0}, "x must be 0-2968 and y 0-1968"),
    ({"canvas": "2019"}, "canvas '2019' is unknown"),
    ({"y": 5}, "give both x and y"),
    ({"seed": -1}, f"seed must be 0-{MAX_SEED} but is -1"),
    ({"seed": MAX_SEED + 1}, f"seed must be 0-{MAX_SEED}"),
    ({"strength": 0.0}, "strength must be in (0, 1] but is 0.0"),
    ({"strength": 1.01}, "strength must be in (0, 1] but is 1.01"),
    ({"strength": 0.2}, "4 x 0.2 = 0.8 runs no denoising step"),
    ({"recursions": 6}, "recursions must be 0-5 but is 6"),
    ({"recursions": -1}, "recursions must be 0-5 but is -1"),
    ({"model": "2.1"}, "model '2.1' is unknown"),
]


async def test_options_at_their_bounds_are_accepted(fake, start_bot, gated):
    async with start_bot(user_max=len(ACCEPTED), queue_max=50) as bot:
        gated.close()
        interactions = [fake.slash("place", options) for options in ACCEPTED]
        await fake.wait_for(lambda: all(i.callbacks for i in interactions))
        queue = bot.jobs.queue
        await fake.wait_for(lambda: len(queue) + len(queue.running) == len(ACCEPTED))
    assert [i.callbacks[0]["type"] for i in interactions] == [5] * len(ACCEPTED)


@pytest.mark.parametrize(("options", "expected"), REFUSED,
                         ids=[str(options) for options, _ in REFUSED])
async def test_options_past_their_bounds_are_refused_naming_what_is_allowed(
        fake, start_bot, options, expected):
    """Values a real client would block (Discord checks min/max) are checked again here."""
    async with start_bot() as bot:
        interaction = fake.slash("place", options)
        await fake.wait_for(lambda: interaction.callbacks)
        assert len(bot.jobs.queue) == 0
    callback = interaction.callbacks[0]
    assert callback["type"] == 4 and callback["data"]["flags"] & 64
    assert expected in callback["data"]["content"]


async def test_place_in_a_dm_works(fake, start_bot):
    """With global commands, /place in a DM renders and answers there."""
    async with start_bot(discord_guild_id=None):
        assert "global" in fake.commands
        interaction = fake.slash("place", guild=False, user_id=31)
        result = await fake.wait_for(lambda: interaction.original and interaction.original.embeds
                                     and interaction.original, 60)
    assert fake.channels[result.channel_id]["type"] == 1


async def test_cooldown_refuses_a_quick_second_job(fake, start_bot):
    async with start_bot(user_cooldown_s=60, user_max=5):
        first = fake.slash("place", user_id=8)
        await fake.wait_for(lambda: first.callbacks)
        await asyncio.sleep(0)
        second = fake.slash("place", user_id=8)
        await fake.wait_for(lambda: second.callbacks)
    assert first.callbacks[0]["type"] == 5
    assert "(cooldown)" in second.callbacks[0]["data"]["content"]


async def test_two_place_at_the_same_moment_under_a_cooldown_accept_one(fake, start_bot,
                                                                         gated):
    """Both arrive before either is answered: the cooldown holds for the second."""
    async with start_bot(user_cooldown_s=60, user_max=5) as bot:
        gated.close()  # the accepted job stays in the queue while the test looks
        both = [fake.slash("place", user_id=9), fake.slash("place", user_id=9)]
        await fake.wait_for(lambda: all(i.callbacks for i in both))
        accepted = [i for i in both if i.callbacks[0]["type"] == 5]
        refused = [i for i in both if i.callbacks[0]["type"] == 4]
        assert len(accepted) == 1 and len(refused) == 1
        await fake.wait_for(lambda: len(bot.jobs.queue) + len(bot.jobs.queue.running) == 1)
    assert "(cooldown)" in refused[0].callbacks[0]["data"]["content"]


WRONG_TYPES = [
    ({"seed": "abc"}, "seed"),  # a string where an integer belongs
    ({"seed": 2.5}, "seed"),
    ({"canvas": "2017", "x": 1.5, "y": 3}, "x"),
    ({"recursions": "two"}, "recursions"),
]


@pytest.mark.parametrize(("options", "name"), WRONG_TYPES,
                         ids=[str(options) for options, _ in WRONG_TYPES])
async def test_an_option_of_the_wrong_type_gets_the_same_clear_error(
        fake, start_bot, options, name):
    """A value of another type than declared (a client with an older declaration) is refused
    ephemerally, naming the option, like any other bad value."""
    async with start_bot() as bot:
        interaction = fake.slash("place", options, check_types=False)
        await fake.wait_for(lambda: interaction.callbacks)
        assert len(bot.jobs.queue) == 0
    callback = interaction.callbacks[0]
    assert callback["type"] == 4 and callback["data"]["flags"] & 64
    assert name in callback["data"]["content"]
    assert "went wrong" not in callback["data"]["content"]


@pytest.mark.parametrize("strength", [float("nan"), None, ""], ids=["NaN", "null", "empty"])
async def test_a_forged_strength_that_is_no_number_gets_a_line_naming_it(
        fake, start_bot, strength):
    """A strength of NaN (or null or "", which discord.py turns into NaN) is refused in one
    ephemeral line naming strength and what it accepts, not "something went wrong"."""
    async with start_bot() as bot:
        interaction = fake.slash("place", {"strength": strength}, check_types=False)
        await fake.wait_for(lambda: interaction.callbacks)
        assert len(bot.jobs.queue) == 0
    callback = interaction.callbacks[0]
    assert callback["type"] == 4 and callback["data"]["flags"] & 64
    assert "strength must be in (0, 1] but is" in callback["data"]["content"]
    assert "went wrong" not in callback["data"]["content"]


async def test_a_prompt_with_a_lone_surrogate_is_refused_up_front(fake, start_bot):
    """A prompt holding half of a UTF-16 pair (not text: it cannot be encoded) is refused in
    one ephemeral line naming the prompt, before anything is queued (it failed later with the
    generic error)."""
    async with start_bot() as bot:
        interaction = fake.slash("place", {"prompt": "a cat \ud800 in space"})
        await fake.wait_for(lambda: interaction.callbacks)
        assert len(bot.jobs.queue) + len(bot.jobs.queue.running) == 0
    callback = interaction.callbacks[0]
    assert callback["type"] == 4 and callback["data"]["flags"] & 64
    assert "prompt" in callback["data"]["content"] and "went wrong" not in \
        callback["data"]["content"]
