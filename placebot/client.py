"""The bot: wires settings, the image engine, the queue, the worker and the cogs together."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging

import discord
from discord.ext import commands

from pipeline.engine import Renderer
from pipeline.models import ModelStore
from placebot import health
from placebot.delivery import DiscordReporter
from placebot.jobqueue import JobQueue
from placebot.journal import Journal
from placebot.messages import user_message
from placebot.service import PlaceService
from placebot.settings import Settings
from placebot.views import PlaceButton
from placebot.worker import Worker

log = logging.getLogger(__name__)

EXTENSIONS = ("cogs.place", "cogs.buttons", "cogs.status")
SHUTDOWN_GRACE_S = 6.0  # Docker gives 10 s; the rest is for closing the connection


class PlaceBot(commands.Bot):
    def __init__(self, settings: Settings, *, renderer: Renderer | None = None, **options):
        intents = discord.Intents.none()
        intents.guilds = True
        super().__init__(command_prefix=commands.when_mentioned, intents=intents,
                         help_command=None, **options)
        self.settings = settings
        self.renderer = renderer or Renderer(ModelStore(
            settings.model_ids, device=settings.device, vram_mode=settings.vram_mode,
            safety_checker=settings.safety_checker, compile=settings.compile,
        ))
        self.journal = Journal(settings.data_dir / "jobs.sqlite3")
        self.queue: JobQueue | None = None
        self.worker: Worker | None = None
        self.reporter = DiscordReporter(self)
        self.service = PlaceService(self)
        self._stopping = False
        self.shutdown_grace_s = SHUTDOWN_GRACE_S
        # Set when the render engine is stuck: bot.py re-executes the process once closed.
        self.restart_reason: str | None = None
        self._restarting: asyncio.Task | None = None

    async def setup_hook(self) -> None:
        self.queue = JobQueue(self.settings.queue_max, self.settings.user_max)
        self.worker = Worker(self.queue, self.renderer, self.reporter,
                             max_batch=self.settings.max_batch,
                             job_timeout_s=self.settings.job_timeout_s, journal=self.journal,
                             on_stuck=self.restart_for_fresh_engine)
        for extension in EXTENSIONS:
            try:  # one broken cog must not keep the others (and the bot) down
                await self.load_extension(extension)
            except Exception:
                log.exception("could not load extension %s", extension)
        self.add_dynamic_items(PlaceButton)
        self.tree.on_error = self._on_app_command_error
        await self.sync_commands_if_changed()
        await self.service.recover()
        self.worker.start()
        self._heartbeat = asyncio.create_task(self._beat_while_connected(), name="heartbeat")

    async def _beat_while_connected(self) -> None:
        """Touch the health file while the gateway connection is up (Docker HEALTHCHECK)."""
        while not self.is_closed():
            if self.ws is not None and self.ws.open and self.is_ready():
                await asyncio.to_thread(health.beat, self.settings.data_dir)
            await asyncio.sleep(health.EVERY_S)

    async def _on_app_command_error(self, interaction, error) -> None:
        await self.report_unexpected(interaction, getattr(error, "original", error))

    async def sync_commands_if_changed(self) -> bool:
        """Sync /place to DISCORD_GUILD_ID (instant) or globally, only when the commands changed.

        Discord rate-limits syncs, and global ones take a while to spread: the last synced
        payload's hash is kept in the data folder and compared on every start.
        """
        guild = discord.Object(self.settings.discord_guild_id) if self.settings.discord_guild_id \
            else None
        if guild is not None:
            self.tree.copy_global_to(guild=guild)
        payload = [command.to_dict(self.tree) for command in self.tree.get_commands(guild=guild)]
        target = f"guild {guild.id}" if guild else "global"
        digest = hashlib.sha256(json.dumps([target, payload], sort_keys=True).encode()).hexdigest()
        marker = self.settings.data_dir / "commands.sha256"
        if marker.is_file() and marker.read_text().strip() == digest:
            log.info("slash commands unchanged (%s); not syncing", target)
            return False
        synced = await self.tree.sync(guild=guild)
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(digest)
        log.info("synced %d slash command(s) to %s", len(synced), target)
        return True

    async def report_unexpected(self, interaction: discord.Interaction, error: Exception) -> None:
        """The one place an unexpected error in a command or button meets the user."""
        log.error("error handling interaction %s", interaction.id, exc_info=error)
        text = f"Sorry: {user_message(error)}."
        try:
            if interaction.response.is_done():
                await interaction.followup.send(text, ephemeral=True)
            else:
                await interaction.response.send_message(text, ephemeral=True)
        except discord.HTTPException:
            log.warning("could not tell the user of interaction %s", interaction.id)

    def restart_for_fresh_engine(self, error: Exception) -> None:
        """The render engine is stuck (placebot.watchdog): close gracefully, then bot.py runs
        the process again; the journal brings back the jobs still waiting."""
        if self.restart_reason is None:
            self.restart_reason = str(error)
            self.worker.stop_taking_jobs()
            self._restarting = asyncio.create_task(self.close(), name="restart")

    async def on_ready(self) -> None:
        log.info("connected as %s (id %s) to %d server(s)", self.user,
                 self.user.id if self.user else "?", len(self.guilds))

    async def shutdown(self) -> None:
        """Graceful stop (SIGINT/SIGTERM); the same as close()."""
        await self.close()

    async def close(self) -> None:
        """Stop gracefully: no new jobs, waiting users told their job is kept, the running
        job finished (or stopped within a step after the grace period and kept), and only then
        the connection closed. Every path out of the bot comes through here."""
        if not self._stopping:
            self._stopping = True
            log.info("shutting down: no new jobs; waiting jobs are kept for the restart")
            if self.worker is not None:
                try:
                    await self.service.shutdown(self.shutdown_grace_s)
                except Exception:
                    log.exception("error during graceful shutdown")
        heartbeat = getattr(self, "_heartbeat", None)
        if heartbeat is not None:
            heartbeat.cancel()
        await super().close()
        self.journal.close()


class ShardedPlaceBot(PlaceBot, commands.AutoShardedBot):
    """The same bot over several gateway connections (PLACE_SHARDS): Discord requires shards
    past 2,500 servers. Everything else is PlaceBot's."""


def build_bot(settings: Settings, **options) -> PlaceBot:
    """PlaceBot, or ShardedPlaceBot when PLACE_SHARDS is set ("auto": Discord's count)."""
    if settings.shards is None:
        return PlaceBot(settings, **options)
    count = None if settings.shards == "auto" else int(settings.shards)
    return ShardedPlaceBot(settings, shard_count=count, **options)
