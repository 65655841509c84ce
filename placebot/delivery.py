"""Where a job's answer goes: the delivery record a job carries from the interaction to its end.

Live jobs are answered by editing the interaction's original response. Interaction tokens die
after 15 minutes: a result that comes later (or after a restart, or whose edit is refused with
401/404) is posted as a channel message instead (placebot/transport.py does both).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import discord

TOKEN_LIFETIME_S = 15 * 60
TOKEN_MARGIN_S = 60  # do not start an upload that may outlive the token
DEFAULT_SIZE_LIMIT = 10 * 1024 * 1024


@dataclass
class Delivery:
    """Where a job's answer goes. Everything but `interaction` survives a restart."""

    user_id: int
    channel_id: int
    guild_id: int | None
    created_at: float  # the interaction's time, epoch seconds
    size_limit: int = DEFAULT_SIZE_LIMIT
    interaction: discord.Interaction | None = field(default=None, repr=False)
    shown_position: int | None = None
    # "Dream on this": the result is posted in reply to the message it dreamed on
    reply_to: int | None = None
    # Set once the interaction is deferred and the job acknowledged: the worker's edits wait
    # for it, so that "Queued: position 1" can never land after "Dreaming".
    acknowledged: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    @classmethod
    def from_interaction(cls, interaction: discord.Interaction, *,
                         reply_to: discord.Message | None = None) -> Delivery:
        if interaction.channel_id is None:
            raise ValueError(f"interaction {interaction.id} has no channel to answer in")
        return cls(
            user_id=interaction.user.id,
            channel_id=interaction.channel_id,
            guild_id=interaction.guild_id,
            created_at=interaction.created_at.timestamp(),
            size_limit=getattr(interaction, "filesize_limit", None) or DEFAULT_SIZE_LIMIT,
            interaction=interaction,
            reply_to=reply_to.id if reply_to is not None else None,
        )

    def to_dict(self) -> dict[str, Any]:
        return {"user_id": self.user_id, "channel_id": self.channel_id,
                "guild_id": self.guild_id, "created_at": self.created_at,
                "size_limit": self.size_limit, "reply_to": self.reply_to}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Delivery:
        return cls(**data)

    def token_alive(self, now: float | None = None) -> bool:
        now = time.time() if now is None else now
        return (
            self.interaction is not None
            and now - self.created_at < TOKEN_LIFETIME_S - TOKEN_MARGIN_S
        )
