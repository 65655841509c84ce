"""Embeds and buttons of a /place message.

Buttons keep working after a restart: everything a button needs is in its custom_id, and one
discord.ui.DynamicItem (PlaceButton) parses every custom_id this bot receives. An id that does
not parse (forged, or from an older version) is answered "no longer valid", never ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import discord

from pipeline.engine import RenderResult
from pipeline.params import (
    PARAMS,
    RECROP_FIELDS,
    RESEED_FIELDS,
    RenderJob,
    RenderRequest,
    decode_payload,
    encode_payload,
    payload_pattern,
)
from placebot.jobqueue import Job

PREFIX = "place"


@dataclass(frozen=True)
class ButtonAction:
    action: str  # reroll | newcrop | delete | cancel
    owner_id: int | None = None
    job_id: str | None = None
    request: RenderRequest | None = None  # reroll/newcrop: what to render (seed left open)


def reroll_id(job: RenderJob) -> str:
    """Same source and parameters, a new seed."""
    return f"{PREFIX}:reroll{encode_payload(job, RESEED_FIELDS)}"


def newcrop_id(job: RenderJob) -> str:
    """Same parameters, a new source (crop) and seed."""
    return f"{PREFIX}:newcrop{encode_payload(job, RECROP_FIELDS)}"


def delete_id(owner_id: int) -> str:
    return f"{PREFIX}:delete:{owner_id}"


def cancel_id(job_id: str, owner_id: int) -> str:
    return f"{PREFIX}:cancel:{job_id}:{owner_id}"


_PATTERNS = {
    "reroll": re.compile(f"{PREFIX}:reroll{payload_pattern(RESEED_FIELDS)}"),
    "newcrop": re.compile(f"{PREFIX}:newcrop{payload_pattern(RECROP_FIELDS)}"),
    "delete": re.compile(rf"{PREFIX}:delete:(?P<owner>\d{{1,20}})"),
    "cancel": re.compile(rf"{PREFIX}:cancel:(?P<job>[0-9a-f]{{12}}):(?P<owner>\d{{1,20}})"),
}


def parse_custom_id(custom_id: str) -> ButtonAction:
    """ValueError unless custom_id is one this bot makes (values are validated later)."""
    matches = ((action, pattern.fullmatch(custom_id)) for action, pattern in _PATTERNS.items())
    action, match = next(((action, m) for action, m in matches if m), ("", None))
    if match is None:
        raise ValueError(f"unknown button {custom_id[:60]!r}")
    parts = match.groupdict()
    if action in ("delete", "cancel"):
        return ButtonAction(action, owner_id=int(parts["owner"]), job_id=parts.get("job"))
    return ButtonAction(action, request=decode_payload(parts))


class PlaceButton(discord.ui.DynamicItem[discord.ui.Button], template=r"(?P<custom_id>.+)"):
    """Every button of this bot. The PlaceButtons cog does the work."""

    def __init__(self, custom_id: str, label: str = "", style=discord.ButtonStyle.secondary,
                 emoji: str | None = None):
        super().__init__(discord.ui.Button(label=label, style=style, custom_id=custom_id,
                                           emoji=emoji))
        self.custom_id_text = custom_id

    @classmethod
    async def from_custom_id(cls, interaction, item, match):
        return cls(match["custom_id"])

    async def callback(self, interaction: discord.Interaction) -> None:
        cog = interaction.client.get_cog("PlaceButtons")
        await cog.handle(interaction, self.custom_id_text)


def cancel_view(job: Job) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(PlaceButton(cancel_id(job.id, job.user_id), "Cancel",
                              discord.ButtonStyle.danger))
    return view


def result_view(job: Job) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(PlaceButton(reroll_id(job.render), "Re-roll", discord.ButtonStyle.primary,
                              "🎲"))
    view.add_item(PlaceButton(newcrop_id(job.render), "New crop", discord.ButtonStyle.secondary,
                              "🗺️"))
    view.add_item(PlaceButton(delete_id(job.user_id), "Delete", discord.ButtonStyle.danger,
                              "🗑️"))
    return view


def result_embed(result: RenderResult, image_name: str) -> discord.Embed:
    job = result.job
    crop = job.crop
    embed = discord.Embed(
        title=f"r/Place {crop.canvas} at ({crop.x}, {crop.y}), dreamed by SD {job.model}",
        description=("Left to right in the strip: the 32x32 crop, then each img2img pass. "
                     "Re-roll keeps this crop with a new seed."),
        colour=discord.Colour.from_rgb(255, 69, 0),
    )
    for name, value in (
        *((spec.label, spec.encode_value(value)) for key, spec in PARAMS.items()
          if (value := getattr(job, key)) is not None),
        ("Model id", result.model_id), ("Time", f"{result.seconds:.1f} s"),
    ):
        embed.add_field(name=name, value=value, inline=True)
    embed.set_image(url=f"attachment://{image_name}")
    if result.nsfw_flagged:
        embed.set_footer(text="The safety checker blacked out at least one pass.")
    return embed
