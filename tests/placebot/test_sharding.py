"""PLACE_SHARDS picks discord.py's AutoShardedBot."""

from discord.ext import commands

from placebot.client import PlaceBot, build_bot
from placebot.settings import Settings


def test_no_shards_setting_builds_the_plain_bot():
    """Unset: one gateway connection, as before."""
    bot = build_bot(Settings(discord_token="t"))
    assert type(bot) is PlaceBot


def test_a_shard_count_builds_an_auto_sharded_bot_with_that_count():
    """PLACE_SHARDS=4: AutoShardedBot with four shards, still a PlaceBot."""
    bot = build_bot(Settings(discord_token="t", shards="4"))
    assert isinstance(bot, commands.AutoShardedBot) and isinstance(bot, PlaceBot)
    assert bot.shard_count == 4
