"""Accepting a job from Discord: validate, hold a place, answer within 3 s, prepare, submit.

Shared by /place, /dream, "Dream on this" and the Re-roll / New crop buttons. Each job follows
the rules of where it was asked for (placebot/servers/server_rules.py): the owner's settings,
tightened by its server's (/place_admin), read for every job, so a change applies to the
next one. What happens to the job afterwards is the JobBackend's business
(placebot/jobs/backend.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection
from dataclasses import replace

import discord

from pipeline.atlas import Atlas
from pipeline.errors import ParamError, PipelineError
from pipeline.params import RenderRequest
from placebot import texts
from placebot.discord_side.channels import AgeRestriction, channel_and_parent
from placebot.discord_side.delivery import Deliveries, Delivery
from placebot.discord_side.pictures import keep
from placebot.discord_side.source_store import SourceStore
from placebot.jobs.backend import DuplicateInteraction, JobBackend, UserLimits
from placebot.jobs.jobqueue import Job, QueueRefusal
from placebot.messages import UserFacingError, user_message
from placebot.servers.server_rules import Rules, checks_safety, rules_for
from placebot.servers.server_settings import ServerSettingsStore
from placebot.settings import Settings

log = logging.getLogger(__name__)

# Slower work on a request once the interaction is answered (fetching and decoding a picture,
# reading a kept one): it returns the request to render, or raises an error for the user.
Prepare = Callable[[RenderRequest], Awaitable[RenderRequest]]
# What preparing may refuse with, in a line for the user (anything else is unexpected)
REFUSALS = (ParamError, UserFacingError, PipelineError)


class PromptsOff(UserFacingError):
    def __init__(self, by_server: bool = False):
        who = texts.PROMPTS_OFF_BY_SERVER if by_server else texts.PROMPTS_OFF_BY_OWNER
        super().__init__(texts.PROMPTS_OFF.format(who=who))


class PlaceService:
    def __init__(self, jobs: JobBackend, sources: SourceStore, settings: Settings,
                 servers: ServerSettingsStore, *, deliveries: Deliveries,
                 atlas: Atlas | None = None):
        self._jobs = jobs
        # the reporter's record of each job's delivery: a job's live interaction is filed
        # there under its id before the backend takes it (its first word comes from there)
        self._deliveries = deliveries
        self._sources = sources
        self._owner = settings  # the bounds of every server's rules
        self._servers = servers  # each server's own settings (/place_admin)
        self._age_restriction = AgeRestriction()
        self._atlas = atlas  # draws the crop of a job on a named artwork

    async def rules(self, interaction: discord.Interaction) -> Rules:
        """The rules a job asked for here follows: the owner's, and its server's (read anew
        for every job, so that an admin's change applies to the next one)."""
        if interaction.guild_id is None:
            return rules_for(self._owner)
        return rules_for(self._owner, await self._servers.load(interaction.guild_id))

    async def submit(self, interaction: discord.Interaction, request: RenderRequest, *,
                     prepare: Prepare | None = None, kept_text: bool = False,
                     reply_to: discord.Message | None = None,
                     defaulted: Collection[str] = ()) -> Job | None:
        """Queue the job and answer the interaction; refusals are ephemeral and queue nothing.

        Validation and the rules of where it was asked for come first (a channel the server
        does not allow is refused), then the backend's admission, which holds a place at once,
        so two quick /place from one person cannot both slip under the per-user limit; then
        the interaction is deferred, well inside Discord's 3 seconds, before any slower work
        (`prepare`). `kept_text`: `prepare` adds kept free text (a Re-roll or New crop of a
        prompted result). `reply_to`: the result is posted in reply to this message.
        `defaulted`: the parameters the user left to the defaults, where a server's own
        default (its model) replaces the owner's.
        """
        try:
            request.validate()
            rules = await self.rules(interaction)
            rules.check_channel(*channel_and_parent(interaction))
            if "model" in defaulted:
                request = replace(request, model=rules.default_model)
            self._check_prompt(request, rules, kept_text)
            # where the answer goes, kept from the reservation on: a bot stopped before the
            # job is queued (killed while it defers) tells its user after the restart
            delivery = Delivery.from_interaction(interaction, reply_to=reply_to)
            reservation = await self._jobs.reserve(
                interaction.user.id, UserLimits(rules.user_max, rules.cooldown_s),
                str(interaction.id), delivery.to_dict())
        except (ParamError, UserFacingError, QueueRefusal) as exc:
            await interaction.response.send_message(user_message(exc), ephemeral=True)
            return None
        except DuplicateInteraction:  # another bot process has it: it answers
            log.info("interaction %s was admitted already; left to its bot", interaction.id)
            return None
        try:
            await interaction.response.defer(thinking=True)
            if prepare is not None:
                request = (await prepare(request)).validate()
                self._check_prompt(request, rules)
            age_restricted = await self._age_restriction.of(interaction)
            request = replace(request, safety_check=checks_safety(self._owner, rules,
                                                                  age_restricted))
            # may decode a canvas (~0.1 s) or read a year's atlas (its first artwork)
            render = await asyncio.to_thread(request.resolve, None, self._atlas)
            await keep(self._sources, render)  # what its buttons name but cannot carry
        except REFUSALS as exc:
            await self._jobs.release(reservation)
            await self._refuse_after_defer(interaction, exc)
            return None
        except BaseException:
            await self._jobs.release(reservation)
            raise
        self._deliveries.track(reservation.job_id, delivery)
        try:
            return await self._jobs.submit(reservation, render, delivery.to_dict())
        except QueueRefusal as exc:  # the backend could not keep it: nothing was accepted
            self._deliveries.forget(reservation.job_id)
            await self._refuse_after_defer(interaction, exc)
            return None

    def _check_prompt(self, request: RenderRequest, rules: Rules,
                      kept_text: bool = False) -> None:
        """With prompts off (by the owner or the server), a job that would dream with a prompt
        (any free-text parameter) is refused, whether it was typed or comes from the result a
        button belongs to. A button is refused rather than run without its prompt: Re-roll
        and New crop promise the same settings, and a picture from other settings, on a GPU
        turn the user did not ask for, would surprise more than one line saying why (a new
        /place or /dream still works)."""
        if not rules.prompts and (kept_text or request.has_text()):
            raise PromptsOff(by_server=self._owner.prompts)

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
