"""Carrying a job's messages to Discord: edit the interaction's response while its token lives,
else post in the channel (mentioning the user), else send a DM.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
from collections.abc import Sequence
from typing import Any

import discord

from placebot.delivery import Delivery
from placebot.jobqueue import Job
from placebot.result_files import NamedFile

log = logging.getLogger(__name__)

ACKNOWLEDGE_WAIT_S = 10


def attachments(files: Sequence[NamedFile]) -> list[discord.File]:
    """Fresh discord.File objects (one is consumed by each upload attempt)."""
    return [discord.File(io.BytesIO(data), filename=name) for name, data in files]


class DiscordTransport:
    def __init__(self, client: discord.Client):
        self._client = client

    async def edit_live(self, job: Job, *, final: bool = False, acknowledging: bool = False,
                        **fields: Any) -> bool:
        """Edit the interaction's response. False when the token is dead (caller falls back).

        Waits for the job's acknowledgement first (unless this is it), so that edits land in
        order. A refused edit raises when `final` (the caller must fall back), else is logged.
        """
        delivery: Delivery = job.context
        if not delivery.token_alive() or delivery.interaction is None:
            return False
        if not acknowledging and not delivery.acknowledged.is_set():
            with contextlib.suppress(TimeoutError, asyncio.TimeoutError):
                await asyncio.wait_for(delivery.acknowledged.wait(), ACKNOWLEDGE_WAIT_S)
        try:
            await delivery.interaction.edit_original_response(**fields)
            return True
        except discord.HTTPException as exc:
            if isinstance(exc, discord.NotFound) or exc.status == 401:
                log.info("interaction token of job %s no longer works (%s)", job.id, exc.status)
                delivery.interaction = None  # dead: every later message goes to the channel
                return False
            if final:
                raise
            log.warning("could not update job %s: %s", job.id, exc)
            return True

    async def post(self, job: Job, *, content: str, embed: discord.Embed | None = None,
                   view: discord.ui.View | None = None, files: Sequence[NamedFile] = ()) -> None:
        """A channel message (mentioning the user); if the channel refuses, a DM."""
        delivery: Delivery = job.context
        mention = discord.AllowedMentions(users=[discord.Object(delivery.user_id)])

        def fields() -> dict[str, Any]:
            extra: dict[str, Any] = {"embed": embed} if embed is not None else {}
            if view is not None:
                extra["view"] = view
            return {"content": content, "files": attachments(files),
                    "allowed_mentions": mention, **extra}

        channel = self._client.get_partial_messageable(delivery.channel_id,
                                                       guild_id=delivery.guild_id)
        try:
            await channel.send(**fields())
            return
        except (discord.Forbidden, discord.NotFound) as exc:
            log.warning("cannot post in channel %s for job %s (%s); sending a DM instead",
                        delivery.channel_id, job.id, exc.status)
        dm = await self._client.create_dm(discord.Object(delivery.user_id))
        await dm.send(**fields())
