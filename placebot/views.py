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
from pipeline.params import RenderJob, RenderRequest
from placebot.jobqueue import Job

PREFIX = "place"


@dataclass(frozen=True)
class ButtonAction:
    action: str  # reroll | newcrop | delete | cancel
    owner_id: int | None = None
    job_id: str | None = None
    request: RenderRequest | None = None  # reroll/newcrop: what to render (seed left open)


def reroll_id(job: RenderJob) -> str:
    c = job.crop
    return (f"{PREFIX}:reroll:{job.model}:{c.canvas}:{c.x}:{c.y}:{job.strength:g}:"
            f"{job.steps}:{job.passes}")


def newcrop_id(job: RenderJob) -> str:
    return f"{PREFIX}:newcrop:{job.model}:{job.strength:g}:{job.steps}:{job.passes}"


def delete_id(owner_id: int) -> str:
    return f"{PREFIX}:delete:{owner_id}"


def cancel_id(job_id: str, owner_id: int) -> str:
    return f"{PREFIX}:cancel:{job_id}:{owner_id}"


_PATTERNS = {
    "reroll": re.compile(r"(?P<model>[\d.]+):(?P<canvas>\d{4}):(?P<x>\d+):(?P<y>\d+):"
                         r"(?P<strength>[\d.]+):(?P<steps>\d+):(?P<passes>\d+)"),
    "newcrop": re.compile(r"(?P<model>[\d.]+):(?P<strength>[\d.]+):(?P<steps>\d+):"
                          r"(?P<passes>\d+)"),
    "delete": re.compile(r"(?P<owner>\d{1,20})"),
    "cancel": re.compile(r"(?P<job>[0-9a-f]{12}):(?P<owner>\d{1,20})"),
}


def parse_custom_id(custom_id: str) -> ButtonAction:
    """ValueError unless custom_id is one this bot makes (values are validated later)."""
    prefix, _, rest = custom_id.partition(":")
    action, _, args = rest.partition(":")
    pattern = _PATTERNS.get(action)
    match = pattern.fullmatch(args) if pattern and prefix == PREFIX else None
    if match is None:
        raise ValueError(f"unknown button {custom_id[:60]!r}")
    parts = match.groupdict()
    if action in ("delete", "cancel"):
        return ButtonAction(action, owner_id=int(parts["owner"]), job_id=parts.get("job"))
    crop = {"canvas": parts["canvas"], "x": int(parts["x"]), "y": int(parts["y"])} \
        if action == "reroll" else {}
    request = RenderRequest(model=parts["model"], strength=float(parts["strength"]),
                            steps=int(parts["steps"]), recursions=int(parts["passes"]) - 1,
                            **crop)
    return ButtonAction(action, request=request)


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
        ("Canvas", crop.canvas), ("x", crop.x), ("y", crop.y), ("Model", result.model_id),
        ("Seed", job.seed), ("Strength", f"{job.strength:g}"), ("Steps", job.steps),
        ("Passes", job.passes), ("Time", f"{result.seconds:.1f} s"),
    ):
        embed.add_field(name=name, value=str(value), inline=True)
    embed.set_image(url=f"attachment://{image_name}")
    if result.nsfw_flagged:
        embed.set_footer(text="The safety checker blacked out at least one pass.")
    return embed
