"""/dream image:<file> and the "Dream on this" message command: dream on a user's picture.

/dream takes /place's options, less the canvas crop's (canvas, x, y), plus `pixel`: all
derived from pipeline.params, as /place's are. "Dream on this" (right-click a message → Apps)
dreams with the owner's defaults on the message's image attachment or embedded image, and
posts the result in reply to that message. The picture is fetched from Discord only
(placebot/discord_side/attachments.py), after the interaction is answered, within
PLACE_IMAGE_MAX_MB.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import discord
from discord import Interaction, app_commands
from discord.ext import commands

from cogs.place import build_render_command, offered
from pipeline.params import PARAMS, RenderRequest
from placebot import texts
from placebot.discord_side.attachments import (
    AttachedFile,
    AttachmentRefused,
    check_declared,
    download,
    picture_of,
)
from placebot.discord_side.pictures import from_upload
from placebot.discord_side.service import PlaceService, Prepare
from placebot.discord_side.source_store import SourceStore
from placebot.settings import Settings

if TYPE_CHECKING:
    from placebot.discord_side.client import PlaceBot

DESCRIPTION = "Dream on your own picture with Stable Diffusion, pixelated like r/Place."
MENU_NAME = "Dream on this"
IMAGE_HELP = "A PNG, JPEG, WebP or GIF (its first frame)"
# /dream's options: those of every job and of a picture (a canvas crop's belong to /place)
DREAM_OPTIONS = tuple(name for name, spec in PARAMS.items()
                      if spec.slash and spec.scope != "canvas")


class DreamCog(commands.Cog, name="Dream"):
    def __init__(self, service: PlaceService, sources: SourceStore, settings: Settings,
                 tree: app_commands.CommandTree):
        self._service = service
        self._sources = sources
        self._tree = tree
        self._max_mb = settings.image_max_mb
        self._defaults = settings.render_defaults
        options = offered(DREAM_OPTIONS, settings.prompts)
        self.command = build_render_command(
            "dream", DESCRIPTION, self._defaults, self._dream, options,
            leading=(("image", discord.Attachment, IMAGE_HELP),))
        self.menu = app_commands.ContextMenu(name=MENU_NAME, callback=self._dream_on_message)

    async def _dream(self, interaction: Interaction, request: RenderRequest,
                     image: discord.Attachment, defaulted: frozenset[str] = frozenset()) -> None:
        await self._submit(interaction, request, image, defaulted=defaulted)

    async def _dream_on_message(self, interaction: Interaction,
                                message: discord.Message) -> None:
        picture = picture_of(message)
        if picture is None:
            await interaction.response.send_message(texts.NO_PICTURE, ephemeral=True)
            return
        await self._submit(interaction, RenderRequest(**self._defaults), picture,
                           reply_to=message, defaulted=frozenset(PARAMS))

    async def _submit(self, interaction: Interaction, request: RenderRequest,
                      picture: AttachedFile, **options: Any) -> None:
        try:  # what the file claims is checked before anything else happens
            check_declared(picture, self._max_mb)
        except AttachmentRefused as exc:
            await interaction.response.send_message(str(exc), ephemeral=True)
            return
        await self._service.submit(interaction, request, prepare=self._fetching(picture),
                                   **options)

    def _fetching(self, picture: AttachedFile) -> Prepare:
        async def fetch_and_keep(request: RenderRequest) -> RenderRequest:
            data = await download(picture, self._max_mb)
            return await from_upload(self._sources, request, data)

        return fetch_and_keep

    async def cog_load(self) -> None:
        self._tree.add_command(self.command)
        self._tree.add_command(self.menu)

    async def cog_unload(self) -> None:
        self._tree.remove_command(self.command.name)
        self._tree.remove_command(self.menu.name, type=self.menu.type)


async def setup(bot: PlaceBot) -> None:
    await bot.add_cog(DreamCog(bot.service, bot.sources, bot.settings, bot.tree))
