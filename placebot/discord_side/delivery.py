"""Where a job's answer goes: the Discord side's record of each job, from the interaction to
its end. The job layer carries only its reference (`Delivery.to_dict`, a JSON object it never
reads); what the user was shown (their place, whether the first word was said) and the live
interaction stay here, in `Deliveries`, by job id.

Live jobs are answered by editing the interaction's original response. Interaction tokens die
after 15 minutes: a result that comes later (or whose edit is refused with 401/404) is posted
as a channel message instead (placebot/discord_side/transport.py does both). The response's webhook
(application id and token) is kept with the job, so that a bot restarted within those 15
minutes still edits the user's message rather than leaving it with a stale text and a Cancel
button.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import discord

from placebot.jobs.jobqueue import Job

TOKEN_LIFETIME_S = 15 * 60
TOKEN_MARGIN_S = 60  # do not start an upload that may outlive the token
DEFAULT_SIZE_LIMIT = 10 * 1024 * 1024
# Records kept at most: a job whose ending another bot process delivered is never forgotten
# here by its ending, so the oldest records go first (a live job's record rebuilt from its
# reference if it comes back: only its live interaction is lost, its webhook is kept).
RECORDS_KEPT = 10_000


@dataclass
class Delivery:
    """Where a job's answer goes. Everything but `interaction` survives a restart."""

    user_id: int
    channel_id: int
    guild_id: int | None
    created_at: float  # the interaction's time, epoch seconds
    size_limit: int = DEFAULT_SIZE_LIMIT
    interaction: discord.Interaction | StoredInteraction | None = field(default=None,
                                                                        repr=False)
    # (application id, token) of the interaction's webhook, kept in the data folder (the
    # journal) so that a restarted bot can edit the response. Storing the token there is
    # acceptable: it dies 15 minutes after the command and only edits (or follows up on) that
    # one interaction's messages.
    webhook: tuple[int, str] | None = field(default=None, repr=False)
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
            webhook=(interaction.application_id, interaction.token),
            reply_to=reply_to.id if reply_to is not None else None,
        )

    def to_dict(self) -> dict[str, Any]:
        """The reference the job carries (journal, Redis): what survives a restart."""
        return {"user_id": self.user_id, "channel_id": self.channel_id,
                "guild_id": self.guild_id, "created_at": self.created_at,
                "size_limit": self.size_limit, "reply_to": self.reply_to,
                "webhook": list(self.webhook) if self.webhook else None}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Delivery:
        """A delivery kept from before a restart, or accepted by another bot process (it was
        acknowledged by the bot then)."""
        webhook = data.get("webhook")
        delivery = cls(**{**data, "webhook": (int(webhook[0]), str(webhook[1]))
                          if webhook else None})
        delivery.acknowledged.set()
        return delivery

    def response(self, client: discord.Client) -> discord.Interaction | StoredInteraction | None:
        """What edits the interaction's response: the live interaction, else one rebuilt from
        the kept webhook; None once the token is known dead."""
        if self.interaction is None and self.webhook is not None:
            self.interaction = StoredInteraction(client, *self.webhook)
        return self.interaction

    def token_died(self) -> None:
        """Discord refused the token: every later message goes to the channel."""
        self.interaction = None
        self.webhook = None

    def token_alive(self, now: float | None = None) -> bool:
        now = time.time() if now is None else now
        return (
            (self.interaction is not None or self.webhook is not None)
            and now - self.created_at < TOKEN_LIFETIME_S - TOKEN_MARGIN_S
        )


class Deliveries:
    """Each job's Delivery, by job id: the live one of a job this process accepted (tracked
    before the job is submitted), else rebuilt from the reference the job carries on first
    use. Forgotten at the job's ending."""

    def __init__(self, kept: int = RECORDS_KEPT):
        self._records: OrderedDict[str, Delivery] = OrderedDict()
        self._kept = kept

    def __len__(self) -> int:
        return len(self._records)

    def track(self, job_id: str, delivery: Delivery) -> None:
        self._records[job_id] = delivery
        self._records.move_to_end(job_id)
        while len(self._records) > self._kept:
            self._records.popitem(last=False)

    def of(self, job: Job) -> Delivery:
        record = self._records.get(job.id)
        if record is None:
            record = Delivery.from_dict(job.delivery)
            self.track(job.id, record)
        return record

    def forget(self, job_id: str) -> None:
        self._records.pop(job_id, None)


class StoredInteraction:
    """An interaction's response, editable from any bot process or after a restart: its
    webhook needs only the application id and the interaction's token."""

    def __init__(self, client: discord.Client, application_id: int, token: str):
        self.application_id = application_id
        self.token = token
        self._webhook = discord.Webhook.partial(application_id, token, client=client)

    async def edit_original_response(self, **fields: Any) -> discord.WebhookMessage:
        return await self._webhook.edit_message("@original", **fields)  # type: ignore[call-overload]

    async def delete_original_response(self) -> None:
        # "@original" names the interaction's response where a message id would go
        await self._webhook.delete_message("@original")  # type: ignore[arg-type]
