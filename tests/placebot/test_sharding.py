"""PLACE_SHARDS picks discord.py's AutoShardedBot; PLACE_SHARD_IDS the shards of this process."""

import pytest
from discord.ext import commands

from placebot.discord_side.client import PlaceBot, build_bot
from placebot.settings import Settings, SettingsError, settings_from_env


def test_no_shards_setting_builds_the_plain_bot():
    """Unset: one gateway connection, as before."""
    bot = build_bot(Settings(discord_token="t"))
    assert type(bot) is PlaceBot


def test_a_shard_count_builds_an_auto_sharded_bot_with_that_count():
    """PLACE_SHARDS=4: AutoShardedBot with four shards, still a PlaceBot."""
    bot = build_bot(Settings(discord_token="t", shards="4"))
    assert isinstance(bot, commands.AutoShardedBot) and isinstance(bot, PlaceBot)
    assert bot.shard_count == 4


def test_shard_ids_build_a_bot_on_those_shards_only():
    """PLACE_SHARDS=4 with PLACE_SHARD_IDS=2,3: this process runs shards 2 and 3 of four
    (another process, on the same Redis, runs 0 and 1)."""
    bot = build_bot(Settings(discord_token="t", shards="4", shard_ids=(2, 3)))
    assert bot.shard_count == 4 and bot.shard_ids == [2, 3]


@pytest.mark.parametrize(("value", "ids"), [("0", (0,)), ("0,1", (0, 1)), ("1-3", (1, 2, 3)),
                                            ("3, 0-1", (0, 1, 3))])
def test_shard_ids_take_numbers_and_ranges(value, ids):
    """PLACE_SHARD_IDS: numbers and ranges, in any order."""
    settings = settings_from_env({"DISCORD_TOKEN": "t", "PLACE_SHARDS": "4",
                                  "PLACE_SHARD_IDS": value})
    assert settings.shard_ids == ids


@pytest.mark.parametrize(("shards", "value", "message"), [
    ("4", "4", "below PLACE_SHARDS"), ("4", "2-1", "below PLACE_SHARDS"),
    ("4", "a", "below PLACE_SHARDS"), ("4", "0,,1", "below PLACE_SHARDS"),
    (None, "0", "needs PLACE_SHARDS"), ("auto", "0", "needs PLACE_SHARDS")])
def test_shard_ids_outside_the_shard_count_are_refused_naming_the_setting(shards, value,
                                                                          message):
    """A shard id the count does not have, a malformed list, or ids without a count: a
    SettingsError naming PLACE_SHARD_IDS."""
    env = {"DISCORD_TOKEN": "t", "PLACE_SHARD_IDS": value}
    if shards is not None:
        env["PLACE_SHARDS"] = shards
    with pytest.raises(SettingsError, match=f"PLACE_SHARD_IDS: .*{message}"):
        settings_from_env(env)
