"""/place_admin: a server's admins choose how the bot behaves in their server, without its owner.

Shown only to members with Manage Server (the command's default_member_permissions), and
checked again on every call: a server can open a command to anyone in its Integrations
settings, and these settings stay its admins'. Each change is checked against the owner's
bounds (placebot/servers/server_rules.py: a server may be stricter than the owner, never looser),
stored durably (placebot/servers/server_settings.py), applies to the next job, is logged with the
server and who made it, and is answered with the setting now in force.

    /place_admin show                 each setting in force here, and where it comes from
    /place_admin channels add|remove|clear   where /place, /dream and "Dream on this" work
    /place_admin cooldown seconds:    between one person's jobs (at least the owner's)
    /place_admin user_limit jobs:     jobs per person waiting or running (at most the owner's)
    /place_admin prompts allowed:     prompts on or off (never on where the owner has them off)
    /place_admin model model:         the model when a command names none
    /place_admin safety where:        the NSFW checker in age-restricted channels too
    /place_admin reset [setting:]     one setting, or all, back to the owner's
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from pipeline.params import MODEL_KEYS, PARAMS
from placebot import texts
from placebot.messages import UserFacingError, user_message
from placebot.servers.server_rules import (
    MAX_COOLDOWN_S,
    MAX_USER_JOBS,
    ChangeRefused,
    check_change,
    describe,
)
from placebot.servers.server_settings import SAFETY_EVERYWHERE, ServerSettingsStore
from placebot.settings import Settings
from placebot.texts import NOT_AN_ADMIN, ONLY_IN_A_SERVER

if TYPE_CHECKING:
    from placebot.discord_side.client import PlaceBot

log = logging.getLogger(__name__)

# what /place_admin reset names each setting
RESET_CHOICES = {"channels": "channels", "cooldown": "cooldown_s", "user_limit": "user_max",
                 "prompts": "prompts", "model": "default_model", "safety": "safety"}
UNLISTABLE = (discord.ChannelType.category,)  # no job is ever asked for in a category
# The channels a command can be used in, so the only ones Discord offers to pick: categories,
# forums and media channels hold none themselves (a forum's posts are threads, listed here).
COMMAND_CHANNEL_TYPES = [
    discord.ChannelType.text, discord.ChannelType.news, discord.ChannelType.voice,
    discord.ChannelType.stage_voice, discord.ChannelType.public_thread,
    discord.ChannelType.private_thread, discord.ChannelType.news_thread,
]


class CommandChannel(app_commands.Transformer):
    """A channel option limited to COMMAND_CHANNEL_TYPES; the value is discord.py's resolved
    channel (an AppCommandChannel, or an AppCommandThread for a thread), passed on as it is."""

    @property
    def type(self) -> discord.AppCommandOptionType:
        return discord.AppCommandOptionType.channel

    @property
    def channel_types(self) -> list[discord.ChannelType]:
        return COMMAND_CHANNEL_TYPES

    async def transform(self, interaction: discord.Interaction, value: Any) -> Any:
        return value


Channel = app_commands.Transform[
    app_commands.AppCommandChannel | app_commands.AppCommandThread, CommandChannel]


def is_admin(interaction: discord.Interaction) -> bool:
    """Manage Server (or Administrator), as Discord reports the member's permissions."""
    permissions = interaction.permissions
    return permissions.manage_guild or permissions.administrator


