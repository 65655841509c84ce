"""Embeds and buttons of a /place message.

Buttons keep working after a restart: everything a button needs is in its custom_id. Each
action is one discord.ui.DynamicItem class whose template parses its own custom_id (as in
discord.py's examples/views/dynamic_counter.py), registered with the client in BUTTONS. A
custom_id that none of them parses (forged, or from an older version) is answered "no longer
valid" by refuse_unknown_button, never ignored.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import discord

from pipeline.atlas import NAMED_PER_RESULT, Overlap
from pipeline.errors import ParamError
from pipeline.params import (
    CONTENT_KEY,
    PARAMS,
    RECROP_FIELDS,
    RESEED_FIELDS,
    RenderJob,
    RenderRequest,
    decode_payload,
    encode_payload,
    kept_values,
    payload_pattern,
)
from pipeline.results import RenderResult
from placebot import texts
from placebot.discord_side.embeds import Field, build_embed
from placebot.discord_side.pictures import from_kept, with_kept
from placebot.discord_side.source_store import SourceStore, kept_key
from placebot.jobs.backend import CancelOutcome, JobBackend
from placebot.jobs.jobqueue import Job
from placebot.messages import user_message
from placebot.texts import ALREADY_DELETED, NO_LONGER_VALID

if TYPE_CHECKING:
    from placebot.discord_side.service import PlaceService

log = logging.getLogger(__name__)

PREFIX = "place"


# ----- the payloads of Re-roll and New crop: what to render again (the seed is left open).
# The kept parameters (a prompt, pipeline.params) do not fit in a custom_id: the source store
# keeps them, the payload names their key (":q", from when only a prompt was kept).
_KEPT = f"(?::q(?P<kept>{CONTENT_KEY}))?"


def _kept_part(job: RenderJob) -> str:
    kept = kept_values(job)
    return f":q{kept_key(kept)}" if kept is not None else ""


def reroll_id(job: RenderJob) -> str:
    """Same source and parameters, a new seed."""
    return f"{PREFIX}:reroll{encode_payload(job, RESEED_FIELDS)}{_kept_part(job)}"


def newcrop_id(job: RenderJob) -> str:
    """Same parameters, a new source (crop, or square of the picture) and seed."""
    return f"{PREFIX}:newcrop{encode_payload(job, RECROP_FIELDS)}{_kept_part(job)}"


# ----- the ids of Delete and Cancel: whose message, which job
_OWNER = r"(?P<owner>\d{1,20})"
_JOB_ID = r"(?P<job>[0-9a-f]{12})"


def delete_id(owner_id: int) -> str:
    return f"{PREFIX}:delete:{owner_id}"


def cancel_id(job_id: str, owner_id: int) -> str:
    return f"{PREFIX}:cancel:{job_id}:{owner_id}"


# ----- what a button uses, from the client that received the click
@runtime_checkable
class ButtonHost(Protocol):
    """What buttons use. discord.py builds a DynamicItem from the click's custom_id, so the
    client that received the click is its one way in; PlaceBot builds these at its start."""

    @property
    def service(self) -> PlaceService: ...

    @property
    def jobs(self) -> JobBackend: ...

    @property
    def sources(self) -> SourceStore: ...

    async def report_unexpected(self, interaction: discord.Interaction,
                                error: Exception) -> None: ...


def _host(interaction: discord.Interaction) -> ButtonHost:
    client = interaction.client
    if not isinstance(client, ButtonHost):
        raise TypeError(f"buttons need a client with a service and jobs, not {client!r}")
    return client


async def _answering(interaction: discord.Interaction,
                     act: Callable[[ButtonHost], Awaitable[Any]]) -> None:
    """Run a button's job; an unexpected error is logged and the user told (never silence)."""
    host = _host(interaction)
    try:
        await act(host)
    except Exception as exc:
        await host.report_unexpected(interaction, exc)


async def _submit_payload(interaction: discord.Interaction, host: ButtonHost,
                          payload: dict[str, str | None]) -> None:
    """A new job from a Re-roll or New crop payload. Decoded here, not when the button is
    built: discord.py drops a click silently when building raises, a refusal is better."""
    try:
        request = decode_payload(payload)
    except ParamError as exc:
        await interaction.response.send_message(user_message(exc), ephemeral=True)
        return
    key = payload.get("kept")

    async def from_kept_sources(request: RenderRequest) -> RenderRequest:
        """The kept values (a prompt) and the picture the payload names, read back
        (SourceExpired if gone)."""
        if key is not None:
            request = await with_kept(host.sources, request, key)
        if request.picture is not None:
            request = await from_kept(host.sources, request)
        return request

    await host.service.submit(interaction, request, prepare=from_kept_sources,
                              kept_text=key is not None)


