"""What Discord users read about their job: its place in the queue, its passes, its ending.

The Reporter (placebot/jobs/backend.py) for Discord. It decides the words and the files;
placebot/discord_side/transport.py carries them, placebot/discord_side/result_files.py encodes the
images.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import aiohttp
import discord
from PIL import Image

from pipeline.atlas import Atlas
from pipeline.outputs import save_result
from pipeline.results import RenderResult
from placebot.discord_side.delivery import Deliveries
from placebot.discord_side.result_files import (
    LOCATOR_NAME,
    NamedFile,
    encode_result_files,
    preview_jpeg,
)
from placebot.discord_side.transport import DiscordTransport, attachments
from placebot.discord_side.views import cancel_view, result_embed, result_view
from placebot.jobs.backend import QueuePlace
from placebot.jobs.jobqueue import Job, JobState
from placebot.jobs.outbox import Outbox, retry_delays
from placebot.messages import user_message

log = logging.getLogger(__name__)

TOO_LARGE = 413
INVALID_FORM_BODY = 50035  # Discord's code for a message it refuses as malformed (400)


@dataclass(frozen=True)
class ResultForm:
    """How a result is sent: whole, or (after Discord refused the message as malformed) with
    less of what the bot wrote around the picture, so that the picture still arrives."""

    embed: bool
    buttons: bool
    note: str = ""  # after the mention: why the message is barer than usual


# Tried in order: each is sent only if Discord refused the one before as malformed.
RESULT_FORMS = (
    ResultForm(embed=True, buttons=True),
    ResultForm(embed=False, buttons=True,
               note=" (its details could not be shown; the bot owner can see why in the log)"),
    ResultForm(embed=False, buttons=False,
               note=" (its details and buttons could not be shown; the bot owner can see why "
                    "in the log)"),
)


def refused_as_malformed(error: discord.HTTPException) -> bool:
    return error.status == 400 and error.code == INVALID_FORM_BODY


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def failed_text(error: Exception) -> str:
    """A job's failure, as its user reads it. Neutral about what started the job (/place,
    /dream, "Dream on this", a Re-roll or New crop click): every one of them is a dream, and
    the line stands under the user's own command or click, which names it already."""
    return f"Sorry, your dream failed: {user_message(error)}."


def queued_text(place: QueuePlace) -> str:
    eta_text = f", about {place.eta_s:.0f} s" if place.eta_s is not None else ""
    ahead = _plural(place.position - 1, "job")
    return f"Queued: position {place.position} ({ahead} ahead{eta_text})."


