"""Accepting /place jobs from Discord: validate, answer within 3 s, journal, queue.

Shared by the /place command and the Re-roll / New crop buttons, and by start-up recovery.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

import discord

from pipeline.errors import ParamError, PipelineError
from pipeline.params import RenderJob, RenderRequest
from placebot.delivery import Delivery
from placebot.jobqueue import Job, QueueRefusal
from placebot.journal import MAX_TRIES, JournalEntry
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

        Validation and the queue's checks run first and take a place at once (no await in
        between), so two quick /place from one person cannot both slip under the per-user
        limit; then the interaction is deferred, well inside Discord's 3 seconds, before any
        slower work.
        """
        user_id = interaction.user.id
        try:
            request.validate()
            self._check_cooldown(user_id)
            self.bot.queue.reserve(user_id)
        except (ParamError, QueueRefusal) as exc:
            await interaction.response.send_message(user_message(exc), ephemeral=True)
            return None
        try:
            await interaction.response.defer(thinking=True)
            render = await asyncio.to_thread(request.resolve)  # may decode a canvas (~0.1 s)
            job = Job(user_id=user_id, render=render,
                      context=Delivery.from_interaction(interaction))
            # Written down before the user is told: a restart from here on loses nothing.
            await asyncio.to_thread(self.bot.journal.add, job.id, user_id, render.to_dict(),
                                    job.context.to_dict())
        except BaseException:
            self.bot.queue.release(user_id)
            raise
        self.bot.queue.submit(job, reserved=True)
        self._last_accepted[user_id] = time.monotonic()
        log.info("job %s queued for user %s: %s", job.id, user_id, render)
        await self.bot.reporter.acknowledge(job)
        return job

    def _check_cooldown(self, user_id: int) -> None:
        cooldown = self.bot.settings.user_cooldown_s
        last = self._last_accepted.get(user_id)
        if cooldown and last is not None:
            left = cooldown - (time.monotonic() - last)
            if left > 0:
                raise CooldownActive(left)

    async def recover(self) -> int:
        """Queue the jobs the journal holds from before a restart; report those given up on.
        Rows that cannot be decoded are skipped (the journal logs and marks them)."""
        recovery = await asyncio.to_thread(self.bot.journal.recover, _job_of)
        for job in recovery.retry:
            self.bot.queue.restore(job)
        for job in recovery.give_up:
            log.error("giving up on job %s: the bot stopped %d times while rendering it",
                      job.id, MAX_TRIES)
            error = PipelineError(f"the bot stopped {MAX_TRIES} times while rendering it, so "
                                  "it was dropped")
            try:
                await self.bot.reporter.failed(job, error)
            except Exception:
                log.exception("could not tell user %s that job %s was dropped",
                              job.user_id, job.id)
        if recovery.retry or recovery.give_up:
            log.info("recovered %d job(s) from the journal, gave up on %d",
                     len(recovery.retry), len(recovery.give_up))
        return len(recovery.retry)

    async def shutdown(self, grace_s: float, notify_s: float = 2.0) -> None:
        """Accept nothing new, tell waiting users their job is kept, stop the worker.

        The worker stops taking jobs before anyone is told, and the notices go out together
        under their own deadline, so that the whole stop fits Docker's 10 seconds."""
        self.bot.worker.stop_taking_jobs()
        waiting = self.bot.queue.close()
        notices = [self._tell_restarting(job) for job in waiting]
        stopping = asyncio.ensure_future(self.bot.worker.stop(grace_s))
        if notices:
            _done, late = await asyncio.wait(
                [asyncio.ensure_future(n) for n in notices], timeout=notify_s)
            for task in late:
                task.cancel()
        await stopping

    async def _tell_restarting(self, job: Job) -> None:
        try:
            await self.bot.reporter.restarting(job)
        except Exception:
            log.exception("could not tell the user of job %s about the restart", job.id)


def _job_of(entry: JournalEntry) -> Job:
    return Job(user_id=entry.user_id, render=RenderJob.from_dict(entry.render),
               context=Delivery.from_dict(entry.context), id=entry.job_id)