# ----- one class per action
class RerollButton(discord.ui.DynamicItem[discord.ui.Button],
                   template=f"{PREFIX}:reroll{payload_pattern(RESEED_FIELDS)}{_KEPT}"):
    """Same source, same settings, a new seed: a new /place job for whoever clicks."""

    def __init__(self, custom_id: str, payload: dict[str, str | None]):
        super().__init__(discord.ui.Button(label="Re-roll", style=discord.ButtonStyle.primary,
                                           emoji="🎲", custom_id=custom_id))
        self.payload = payload

    @classmethod
    def for_job(cls, job: RenderJob) -> RerollButton:
        return cls(reroll_id(job), {})  # the payload is only read from a click

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Item[Any],
                             match: re.Match[str]) -> RerollButton:
        return cls(match.string, match.groupdict())

    async def callback(self, interaction: discord.Interaction) -> None:
        await _answering(interaction,
                         lambda host: _submit_payload(interaction, host, self.payload))


class NewCropButton(discord.ui.DynamicItem[discord.ui.Button],
                    template=f"{PREFIX}:newcrop{payload_pattern(RECROP_FIELDS)}{_KEPT}"):
    """Same settings, a random crop and seed: a new /place job for whoever clicks."""

    def __init__(self, custom_id: str, payload: dict[str, str | None]):
        super().__init__(discord.ui.Button(label="New crop", emoji="🗺️", custom_id=custom_id,
                                           style=discord.ButtonStyle.secondary))
        self.payload = payload

    @classmethod
    def for_job(cls, job: RenderJob) -> NewCropButton:
        return cls(newcrop_id(job), {})  # the payload is only read from a click

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Item[Any],
                             match: re.Match[str]) -> NewCropButton:
        return cls(match.string, match.groupdict())

    async def callback(self, interaction: discord.Interaction) -> None:
        await _answering(interaction,
                         lambda host: _submit_payload(interaction, host, self.payload))


