"""/place: dream on a patch of r/Place."""

from __future__ import annotations

from typing import TYPE_CHECKING

from discord import Interaction, app_commands
from discord.ext import commands

from pipeline.canvases import CANVAS_KEYS
from pipeline.params import MAX_RECURSIONS, MAX_SEED, MODEL_KEYS, RenderRequest
from placebot.service import PlaceService
from placebot.settings import Settings

if TYPE_CHECKING:
    from placebot.client import PlaceBot

MAX_X = 2968  # the widest canvas (2023, 3000 tiles) minus the 32-tile crop
MAX_Y = 1968


class PlaceCog(commands.Cog, name="Place"):
    def __init__(self, service: PlaceService, settings: Settings):
        self.service = service
        self.settings = settings

    @app_commands.command(name="place")
    @app_commands.describe(
        model="Stable Diffusion version (default: the server's choice)",
        canvas="Which year's final r/Place canvas (default: random)",
        x="Left edge of the 32x32 crop, in tiles (give x and y together)",
        y="Top edge of the 32x32 crop, in tiles (give x and y together)",
        seed="Random seed, to redo a picture exactly (default: random)",
        strength="How much each pass repaints, above 0 up to 1 (default 0.8)",
        recursions=f"Extra passes, each on the last one's output, 0-{MAX_RECURSIONS}",
    )
    @app_commands.choices(
        model=[app_commands.Choice(name=f"SD {key}", value=key) for key in MODEL_KEYS],
        canvas=[app_commands.Choice(name=key, value=key) for key in CANVAS_KEYS],
    )
    async def place(
        self,
        interaction: Interaction,
        model: str | None = None,
        canvas: str | None = None,
        x: app_commands.Range[int, 0, MAX_X] | None = None,
        y: app_commands.Range[int, 0, MAX_Y] | None = None,
        seed: app_commands.Range[int, 0, MAX_SEED] | None = None,
        strength: app_commands.Range[float, 0.0, 1.0] | None = None,
        recursions: app_commands.Range[int, 0, MAX_RECURSIONS] | None = None,
    ) -> None:
        """Dream on a random 32x32 patch of r/Place with Stable Diffusion."""
        settings = self.settings
        request = RenderRequest(
            model=model or settings.default_model,
            canvas=canvas,
            x=x,
            y=y,
            seed=seed,
            strength=settings.strength if strength is None else strength,
            steps=settings.steps,
            recursions=settings.recursions if recursions is None else recursions,
        )
        await self.service.submit(interaction, request)


async def setup(bot: PlaceBot) -> None:
    await bot.add_cog(PlaceCog(bot.service, bot.settings))
