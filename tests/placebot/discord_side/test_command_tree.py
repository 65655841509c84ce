"""Every slash command gets an answer: while the bot closes, and when discord.py itself fails
on the interaction before any command's code runs."""

import discord
import pytest

from placebot.jobs.journal import Journal
from tests.support.patience import PATIENCE_S


@pytest.mark.parametrize("command", ["place", "place_status"])
async def test_a_command_that_arrives_while_the_bot_closes_is_told_it_restarts(
        fake, start_bot, monkeypatch, tmp_path, command):
    """discord.py's Bot.close() removes the cogs, and their commands, before it closes the
    connection: a command that arrives then gets one ephemeral line saying the bot is
    restarting and nothing was taken, not CommandNotFound and the generic error."""
    asked = []
    close_connection = discord.Client.close

    async def a_command_arrives_first(client):  # the cogs are gone, the connection is open
        if not asked:
            interaction = fake.slash(command, user_id=5)
            asked.append(interaction)
            await fake.wait_for(lambda: interaction.callbacks)
        await close_connection(client)

    monkeypatch.setattr(discord.Client, "close", a_command_arrives_first)
    async with start_bot():
        pass
    [callback] = asked[0].callbacks
    assert callback["type"] == 4 and callback["data"]["flags"] & 64  # seen only by them
    text = callback["data"]["content"]
    assert "restarting" in text and "nothing was taken" in text and "try again" in text
    assert "went wrong" not in text
    assert Journal(tmp_path / "data" / "jobs.sqlite3").recover().retry == []  # none taken


async def test_a_number_option_that_is_not_a_number_is_answered(fake, start_bot):
    """strength "abc" (only a forged or broken payload: Discord checks types) makes
    discord.py fail before /place runs; the user still gets an answer, seen only by them."""
    async with start_bot() as bot:
        interaction = fake.slash("place", {"strength": "abc"}, check_types=False)
        await fake.wait_for(lambda: interaction.callbacks, PATIENCE_S)
        later = fake.slash("place_status")  # and the bot goes on serving
        await fake.wait_for(lambda: later.callbacks, PATIENCE_S)
        assert len(bot.jobs.queue) == 0 and not bot.jobs.queue.running
    [callback] = interaction.callbacks
    assert callback["type"] == 4 and callback["data"]["flags"] & 64
    assert callback["data"]["content"].startswith("Sorry")