class DeleteButton(discord.ui.DynamicItem[discord.ui.Button],
                   template=rf"{PREFIX}:delete:{_OWNER}"):
    """Delete the result: its requester, or anyone who can manage messages."""

    def __init__(self, owner_id: int):
        super().__init__(discord.ui.Button(label="Delete", style=discord.ButtonStyle.danger,
                                           emoji="🗑️", custom_id=delete_id(owner_id)))
        self.owner_id = owner_id

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Item[Any],
                             match: re.Match[str]) -> DeleteButton:
        return cls(int(match["owner"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        await _answering(interaction, lambda host: self._delete(interaction))

    async def _delete(self, interaction: discord.Interaction) -> None:
        if (interaction.user.id != self.owner_id
                and not interaction.permissions.manage_messages):
            await interaction.response.send_message(texts.ONLY_OWNER_DELETES, ephemeral=True)
            return
        await interaction.response.defer()
        try:
            await interaction.delete_original_response()
        except discord.NotFound:  # a second click that came before the first one's delete
            await interaction.followup.send(ALREADY_DELETED, ephemeral=True)


CANCEL_ANSWERS = {
    CancelOutcome.NOT_FOUND: texts.CANCEL_NOT_FOUND,
    CancelOutcome.REMOVED: texts.CANCEL_REMOVED,
    CancelOutcome.STOPPING: texts.CANCEL_STOPPING,
}


class CancelButton(discord.ui.DynamicItem[discord.ui.Button],
                   template=rf"{PREFIX}:cancel:{_JOB_ID}:{_OWNER}"):
    """Cancel a waiting or running job: its requester only."""

    def __init__(self, job_id: str, owner_id: int):
        super().__init__(discord.ui.Button(label="Cancel", style=discord.ButtonStyle.danger,
                                           custom_id=cancel_id(job_id, owner_id)))
        self.job_id = job_id
        self.owner_id = owner_id

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Item[Any],
                             match: re.Match[str]) -> CancelButton:
        return cls(match["job"], int(match["owner"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        await _answering(interaction, lambda host: self._cancel(interaction, host.jobs))

    async def _cancel(self, interaction: discord.Interaction, jobs: JobBackend) -> None:
        if interaction.user.id != self.owner_id:
            await interaction.response.send_message(texts.ONLY_OWNER_CANCELS, ephemeral=True)
            return
        outcome = await jobs.cancel(self.job_id, interaction.user.id)
        await interaction.response.send_message(CANCEL_ANSWERS[outcome], ephemeral=True)


# ----- buttons under messages from before the custom_id format changed
# model:canvas:x:y:strength:steps:passes and model:strength:steps:passes, values positional.
# Each is today's button with another template: its values are read into today's payload,
# and the click is handled as today's.
_OLD_NUMBER = r"\d{1,4}(?:\.\d{1,4})?"
_OLD_REROLL = (rf"{PREFIX}:reroll:(?P<model>{_OLD_NUMBER}):(?P<canvas>\d{{4}}):(?P<x>\d{{1,5}}):"
               rf"(?P<y>\d{{1,5}}):(?P<strength>{_OLD_NUMBER}):(?P<steps>\d{{1,4}}):"
               rf"(?P<passes>\d{{1,3}})")
_OLD_NEWCROP = (rf"{PREFIX}:newcrop:(?P<model>{_OLD_NUMBER}):(?P<strength>{_OLD_NUMBER}):"
                rf"(?P<steps>\d{{1,4}}):(?P<passes>\d{{1,3}})")


def _old_payload(groups: dict[str, str | None]) -> dict[str, str | None]:
    """Today's payload for an old button's values: passes became recursions (one fewer)."""
    payload = {name: text for name, text in groups.items() if name != "passes"}
    passes = groups["passes"]
    assert passes is not None  # the templates require it
    payload["recursions"] = str(int(passes) - 1)
    return payload


class OldRerollButton(RerollButton, template=_OLD_REROLL):
    """A Re-roll button posted before the format changed: the same crop, a new seed."""

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Item[Any],
                             match: re.Match[str]) -> OldRerollButton:
        return cls(match.string, _old_payload(match.groupdict()))


class OldNewCropButton(NewCropButton, template=_OLD_NEWCROP):
    """A New crop button posted before the format changed: its settings, a random crop."""

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Item[Any],
                             match: re.Match[str]) -> OldNewCropButton:
        return cls(match.string, _old_payload(match.groupdict()))


BUTTONS = (RerollButton, NewCropButton, DeleteButton, CancelButton, OldRerollButton,
           OldNewCropButton)


def is_known_button(custom_id: str) -> bool:
    return any(button.__discord_ui_compiled_template__.fullmatch(custom_id)
               for button in BUTTONS)


async def refuse_unknown_button(interaction: discord.Interaction) -> None:
    """Answer a click on a button none of BUTTONS parses (discord.py would ignore it)."""
    data: Any = interaction.data or {}
    custom_id = str(data.get("custom_id", ""))
    if interaction.type is not discord.InteractionType.component or is_known_button(custom_id):
        return
    log.info("refused unknown button %r from user %s", custom_id[:100], interaction.user.id)
    await interaction.response.send_message(NO_LONGER_VALID, ephemeral=True)


def cancel_view(job: Job) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(CancelButton(job.id, job.user_id))
    return view


def result_view(job: Job) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(RerollButton.for_job(job.render))
    view.add_item(NewCropButton.for_job(job.render))
    view.add_item(DeleteButton(job.user_id))
    return view


def result_embed(result: RenderResult, image_name: str,
                 thumbnail_name: str | None = None) -> discord.Embed:
    job = result.job
    if job.on_picture:
        title = f"A picture, {job.pixel} tiles high, dreamed by SD {job.model}"
        description = ("Left to right in the strip: the pixelated picture, then each img2img "
                       "pass. Re-roll keeps this square with a new seed; New crop takes "
                       "another square of the picture (a new seed if it is square).")
    else:
        crop = job.crop
        title = f"r/Place {crop.canvas} at ({crop.x}, {crop.y}), dreamed by SD {job.model}"
        description = ("Left to right in the strip: the 32x32 crop, then each img2img pass. "
                       "Re-roll keeps this crop with a new seed.")
    hidden_scope = "canvas" if job.on_picture else "picture"
    fields = [
        *(Field(spec.label, _shown(spec.encode_value(value), spec.kind)) for key, spec
          in PARAMS.items() if spec.shown and spec.scope != hidden_scope
          and (value := getattr(job, key)) is not None),
        Field("Model id", result.model_id), Field("Time", f"{result.seconds:.1f} s"),
    ]
    if result.prompt_used is not None:
        fields.append(Field("Prompt cut", inline=False, value=(
            "CLIP reads 77 tokens; the prompt was cut to: " + _shown(result.prompt_used, str))))
    if result.artworks is not None:  # the r/Place Atlas was looked up for this crop
        fields.append(Field(ARTWORKS_LABEL, artworks_text(result.artworks), inline=False))
    footer = ("The safety checker blacked out at least one pass." if result.nsfw_flagged
              else None)
    embed = build_embed(title=title, description=description, fields=fields, footer=footer,
                        colour=discord.Colour.from_rgb(255, 69, 0),
                        image_url=f"attachment://{image_name}")
    if thumbnail_name is not None:  # the locator picture: where on the canvas the crop is
        embed.set_thumbnail(url=f"attachment://{thumbnail_name}")
    return embed


ARTWORKS_LABEL = "On r/Place"
MAX_ARTWORK_NAME = 80  # of a name in the embed: three lines stay far inside a field's 1024


def artworks_text(found: list[Overlap]) -> str:
    """Up to NAMED_PER_RESULT artworks the crop shows, a line each: the name linked to its
    atlas page, its subreddit, the share of the crop it covers."""
    if not found:
        return "No charted artwork here (the r/Place Atlas has none on this crop)."
    lines = []
    for overlap in found[:NAMED_PER_RESULT]:
        artwork = overlap.artwork
        name = _shown(artwork.name[:MAX_ARTWORK_NAME], str).replace("]", "\\]")
        where = f" · r/{_shown(artwork.subreddits[0], str)}" if artwork.subreddits else ""
        lines.append(f"[{name}]({artwork.url}){where} · {overlap.share:.0%} of the crop")
    return "\n".join(lines)


def _shown(text: str, kind: type) -> str:
    """A user's text as plain text in the bot's embed: no markdown, no mention takes effect."""
    if kind is not str:
        return text
    return discord.utils.escape_mentions(discord.utils.escape_markdown(text))