class DiscordReporter:
    def __init__(self, transport: DiscordTransport, *, output_dir: Path | None = None,
                 outbox: Outbox | None = None, atlas: Atlas | None = None,
                 deliveries: Deliveries | None = None):
        self._transport = transport
        # Each job's Discord-side record (what its user was shown), by job id: the Discord
        # side tracks a job's record there before submitting it; the job carries only a
        # reference. Forgotten at the job's ending.
        self.deliveries = deliveries if deliveries is not None else Deliveries()
        self._atlas = atlas  # names the artworks a canvas crop shows (None: never)
        self._outbox = outbox  # finished results until Discord has them (None: not kept)
        self._output_dir = output_dir  # also save every result here, when set
        # Why the last save there failed, for /place_status (None while saving works).
        self.output_problem: str | None = None
        self._latest_places: Sequence[tuple[Job, QueuePlace]] = ()
        self._positions_task: asyncio.Task | None = None

    # ----- what the user sees while waiting
    async def acknowledge(self, job: Job, place: QueuePlace) -> None:
        """The first word on an accepted job (unless the worker already took it)."""
        delivery = self.deliveries.of(job)
        try:
            if job.state is JobState.QUEUED and place.position:
                delivery.shown_position = place.position
                await self._transport.edit_live(job, delivery, content=queued_text(place),
                                                view=cancel_view(job), acknowledging=True)
        finally:
            delivery.acknowledged.set()

    async def queue_moved(self, waiting: Sequence[tuple[Job, QueuePlace]]) -> None:
        """Refresh waiting users' positions in the background: the backend must not wait on
        chat edits (or their rate limits) between two renders. Calls that come while a
        refresh runs are folded into one more refresh, with the latest places."""
        self._latest_places = waiting
        if self._positions_task is None or self._positions_task.done():
            self._positions_task = asyncio.create_task(self._refresh_positions())

    async def requeued(self, job: Job, place: QueuePlace) -> None:
        """Its render worker stopped and it went back to the queue: it shows waiting again,
        at `place` (even where that is the place it showed before it started)."""
        self.deliveries.of(job).shown_position = None
        await self.queue_moved([(job, place)])

    async def _refresh_positions(self) -> None:
        while self._latest_places:
            places, self._latest_places = self._latest_places, ()
            updates = []
            for job, place in places:
                if job.state is not JobState.QUEUED:  # it started since: "Dreaming" stands
                    continue
                delivery = self.deliveries.of(job)
                if delivery.shown_position != place.position and delivery.token_alive():
                    delivery.shown_position = place.position
                    updates.append(self._transport.edit_live(job, delivery,
                                                             content=queued_text(place)))
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

    async def _edit_all(self, jobs: Sequence[Job], text: Callable[[Job], str]) -> None:
        deliveries = [self.deliveries.of(job) for job in jobs]
        for delivery in deliveries:
            delivery.shown_position = 0
        await asyncio.gather(*(self._transport.edit_live(job, delivery, content=text(job),
                                                         view=cancel_view(job))
                               for job, delivery in zip(jobs, deliveries, strict=True)))

    async def progress(self, job: Job, pass_number: int, frames: list[Image.Image]) -> None:
        delivery = self.deliveries.of(job)
        if not delivery.token_alive():
            return
        text = f"Dreaming: pass {pass_number}/{job.render.passes}…"
        preview = await asyncio.to_thread(preview_jpeg, frames)  # encoding is CPU work
        if job.state is not JobState.RUNNING:  # it ended meanwhile: don't cover its ending
            return
        await self._transport.edit_live(job, delivery, content=text,
                                        attachments=attachments([preview]))

    # ----- endings: exactly one of these per job
    def owner_notices(self) -> list[str]:
        """Problems the owner should fix, one line each (shown by /place_status)."""
        return [self.output_problem] if self.output_problem else []

    async def _save_owner_copy(self, job: Job, result: RenderResult) -> None:
        """The owner's copy is a side effect: a folder that cannot be written, or is full, is
        logged and shown in /place_status, and never costs the user the result."""
        if self._output_dir is None:
            return
        try:
            await asyncio.to_thread(save_result, result, self._output_dir)
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            self.output_problem = (f"PLACE_OUTPUT_DIR cannot be written ({reason}): results "
                                   "are delivered but not saved there; see the log")
            log.warning("could not save job %s in PLACE_OUTPUT_DIR %s (%s); delivering it "
                        "anyway", job.id, self._output_dir, exc)
        else:
            self.output_problem = None

    async def finished(self, job: Job, result: RenderResult) -> None:
        """Deliver the result; it is kept in the outbox until Discord has it, so that neither an
        outage (retried with backoff) nor a restart (delivered by the next start) loses it."""
        await self._name_artworks(job, result)
        await self._save_owner_copy(job, result)
        await self._keep(job, result)
        await self._deliver(job, result)
        self.deliveries.forget(job.id)  # one that failed is forgotten by `failed`

    def holds_result(self, job: Job) -> bool:
        return self._outbox is not None and self._outbox.holds(job.id)

    async def deliver_kept(self, job: Job) -> None:
        assert self._outbox is not None  # holds_result said so
        result = await asyncio.to_thread(self._outbox.load, job.id, job.render)
        log.info("delivering the result of job %s kept from before the restart", job.id)
        await self._name_artworks(job, result)
        await self._deliver(job, result)
        self.deliveries.forget(job.id)

    async def _name_artworks(self, job: Job, result: RenderResult) -> None:
        """Look up the artworks a canvas crop shows (the year's atlas is read on first use,
        in a thread). A failure here is logged and costs the result only its artwork line."""
        if self._atlas is None or result.job.on_picture:
            return
        try:
            result.artworks = await asyncio.to_thread(self._atlas.overlapping, result.job.crop)
        except Exception:
            log.exception("could not look up the artworks of job %s; delivering it without",
                          job.id)

    async def _keep(self, job: Job, result: RenderResult) -> None:
        """A failure to keep it (a full data folder) is logged and the upload goes on: only a
        restart in the middle of it could then cost the result."""
        if self._outbox is None:
            return
        try:
            await asyncio.to_thread(self._outbox.keep, job.id, result)
        except OSError as exc:
            log.warning("could not keep the result of job %s in %s until it is delivered "
                        "(%s)", job.id, self._outbox.folder, exc)

    async def _deliver(self, job: Job, result: RenderResult) -> None:
        """Upload, then forget the kept copy. A refusal no retry can mend forgets it too (the
        user is told the job failed); only a stop mid-upload (cancelled) leaves it kept."""
        try:
            await self._upload(job, result)
        except asyncio.CancelledError:
            raise  # the bot stops mid-upload: the result stays kept for the next start
        except Exception:
            await self._forget(job)
            raise
        await self._forget(job)

    async def _forget(self, job: Job) -> None:
        if self._outbox is not None:
            await asyncio.to_thread(self._outbox.remove, job.id)

    async def _upload(self, job: Job, result: RenderResult) -> None:
        """Upload until Discord has it: 413 gets a smaller encoding, a message refused as
        malformed (400/50035) a barer form (RESULT_FORMS), a 5xx or a lost connection another
        try after a growing delay (the token may die meanwhile: the channel then)."""
        size_limit = self.deliveries.of(job).size_limit
        files = await asyncio.to_thread(encode_result_files, result, size_limit)
        forms = iter(RESULT_FORMS)
        form = next(forms)
        while True:
            try:
                await self._until_taken(job, "result",
                                        partial(self._send_result, job, result, files, form))
                return
            except discord.HTTPException as exc:
                if refused_as_malformed(exc) and (barer := next(forms, None)) is not None:
                    # A defect of the bot's (embeds are built to fit): its traceback is
                    # logged, and the picture goes out without what Discord refused.
                    log.exception("Discord refused the result message of job %s as "
                                  "malformed; sending it without its %s", job.id,
                                  "embed" if form.embed else "buttons")
                    form = barer
                    continue
                if exc.status != TOO_LARGE:
                    raise
                # The server's real limit is below what the interaction said: go smaller.
                size_limit = sum(len(data) for _, data in files) - 1
                log.info("upload of job %s too large (413); re-encoding under %d bytes",
                         job.id, size_limit)
                files = await asyncio.to_thread(encode_result_files, result, size_limit)

    async def _until_taken(self, job: Job, what: str,
                           send: Callable[[], Awaitable[object]]) -> None:
        """Send until Discord takes it: a 5xx or a lost connection is tried again after a
        growing delay (retry_delays); any other refusal is raised to the caller."""
        delays = retry_delays()
        while True:
            try:
                await send()
                return
            except discord.HTTPException as exc:
                if exc.status < 500:
                    raise
                problem: Exception = exc
            except (TimeoutError, aiohttp.ClientError) as exc:
                problem = exc
            delay = next(delays)
            log.warning("Discord did not take the %s of job %s (%s); trying again in %.1f s",
                        what, job.id, problem, delay)
            await asyncio.sleep(delay)

    async def _send_result(self, job: Job, result: RenderResult, files: list[NamedFile],
                           form: ResultForm = RESULT_FORMS[0]) -> None:
        thumbnail = LOCATOR_NAME if any(name == LOCATOR_NAME for name, _ in files) else None
        embed = result_embed(result, files[0][0], thumbnail) if form.embed else None
        view = result_view(job) if form.buttons else None
        delivery = self.deliveries.of(job)
        if delivery.reply_to is not None:  # "Dream on this": in reply to that message
            await self._transport.post(
                job, delivery, content=f"<@{job.user_id}> dreamed on this.{form.note}",
                embed=embed, files=files, view=view, reply=True)
            await self._transport.delete_live(job, delivery)
            return
        # view=None takes the Cancel button off the live message
        if await self._transport.edit_live(job, delivery,
                                           content=f"<@{job.user_id}>{form.note}",
                                           embed=embed, attachments=attachments(files),
                                           view=view, final=True):
            return
        await self._transport.post(
            job, delivery, content=f"<@{job.user_id}> your dream is ready.{form.note}",
            embed=embed, files=files, view=view)

    async def failed(self, job: Job, error: Exception) -> None:
        """The reason, in the user's message (or the channel); kept trying through an outage
        as a result is, since it is the job's one answer."""
        text = failed_text(error)
        delivery = self.deliveries.of(job)

        async def tell() -> None:
            try:
                if await self._transport.edit_live(job, delivery, content=text, view=None,
                                                   final=True):
                    return
            except discord.HTTPException as exc:
                if exc.status >= 500:
                    raise  # Discord is down: try the edit again, not a second message
                log.warning("could not edit the failure of job %s in (%s); posting it",
                            job.id, exc)
            await self._transport.post(job, delivery, content=f"<@{job.user_id}> {text}")

        try:
            await self._until_taken(job, "failure notice", tell)
        finally:
            self.deliveries.forget(job.id)

    async def cancelled(self, job: Job) -> None:
        delivery = self.deliveries.of(job)
        try:
            await self._until_taken(job, "cancellation", lambda: self._transport.edit_live(
                job, delivery, content="Cancelled.", view=None, attachments=[], final=True))
        finally:
            self.deliveries.forget(job.id)

    async def restarting(self, job: Job) -> None:
        text = ("The bot is restarting. Your job is kept and will run as soon as it is back; "
                "the result will be posted in this channel.")
        await self._transport.edit_live(job, self.deliveries.of(job), content=text, view=None)

