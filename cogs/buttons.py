"""The buttons under /place messages: Re-roll, New crop, Delete and Cancel.

Their custom_ids carry everything they need (see placebot/views.py), so they work after a
restart; an id that does not parse, or a job that is gone, gets an ephemeral explanation.
"""

from __future__ import annotations

import asyncio
import logging

import discord
from discord.ext import commands

from placebot.jobqueue import JobState
from placebot.views import ButtonAction, parse_custom_id

log = logging.getLogger(__name__)

NO_LONGER_VALID = "This button is no longer valid."


class PlaceButtons(commands.Cog, name="PlaceButtons"):
    def __init__(self, bot):
        self.bot = bot

    async def handle(self, interaction: discord.Interaction, custom_id: str) -> None:
        try:
            action = parse_custom_id(custom_id)
        except ValueError:
            log.info("refused unknown button %r from user %s", custom_id[:100],
                     interaction.user.id)
            await interaction.response.send_message(NO_LONGER_VALID, ephemeral=True)
            return
        handler = getattr(self, f"_{action.action}")
        try:
            await handler(interaction, action)
        except Exception as exc:
            await self.bot.report_unexpected(interaction, exc)

    async def _reroll(self, interaction, action: ButtonAction) -> None:
        await self.bot.service.submit(interaction, action.request)

    async def _newcrop(self, interaction, action: ButtonAction) -> None:
        await self.bot.service.submit(interaction, action.request)

    async def _delete(self, interaction, action: ButtonAction) -> None:
        permissions = interaction.permissions
        if interaction.user.id != action.owner_id and not permissions.manage_messages:
            await interaction.response.send_message(
                "Only the person who asked for this picture, or someone who can manage "
                "messages, can delete it.", ephemeral=True)
            return
        await interaction.response.defer()
        await interaction.delete_original_response()

    async def _cancel(self, interaction, action: ButtonAction) -> None:
        if interaction.user.id != action.owner_id:
            await interaction.response.send_message(
                "Only the person who asked for this job can cancel it.", ephemeral=True)
            return
        job = self.bot.queue.find(action.job_id)
        if job is not None and job.user_id != interaction.user.id:  # a forged id
            job = None
        if job is None:
            await interaction.response.send_message(
                "This job is no longer waiting or running.", ephemeral=True)
            return
        self.bot.queue.cancel(job, "cancelled by its requester")
        removed = job.state is JobState.CANCELLED  # it was still waiting: the worker won't see it
        await interaction.response.send_message(
            "Your job was cancelled." if removed else "Cancelling your job…", ephemeral=True)
        if removed:  # journalled first: a restart must never render a cancelled job
            await asyncio.to_thread(self.bot.journal.mark_cancelled, job.id)
            await self.bot.reporter.cancelled(job)
            await self.bot.reporter.queue_moved()


async def setup(bot) -> None:
    await bot.add_cog(PlaceButtons(bot))
