"""Telling Discord users how their job is going, and delivering its result exactly once.

Live jobs are shown by editing the interaction's original response. Interaction tokens die
after 15 minutes: a result that comes later (or after a restart, or whose edit is refused
with 401/404) is posted as a channel message that mentions the user instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import discord
from PIL import Image

from pipeline.engine import RenderResult
from pipeline.outputs import (
    animation_bytes,
    file_stem,
    filmstrip,
    job_metadata,
    png_bytes,
    save_result,
)
from placebot.jobqueue import Job, JobState
from placebot.messages import UserFacingError, user_message
from placebot.views import cancel_view, result_embed, result_view

if TYPE_CHECKING:
    from placebot.client import PlaceBot

log = logging.getLogger(__name__)

TOKEN_LIFETIME_S = 15 * 60
TOKEN_MARGIN_S = 60  # do not start an upload that may outlive the token
DEFAULT_SIZE_LIMIT = 10 * 1024 * 1024
PREVIEW_HEIGHT = 192


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
    # Set once the interaction is deferred and the job acknowledged: the worker's edits wait
    # for it, so that "Queued: position 1" can never land after "Dreaming".
    acknowledged: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    @classmethod
    def from_interaction(cls, interaction: discord.Interaction) -> Delivery:
        return cls(
            user_id=interaction.user.id,
            channel_id=interaction.channel_id,
            guild_id=interaction.guild_id,
            created_at=interaction.created_at.timestamp(),
            size_limit=getattr(interaction, "filesize_limit", None) or DEFAULT_SIZE_LIMIT,
            interaction=interaction,
        )

    def to_dict(self) -> dict:
        return {"user_id": self.user_id, "channel_id": self.channel_id,
                "guild_id": self.guild_id, "created_at": self.created_at,
                "size_limit": self.size_limit}

    @classmethod
    def from_dict(cls, data: dict) -> Delivery:
        return cls(**data)

    def token_alive(self, now: float | None = None) -> bool:
        now = time.time() if now is None else now
        return (
            self.interaction is not None
            and now - self.created_at < TOKEN_LIFETIME_S - TOKEN_MARGIN_S
        )


def _jpeg(image: Image.Image, quality: int, scale: float = 1.0) -> bytes:
    if scale != 1.0:
        image = image.resize((int(image.width * scale), int(image.height * scale)))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality, optimize=True)
    return buffer.getvalue()


def encode_result_files(result: RenderResult, size_limit: int) -> list[tuple[str, bytes]]:
    """The final image, the filmstrip and the animation, in the best encoding that fits.

    PNGs carry the parameters in their metadata; when all three are too large for this
    server, the animation goes first, then JPEGs (then a smaller strip, then the final image
    alone) are used instead.
    """
    stem = file_stem(result)
    metadata = job_metadata(result)
    strip = filmstrip(result.frames)
    encoded: dict[str, bytes] = {}

    def once(name: str, encode) -> tuple[str, bytes]:
        """Each file is encoded at most once, however many rungs of the ladder use it."""
        if name not in encoded:
            encoded[name] = encode()
        return name, encoded[name]

    def final_png():
        return once(f"{stem}.png", lambda: png_bytes(result.final, metadata))

    def strip_png():
        return once(f"{stem}_strip.png", lambda: png_bytes(strip, metadata))

    ladder = [
        lambda: [final_png(), strip_png(),
                 (f"{stem}.webp", animation_bytes(result.frames))],
        lambda: [final_png(), strip_png()],
        lambda: [final_png(), (f"{stem}_strip.jpg", _jpeg(strip, 90))],
        lambda: [(f"{stem}.jpg", _jpeg(result.final, 90)),
                 (f"{stem}_strip.jpg", _jpeg(strip, 80, 0.5))],
        lambda: [(f"{stem}.jpg", _jpeg(result.final, 75))],
        lambda: [(f"{stem}.jpg", _jpeg(result.final, 60, 0.5))],
    ]
    for option in ladder:
        files = option()
        if sum(len(data) for _, data in files) <= size_limit:
            return files
    raise UserFacingError(
        f"even a small JPEG exceeds this server's upload limit of {size_limit} bytes")


def preview_file(frames: list[Image.Image]) -> discord.File:
    """A small JPEG filmstrip of the passes so far, for progress messages."""
    strip = filmstrip(frames)
    scale = PREVIEW_HEIGHT / strip.height
    return discord.File(io.BytesIO(_jpeg(strip, 80, scale)), filename="progress.jpg")


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


class DiscordReporter:
    """The Worker's Reporter for Discord."""

    def __init__(self, bot: PlaceBot):
        self.bot = bot
        self._positions_dirty = False
        self._positions_task: asyncio.Task | None = None

    # ----- what the user sees while waiting
    def queued_text(self, job: Job) -> str:
        position = self.bot.queue.position(job)
        eta = self.bot.worker.timer.eta(position)
        eta_text = f", about {eta:.0f} s" if eta is not None else ""
        ahead = _plural(position - 1, "job")
        return f"Queued: position {position} ({ahead} ahead{eta_text})."

    async def acknowledge(self, job: Job) -> None:
        """The first word on an accepted job (unless the worker already took it)."""
        try:
            if job.state is JobState.QUEUED:
                job.context.shown_position = self.bot.queue.position(job)
                await self._edit_live(job, content=self.queued_text(job), view=cancel_view(job),
                                      acknowledging=True)
        finally:
            job.context.acknowledged.set()

    async def queue_moved(self) -> None:
        """Refresh waiting users' positions in the background: the worker must not wait on
        chat edits (or their rate limits) between two renders. Calls that come while a
        refresh runs are folded into one more refresh."""
        self._positions_dirty = True
        if self._positions_task is None or self._positions_task.done():
            self._positions_task = asyncio.create_task(self._refresh_positions())

    async def _refresh_positions(self) -> None:
        while self._positions_dirty:
            self._positions_dirty = False
            updates = []
            for job in self.bot.queue.waiting:
                position = self.bot.queue.position(job)
                if job.context.shown_position != position and job.context.token_alive():
                    job.context.shown_position = position
                    updates.append(self._edit_live(job, content=self.queued_text(job)))
            results = await asyncio.gather(*updates, return_exceptions=True)
            for error in (r for r in results if isinstance(r, Exception)):
                log.warning("could not update a queue position: %s", error)

    async def loading(self, jobs: Sequence[Job]) -> None:
        model = jobs[0].render.model
        text = (f"Loading Stable Diffusion {model}: the first request after a start takes a "
                "while (the very first one downloads the model, about 2 GB).")
        await self._edit_all(jobs, lambda job: text)

    async def started(self, jobs: Sequence[Job]) -> None:
        await self._edit_all(jobs, lambda job: f"Dreaming: pass 0/{job.render.passes}…")

    async def _edit_all(self, jobs: Sequence[Job], text) -> None:
        for job in jobs:
            job.context.shown_position = 0
        await asyncio.gather(*(self._edit_live(job, content=text(job), view=cancel_view(job))
                               for job in jobs))

    async def progress(self, job: Job, pass_number: int, frames: list) -> None:
        if not job.context.token_alive():
            return
        text = f"Dreaming: pass {pass_number}/{job.render.passes}…"
        preview = await asyncio.to_thread(preview_file, frames)  # encoding is CPU work
        if job.state is not JobState.RUNNING:  # it ended meanwhile: don't cover its ending
            return
        await self._edit_live(job, content=text, attachments=[preview])

    # ----- endings: exactly one of these per job
    async def finished(self, job: Job, result: RenderResult) -> None:
        if self.bot.settings.output_dir is not None:
            await asyncio.to_thread(save_result, result, self.bot.settings.output_dir)
        size_limit = job.context.size_limit
        while True:
            files = await asyncio.to_thread(encode_result_files, result, size_limit)
            try:
                await self._send_result(job, result, files)
                return
            except discord.HTTPException as exc:
                if exc.status != 413:
                    raise
                # The server's real limit is below what the interaction said: go smaller.
                size_limit = sum(len(data) for _, data in files) - 1
                log.info("upload of job %s too large (413); re-encoding under %d bytes",
                         job.id, size_limit)

    async def _send_result(self, job: Job, result: RenderResult, files) -> None:
        embed = result_embed(result, files[0][0])
        attachments = [discord.File(io.BytesIO(data), filename=name) for name, data in files]
        view = result_view(job)
        if await self._edit_live(job, content=f"<@{job.user_id}>", embed=embed,
                                 attachments=attachments, view=view, final=True):
            return
        await self._post(job, content=f"<@{job.user_id}> your dream is ready.", embed=embed,
                         files=files, view=view)

    async def failed(self, job: Job, error: Exception) -> None:
        text = f"Sorry, your /place failed: {user_message(error)}."
        try:
            if await self._edit_live(job, content=text, view=None, final=True):
                return
        except discord.HTTPException as exc:
            log.warning("could not edit the failure of job %s in (%s); posting it", job.id, exc)
        await self._post(job, content=f"<@{job.user_id}> {text}")

    async def cancelled(self, job: Job) -> None:
        await self._edit_live(job, content="Cancelled.", view=None, attachments=[], final=True)

    async def restarting(self, job: Job) -> None:
        text = ("The bot is restarting. Your job is kept and will run as soon as it is back; "
                "the result will be posted in this channel.")
        await self._edit_live(job, content=text, view=None)

    # ----- transport
    async def _edit_live(self, job: Job, *, final: bool = False, acknowledging: bool = False,
                         **fields) -> bool:
        """Edit the interaction's response. False when the token is dead (caller falls back)."""
        delivery = job.context
        if not delivery.token_alive():
            return False
        if not acknowledging and not delivery.acknowledged.is_set():
            with contextlib.suppress(TimeoutError, asyncio.TimeoutError):
                await asyncio.wait_for(delivery.acknowledged.wait(), 10)
        try:
            await delivery.interaction.edit_original_response(**fields)
            return True
        except (discord.NotFound, discord.HTTPException) as exc:
            if isinstance(exc, discord.NotFound) or exc.status == 401:
                log.info("interaction token of job %s no longer works (%s)", job.id, exc.status)
                delivery.interaction = None  # dead: every later message goes to the channel
                return False
            if final:
                raise
            log.warning("could not update job %s: %s", job.id, exc)
            return True

    async def _post(self, job: Job, *, content: str, embed=None, view=None,
                    files: list[tuple[str, bytes]] = ()) -> None:
        """A channel message (mentioning the user); if the channel refuses, a DM."""
        delivery = job.context
        mention = discord.AllowedMentions(users=[discord.Object(delivery.user_id)])

        def fields():
            attached = [discord.File(io.BytesIO(data), filename=name) for name, data in files]
            extra = {"embed": embed} if embed is not None else {}
            if view is not None:
                extra["view"] = view
            return {"content": content, "files": attached, "allowed_mentions": mention, **extra}

        channel = self.bot.get_partial_messageable(delivery.channel_id,
                                                   guild_id=delivery.guild_id)
        try:
            await channel.send(**fields())
            return
        except (discord.Forbidden, discord.NotFound) as exc:
            log.warning("cannot post in channel %s for job %s (%s); sending a DM instead",
                        delivery.channel_id, job.id, exc.status)
        dm = await self.bot.create_dm(discord.Object(delivery.user_id))
        await dm.send(**fields())
