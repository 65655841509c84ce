"""Carrying a job's messages to Discord: edit the interaction's response while its token lives,
else post in the channel (mentioning the user), else send a DM.

Every message may ping its job's requester and nobody else (requester_only): a prompt or a
picture's name is a user's text, and the client's default (PlaceBot) pings no one at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
from collections.abc import Sequence
from typing import Any

import discord

from placebot.discord_side.delivery import Delivery
from placebot.discord_side.result_files import NamedFile
from placebot.jobs.backend import ACKNOWLEDGE_WAIT_S
from placebot.jobs.jobqueue import Job

log = logging.getLogger(__name__)


def requester_only(user_id: int) -> discord.AllowedMentions:
    """The requester may be pinged; no other user, role, @everyone or replied-to author."""
    return discord.AllowedMentions(everyone=False, roles=False, replied_user=False,
                                   users=[discord.Object(user_id)])


def attachments(files: Sequence[NamedFile]) -> list[discord.File]:
    """Fresh discord.File objects (one is consumed by each upload attempt)."""
    return [discord.File(io.BytesIO(data), filename=name) for name, data in files]


class DiscordTransport:
    def __init__(self, client: discord.Client):
        self._client = client

    async def edit_live(self, job: Job, delivery: Delivery, *, final: bool = False,
                        acknowledging: bool = False, **fields: Any) -> bool:
        """Edit the interaction's response. False when the token is dead (caller falls back).

        Waits for the job's acknowledgement first (unless this is it), so that edits land in
        order. A refused edit raises when `final` (the caller must fall back), else is logged.
        """
        response = delivery.response(self._client)
        if not delivery.token_alive() or response is None:
            return False
        if not acknowledging and not delivery.acknowledged.is_set():
            with contextlib.suppress(TimeoutError, asyncio.TimeoutError):
                await asyncio.wait_for(delivery.acknowledged.wait(), ACKNOWLEDGE_WAIT_S)
        try:
            await response.edit_original_response(
                **fields, allowed_mentions=requester_only(delivery.user_id))
            return True
        except discord.HTTPException as exc:
            if isinstance(exc, discord.NotFound) or exc.status == 401:
                log.info("interaction token of job %s no longer works (%s)", job.id, exc.status)
                delivery.token_died()
                return False
            if final:
                raise
            log.warning("could not update job %s: %s", job.id, exc)
            return True

    async def delete_live(self, job: Job, delivery: Delivery) -> None:
        """Remove the interaction's response (its work is shown elsewhere); a failure is only
        logged: the response then stays, which is untidy but harmless."""
        response = delivery.response(self._client)
        if not delivery.token_alive() or response is None:
            return
        try:
            await response.delete_original_response()
        except discord.HTTPException as exc:
            log.warning("could not remove the live response of job %s: %s", job.id, exc)

    async def post(self, job: Job, delivery: Delivery, *, content: str,
                   embed: discord.Embed | None = None, view: discord.ui.View | None = None,
                   files: Sequence[NamedFile] = (), reply: bool = False) -> None:
        """A channel message (mentioning the user), in reply to the job's message when `reply`;
        if the channel refuses, a DM.

        Posted with the job's id as an enforced nonce: a post repeated after its reply was lost
        (the bot killed mid-upload, a broken connection, a 5xx from a post that was made) gives
        back the message made the first time instead of a second one. Discord keeps a nonce
        for a few minutes, which covers a retry or a restart."""
        mention = requester_only(delivery.user_id)

        def fields(in_channel: bool) -> dict[str, Any]:
            extra: dict[str, Any] = {"embed": embed} if embed is not None else {}
            if view is not None:
                extra["view"] = view
            if in_channel and reply and delivery.reply_to is not None:
                extra["reference"] = discord.MessageReference(
                    message_id=delivery.reply_to, channel_id=delivery.channel_id,
                    guild_id=delivery.guild_id, fail_if_not_exists=False)
            return {"content": content, "files": attachments(files),
                    "allowed_mentions": mention, "nonce": job.id, **extra}

        channel = self._client.get_partial_messageable(delivery.channel_id,
                                                       guild_id=delivery.guild_id)
        try:
            await channel.send(**fields(True))
            return
        except (discord.Forbidden, discord.NotFound) as exc:
            log.warning("cannot post in channel %s for job %s (%s); sending a DM instead",
                        delivery.channel_id, job.id, exc.status)
        dm = await self._client.create_dm(discord.Object(delivery.user_id))
        await dm.send(**fields(False))