@app_commands.guild_only()
@app_commands.default_permissions(manage_guild=True)
class AdminCog(commands.GroupCog, group_name="place_admin",
               group_description="This server's settings of the bot (Manage Server)"):
    channels = app_commands.Group(name="channels",
                                  description="Where /place, /dream and Dream on this work")

    def __init__(self, servers: ServerSettingsStore, owner: Settings):
        super().__init__()
        self._servers = servers
        self._owner = owner

    # ----- what every subcommand shares
    async def _as_admin(self, interaction: discord.Interaction,
                        act: Callable[[int], Awaitable[str]]) -> None:
        """Run `act` (given the server's id) for an admin of this server, and answer with
        what it returns, seen only by them; anyone else gets one line saying why not."""
        if interaction.guild_id is None:
            await interaction.response.send_message(ONLY_IN_A_SERVER, ephemeral=True)
            return
        if not is_admin(interaction):
            log.info("refused /place_admin to user %s in server %s: no Manage Server",
                     interaction.user.id, interaction.guild_id)
            await interaction.response.send_message(NOT_AN_ADMIN, ephemeral=True)
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            answer = await act(interaction.guild_id)
        except UserFacingError as exc:  # past the owner's bounds, or the store out of reach
            answer = f"Not changed: {user_message(exc)}."
        await interaction.followup.send(answer, ephemeral=True)

    async def _change(self, interaction: discord.Interaction, name: str, value: Any,
                      stored: Any = ...) -> None:
        """Check `value` against the owner's bounds, store it (or `stored` where that
        differs: None for the owner's), log who did it, and answer with what is in force."""
        async def change(guild_id: int) -> str:
            check_change(self._owner, name, value)
            await self._servers.change(guild_id, name, value if stored is ... else stored)
            if value is None:
                log.info("server %s: %s (%s) reset %s to the owner's", guild_id,
                         interaction.user, interaction.user.id, name)
            else:
                log.info("server %s: %s (%s) set %s to %r", guild_id, interaction.user,
                         interaction.user.id, name, value)
            return await self._in_force(guild_id, name)

        await self._as_admin(interaction, change)

    async def _in_force(self, guild_id: int, name: str) -> str:
        settings = await self._servers.load(guild_id)
        label, text = describe(self._owner, settings)[name]
        return f"{label} is now: {text}."

    # ----- the subcommands
    @app_commands.command(name="show", description="Each setting in force in this server, and "
                          "where it comes from")
    async def show(self, interaction: discord.Interaction) -> None:
        async def show(guild_id: int) -> str:
            settings = await self._servers.load(guild_id)
            lines = [f"**{label}**: {text}" for label, text
                     in describe(self._owner, settings).values()]
            return "The bot in this server:\n" + "\n".join(lines)

        await self._as_admin(interaction, show)

    @channels.command(name="add", description="Let the bot be used in this channel (and its "
                      "threads); none listed: everywhere")
    @app_commands.describe(channel="A channel the bot may be used in")
    async def channels_add(self, interaction: discord.Interaction, channel: Channel) -> None:
        await self._edit_channels(interaction, add=channel)

    @channels.command(name="remove", description="Take this channel off the list")
    @app_commands.describe(channel="A listed channel")
    async def channels_remove(self, interaction: discord.Interaction, channel: Channel) -> None:
        await self._edit_channels(interaction, remove=channel)

    @channels.command(name="clear", description="No list: the bot may be used everywhere")
    async def channels_clear(self, interaction: discord.Interaction) -> None:
        await self._change(interaction, "channels", None)

    async def _edit_channels(self, interaction: discord.Interaction, *,
                             add: Channel | None = None, remove: Channel | None = None) -> None:
        async def edit(guild_id: int) -> str:
            if add is not None and add.type in UNLISTABLE:
                raise ChangeRefused(texts.CHANNEL_IS_A_CATEGORY.format(channel=add.mention))
            listed = (await self._servers.load(guild_id)).channels
            if add is not None and add.id not in listed:
                listed = (*listed, add.id)
            if remove is not None:
                listed = tuple(c for c in listed if c != remove.id)
            check_change(self._owner, "channels", listed)
            await self._servers.change(guild_id, "channels", listed or None)
            verb, channel = ("added", add) if add is not None else ("removed", remove)
            log.info("server %s: %s (%s) %s channel %s: the list is now %s", guild_id,
                     interaction.user, interaction.user.id, verb,
                     channel.id if channel else None, list(listed))
            return await self._in_force(guild_id, "channels")

        await self._as_admin(interaction, edit)

    @app_commands.command(name="cooldown", description="Seconds between one person's jobs "
                          "(at least the owner's)")
    @app_commands.describe(seconds="Seconds a person waits between accepted jobs")
    async def cooldown(self, interaction: discord.Interaction,
                       seconds: app_commands.Range[int, 0, int(MAX_COOLDOWN_S)]) -> None:
        await self._change(interaction, "cooldown_s", float(seconds))

    @app_commands.command(name="user_limit", description="Jobs one person may have waiting "
                          "or running (at most the owner's)")
    @app_commands.describe(jobs="Most jobs per person")
    async def user_limit(self, interaction: discord.Interaction,
                         jobs: app_commands.Range[int, 1, MAX_USER_JOBS]) -> None:
        await self._change(interaction, "user_max", jobs)

    @app_commands.command(name="prompts", description="Whether people may give a prompt here")
    @app_commands.describe(allowed="False: /place and /dream take no prompt in this server")
    async def prompts(self, interaction: discord.Interaction, allowed: bool) -> None:
        # allowed: the owner's (on, where the owner allows them); refused where they are off
        await self._change(interaction, "prompts", allowed, stored=None if allowed else False)

    @app_commands.command(name="model", description="The model when a command names none")
    @app_commands.describe(model="Stable Diffusion version")
    @app_commands.choices(model=[
        app_commands.Choice(name=PARAMS["model"].choice_name.format(key), value=key)
        for key in MODEL_KEYS])
    async def model(self, interaction: discord.Interaction, model: str) -> None:
        await self._change(interaction, "default_model", model)

    @app_commands.command(name="safety", description="Run the NSFW checker in age-restricted "
                          "channels too")
    @app_commands.describe(where="Where the checker runs in this server")
    @app_commands.choices(where=[
        app_commands.Choice(name="Every channel, age-restricted ones too",
                            value=SAFETY_EVERYWHERE),
        app_commands.Choice(name="Every channel but age-restricted ones (the default)",
                            value="default"),
    ])
    async def safety(self, interaction: discord.Interaction, where: str) -> None:
        value = SAFETY_EVERYWHERE if where == SAFETY_EVERYWHERE else None
        await self._change(interaction, "safety", value)

    @app_commands.command(name="reset", description="One setting, or all, back to the owner's")
    @app_commands.describe(setting="Which one (default: all)")
    @app_commands.choices(setting=[app_commands.Choice(name=name, value=name)
                                   for name in RESET_CHOICES])
    async def reset(self, interaction: discord.Interaction, setting: str | None = None) -> None:
        if setting is not None:
            await self._change(interaction, RESET_CHOICES[setting], None)
            return

        async def reset_all(guild_id: int) -> str:
            await self._servers.clear(guild_id)
            log.info("server %s: %s (%s) reset every setting to the owner's", guild_id,
                     interaction.user, interaction.user.id)
            return "Every setting is the owner's again."

        await self._as_admin(interaction, reset_all)


async def setup(bot: PlaceBot) -> None:
    await bot.add_cog(AdminCog(bot.servers, bot.settings))
