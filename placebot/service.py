"""Accepting a /place job from Discord: validate, hold a place, answer within 3 s, submit.

Shared by the /place command and the Re-roll / New crop buttons. What happens to the job
afterwards is the JobBackend's business (placebot/backend.py).
"""

from __future__ import annotations

import asyncio
import logging

import discord

from pipeline.errors import ParamError
from pipeline.params import RenderRequest
from placebot.backend import JobBackend
from placebot.delivery import Delivery
from placebot.jobqueue import Job, QueueRefusal
from placebot.messages import user_message

log = logging.getLogger(__name__)


class PlaceService:
    def __init__(self, jobs: JobBackend):
        self._jobs = jobs

    async def submit(self, interaction: discord.Interaction,
                     request: RenderRequest) -> Job | None:
        """Queue the job and answer the interaction; refusals are ephemeral and queue nothing.

        Validation and the backend's admission run first and hold a place at once, so two
        quick /place from one person cannot both slip under the per-user limit; then the
        interaction is deferred, well inside Discord's 3 seconds, before any slower work.
        """
        try:
            request.validate()
            reservation = await self._jobs.reserve(interaction.user.id)
        except (ParamError, QueueRefusal) as exc:
            await interaction.response.send_message(user_message(exc), ephemeral=True)
            return None
        try:
            await interaction.response.defer(thinking=True)
            render = await asyncio.to_thread(request.resolve)  # may decode a canvas (~0.1 s)
            delivery = Delivery.from_interaction(interaction)
        except BaseException:
            await self._jobs.release(reservation)
            raise
        return await self._jobs.submit(reservation, render, delivery)
