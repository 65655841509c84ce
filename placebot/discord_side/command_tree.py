"""What every slash command (and message command) meets before its own code: a bot that is
stopping answers in one line, and an interaction discord.py itself fails on is answered too.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands

from placebot.jobs.jobqueue import QueueClosed
from placebot.messages import user_message

if TYPE_CHECKING:
    from placebot.discord_side.client import PlaceBot

log = logging.getLogger(__name__)


class PlaceCommandTree(app_commands.CommandTree):
    client: PlaceBot  # discord.py sets it: the bot the tree belongs to

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        """While the bot stops, no command runs: discord.py's Bot.close() removes the cogs,
        and with them their commands, before it closes the connection, so a command arriving
        then would fail as "not found". Its user reads why instead, and what to do."""
        if not self.client.stopping:
            return True
        log.info("interaction %s arrived while stopping: told to try again", interaction.id)
        try:
            await interaction.response.send_message(user_message(QueueClosed()), ephemeral=True)
        except discord.HTTPException as exc:
            log.warning("could not tell the user of interaction %s that the bot is restarting "
                        "(%s)", interaction.id, exc)
        return False

    async def _call(self, interaction: discord.Interaction) -> None:
        """discord.py's own dispatch of a command, with its failures that are not an
        AppCommandError answered as any unexpected error is. discord.py reads the options
        before any command code runs (a number option whose value is "abc" raises ValueError
        there) and lets anything but an AppCommandError end its task unseen: the user would
        get no answer at all. This is a private method of discord.py; the tests of forged
        option types go through it, so a discord.py that renamed it fails them."""
        try:
            await super()._call(interaction)
        except app_commands.AppCommandError:
            raise  # discord.py hands these to the tree's error handler
        except Exception as exc:
            await self.client.report_unexpected(interaction, exc)
