"""Where an interaction happened, as a server's rules need it: its channel (a thread counts as
its parent channel too) and whether Discord marks that channel age-restricted.

Discord allows NSFW content only in age-restricted channels; a thread is age-restricted when
its parent channel is. The bot knows without asking Discord: an interaction carries its
channel (discord.py takes the cached one, else builds it from the interaction), and the
`guilds` intent keeps every channel of the bot's servers in discord.py's cache, flags
included, as admins change them. Only a thread whose parent is missing from the cache (a
server still being loaded) costs a request for the parent, whose answer is kept a while.
Anything that can't be known counts as not age-restricted: the checker then runs.
"""

from __future__ import annotations

import asyncio
import logging
import time

import discord

log = logging.getLogger(__name__)

KEEP_FETCHED_S = 600.0  # a fetched parent's flag is trusted this long


def channel_and_parent(interaction: discord.Interaction) -> tuple[int | None, int | None]:
    """The interaction's channel id, and its parent channel's where it is a thread."""
    channel = interaction.channel
    parent_id = channel.parent_id if isinstance(channel, discord.Thread) else None
    return interaction.channel_id, parent_id


class AgeRestriction:
    """Tells whether an interaction's channel is age-restricted ("NSFW" in Discord's API)."""

    def __init__(self, keep_s: float = KEEP_FETCHED_S):
        self.keep_s = keep_s
        self._fetched: dict[int, tuple[bool, float]] = {}  # channel id → (nsfw, when)
        self._asking: dict[int, asyncio.Future[bool]] = {}  # requests under way

    async def of(self, interaction: discord.Interaction) -> bool:
        channel = interaction.channel
        if interaction.guild_id is None or channel is None:
            return False  # a DM, or a channel Discord did not describe
        if isinstance(channel, discord.Thread):
            parent = channel.parent
            if parent is not None:
                return parent.is_nsfw()
            return await self._fetched_flag(interaction.client, channel.parent_id)
        if isinstance(channel, discord.abc.GuildChannel):
            return bool(getattr(channel, "nsfw", False))
        return await self._fetched_flag(interaction.client, channel.id)

    async def _fetched_flag(self, client: discord.Client, channel_id: int) -> bool:
        """The channel's flag from Discord, kept keep_s; jobs asking at once share one
        request."""
        kept = self._fetched.get(channel_id)
        if kept is not None and time.monotonic() - kept[1] < self.keep_s:
            return kept[0]
        asking = self._asking.get(channel_id)
        if asking is None:
            asking = asyncio.ensure_future(self._fetch(client, channel_id))
            self._asking[channel_id] = asking
            asking.add_done_callback(lambda _: self._asking.pop(channel_id, None))
        return await asyncio.shield(asking)  # one job giving up does not stop the others'

    async def _fetch(self, client: discord.Client, channel_id: int) -> bool:
        try:
            channel = await client.fetch_channel(channel_id)
        except discord.HTTPException as exc:
            log.warning("could not fetch channel %s to see whether it is age-restricted (%s); "
                        "the safety checker runs", channel_id, exc)
            return False
        nsfw = bool(getattr(channel, "nsfw", False))
        self._fetched[channel_id] = (nsfw, time.monotonic())
        return nsfw
