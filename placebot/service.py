"""Accepting /place jobs from Discord: validate, answer within 3 s, journal, queue.

Shared by the /place command and the Re-roll / New crop buttons, and by start-up recovery.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

import discord

from pipeline.errors import PipelineError
from pipeline.params import RenderJob, RenderRequest
from placebot.delivery import Delivery
from placebot.jobqueue import Job, QueueRefusal
from placebot.messages import user_message

if TYPE_CHECKING:
    from placebot.client import PlaceBot

log = logging.getLogger(__name__)


class CooldownActive(QueueRefusal):
    def __init__(self, seconds_left: float):
        super().__init__(f"you can start another /place in {seconds_left:.0f} s (cooldown)")


class PlaceService:
    def __init__(self, bot: PlaceBot):
        self.bot = bot
        self._last_accepted: dict[int, float] = {}

    async def submit(self, interaction: discord.Interaction, request: RenderRequest) -> Job | None:
        """Queue the job and answer the interaction; refusals are ephemeral and queue nothing.

        The checks and the submit run with no await between them, so two quick /place from
        one person cannot both slip under the per-user limit.
        """
        user_id = interaction.user.id
        try:
            request.validate()
            self._check_room(user_id)
            render = await asyncio.to_thread(request.resolve)  # may decode a canvas (~0.1 s)
            self._check_room(user_id)
        except (ValueError, QueueRefusal) as exc:
            await interaction.response.send_message(user_message(exc), ephemeral=True)
            return None
        job = Job(user_id=user_id, render=render, context=Delivery.from_interaction(interaction))
        self.bot.journal.add(job.id, user_id, render.to_dict(), job.context.to_dict())
        self.bot.queue.submit(job)
        self._last_accepted[user_id] = time.monotonic()
        log.info("job %s queued for user %s: %s", job.id, user_id, render)
        await interaction.response.defer(thinking=True)  # well inside Discord's 3 s
        await self.bot.reporter.acknowledge(job)
        return job

    def _check_room(self, user_id: int) -> None:
        self._check_cooldown(user_id)
        self.bot.queue.check_room(user_id)

    def _check_cooldown(self, user_id: int) -> None:
        cooldown = self.bot.settings.user_cooldown_s
        last = self._last_accepted.get(user_id)
        if cooldown and last is not None:
            left = cooldown - (time.monotonic() - last)
            if left > 0:
                raise CooldownActive(left)

    async def recover(self) -> int:
        """Queue the jobs the journal holds from before a restart; report those given up on."""
        retry, give_up = self.bot.journal.recover()
        for entry in retry:
            job = Job(user_id=entry.user_id, render=RenderJob.from_dict(entry.render),
                      context=Delivery.from_dict(entry.context), id=entry.job_id)
            self.bot.queue.restore(job)
        for entry in give_up:
            job = Job(user_id=entry.user_id, render=RenderJob.from_dict(entry.render),
                      context=Delivery.from_dict(entry.context), id=entry.job_id)
            log.error("giving up on job %s after %d restarts", entry.job_id, entry.starts)
            await self.bot.reporter.failed(
                job, PipelineError(f"it was interrupted by {entry.starts} restarts and was dropped")
            )
        if retry or give_up:
            log.info("recovered %d job(s) from the journal, gave up on %d",
                     len(retry), len(give_up))
        return len(retry)

    async def shutdown(self, grace_s: float) -> None:
        """Accept nothing new, tell waiting users their job is kept, stop the worker."""
        waiting = self.bot.queue.close()
        for job in waiting:
            try:
                await self.bot.reporter.restarting(job)
            except Exception:
                log.exception("could not tell the user of job %s about the restart", job.id)
        await self.bot.worker.stop(grace_s)
