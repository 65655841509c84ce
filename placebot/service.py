"""Accepting a job from Discord: validate, hold a place, answer within 3 s, prepare, submit.

Shared by /place, /dream, "Dream on this" and the Re-roll / New crop buttons. What happens to
the job afterwards is the JobBackend's business (placebot/backend.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import discord

from pipeline.errors import ParamError, PipelineError
from pipeline.params import RenderRequest
from placebot.backend import DuplicateInteraction, JobBackend
from placebot.delivery import Delivery
from placebot.jobqueue import Job, QueueRefusal
from placebot.messages import UserFacingError, user_message
from placebot.pictures import keep_prompt
from placebot.source_store import SourceStore

log = logging.getLogger(__name__)

# Slower work on a request once the interaction is answered (fetching and decoding a picture,
# reading a kept one): it returns the request to render, or raises an error for the user.
Prepare = Callable[[RenderRequest], Awaitable[RenderRequest]]
# What preparing may refuse with, in a line for the user (anything else is unexpected)
REFUSALS = (ParamError, UserFacingError, PipelineError)


class PromptsOff(UserFacingError):
    def __init__(self):
        super().__init__("the owner of this bot has turned prompts off, and this would dream "
                         "with a prompt; /place and /dream still dream without one")


class PlaceService:
    def __init__(self, jobs: JobBackend, sources: SourceStore, *, prompts: bool = True):
        self._jobs = jobs
        self._sources = sources
        self._prompts = prompts  # PLACE_PROMPTS: false, and no job renders a prompt

    async def submit(self, interaction: discord.Interaction, request: RenderRequest, *,
                     prepare: Prepare | None = None, kept_prompt: bool = False,
                     reply_to: discord.Message | None = None) -> Job | None:
        """Queue the job and answer the interaction; refusals are ephemeral and queue nothing.

        Validation and the backend's admission run first and hold a place at once, so two
        quick /place from one person cannot both slip under the per-user limit; then the
        interaction is deferred, well inside Discord's 3 seconds, before any slower work
        (`prepare`). `kept_prompt`: `prepare` adds a kept prompt (a Re-roll or New crop of a
        prompted result). `reply_to`: the result is posted in reply to this message.
        """
        try:
            request.validate()
            self._check_prompt(request, kept_prompt)
            reservation = await self._jobs.reserve(interaction.user.id, str(interaction.id))
        except (ParamError, PromptsOff, QueueRefusal) as exc:
            await interaction.response.send_message(user_message(exc), ephemeral=True)
            return None
        except DuplicateInteraction:  # another bot process has it: it answers
            log.info("interaction %s was admitted already; left to its bot", interaction.id)
            return None
        try:
            await interaction.response.defer(thinking=True)
            if prepare is not None:
                request = (await prepare(request)).validate()
                self._check_prompt(request)
            await keep_prompt(self._sources, request)
            render = await asyncio.to_thread(request.resolve)  # may decode a canvas (~0.1 s)
            delivery = Delivery.from_interaction(interaction, reply_to=reply_to)
        except REFUSALS as exc:
            await self._jobs.release(reservation)
            await self._refuse_after_defer(interaction, exc)
            return None
        except BaseException:
            await self._jobs.release(reservation)
            raise
        try:
            return await self._jobs.submit(reservation, render, delivery)
        except QueueRefusal as exc:  # the backend could not keep it: nothing was accepted
            await self._refuse_after_defer(interaction, exc)
            return None

    def _check_prompt(self, request: RenderRequest, kept_prompt: bool = False) -> None:
        """With prompts off, a job that would dream with a prompt is refused, whether the
        prompt was typed or comes from the result a button belongs to. A button is refused
        rather than run without its prompt: Re-roll and New crop promise the same settings,
        and a picture from other settings, on a GPU turn the user did not ask for, would
        surprise more than one line saying why (a new /place or /dream still works)."""
        if not self._prompts and (kept_prompt or (request.prompt or "").strip()):
            raise PromptsOff()

    @staticmethod
    async def _refuse_after_defer(interaction: discord.Interaction, error: Exception) -> None:
        """One ephemeral line, as a refusal before the defer would be: the public "thinking"
        message is taken away first (a deferred answer's visibility cannot change)."""
        log.info("refused interaction %s after answering it: %s", interaction.id, error)
        try:
            await interaction.delete_original_response()
        except discord.HTTPException as exc:
            log.warning("could not remove the thinking message of %s: %s", interaction.id, exc)
        await interaction.followup.send(user_message(error), ephemeral=True)
