"""The bot, and the one place where the bot process's parts are built and wired together.

PlaceBot.__init__ (with _backend) builds the whole object graph, down to the queue and the
worker: settings → Discord transport and reporter → job backend (renderer, journal, queue,
worker; or a Redis job store), source store and server settings (all in this process's data
folder, or all in Redis) → service. Cogs and buttons get what they use from there, typed;
nothing is None until a later hook. setup_hook only starts things (cogs, command sync,
recovered jobs, the worker). A render worker process builds its own in
placebot/distributed/render_worker.py; the Renderer is built the same way in both
(placebot.process).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import discord
from discord.ext import commands

from pipeline.atlas import Atlas
from placebot import health, texts
from placebot.discord_side.command_tree import PlaceCommandTree
from placebot.discord_side.discord_reporter import DiscordReporter
from placebot.discord_side.service import PlaceService
from placebot.discord_side.source_store import FolderSourceStore, SourceStore
from placebot.discord_side.transport import DiscordTransport
from placebot.discord_side.views import BUTTONS, refuse_unknown_button
from placebot.jobs import journal
from placebot.jobs.backend import JobBackend
from placebot.jobs.jobqueue import JobQueue
from placebot.jobs.journal import Journal
from placebot.jobs.local_backend import LocalBackend
from placebot.jobs.outbox import Outbox
from placebot.jobs.worker import Worker
from placebot.messages import user_message
from placebot.process import StartupError, build_renderer
from placebot.servers.server_settings import ServerSettingsStore, SqliteServerSettings
from placebot.settings import Settings
from placebot.startup import COMMAND_SYNC_FILE
from placebot.stopping import STOP_GRACE_S

if TYPE_CHECKING:
    from pipeline.engine import Renderer

log = logging.getLogger(__name__)

MISSING_ACCESS = 50001  # Discord's code for a guild the application is not in

EXTENSIONS = ("cogs.place", "cogs.dream", "cogs.status", "cogs.admin")


class PlaceBot(commands.Bot):
    def __init__(self, settings: Settings, *, renderer: Renderer | None = None, **options):
        intents = discord.Intents.none()
        intents.guilds = True
        # Pings nobody unless a message says otherwise
        # (placebot.discord_side.transport.requester_only):
        # users' text (prompts, file names) must never ping anyone.
        options.setdefault("allowed_mentions", discord.AllowedMentions.none())
        super().__init__(command_prefix=commands.when_mentioned, intents=intents,
                         help_command=None, tree_cls=PlaceCommandTree, **options)
        self.settings = settings
        # The r/Place Atlas (PLACE_ATLAS_DIR): read once, in a thread, when the bot starts
        # (or on first use, if sooner). This process names results and draws artwork crops;
        # render workers never need it.
        self.atlas = Atlas(settings.atlas_dir)
        # The distributed mode needs no outbox: a result waits in Redis until it is delivered.
        outbox = None if settings.redis_url else Outbox(settings.data_dir / "outbox")
        self.reporter = DiscordReporter(DiscordTransport(self), output_dir=settings.output_dir,
                                        outbox=outbox, atlas=self.atlas)
        self.jobs: JobBackend
        # pictures and prompts that results' buttons name by hash (Re-roll, New crop)
        self.sources: SourceStore
        # each server's own settings (/place_admin), within the owner's
        self.servers: ServerSettingsStore
        self.jobs, self.sources, self.servers = self._backend(settings, renderer)
        self.service = PlaceService(self.jobs, self.sources, settings, self.servers,
                                    deliveries=self.reporter.deliveries, atlas=self.atlas)
        self._stopping = False
        self._closed = asyncio.Event()  # set once close() is done: ends connect()
        self._heartbeat: asyncio.Task | None = None
        self._atlas_loading: asyncio.Task | None = None
        self.shutdown_grace_s = STOP_GRACE_S
        # Set when the render engine is stuck: bot.py re-executes the process once closed.
        self.restart_reason: str | None = None
        self._restarting: asyncio.Task | None = None

    def _backend(self, settings: Settings, renderer: Renderer | None
                 ) -> tuple[JobBackend, SourceStore, ServerSettingsStore]:
        """PLACE_REDIS_URL: jobs in Redis, rendered by worker processes, and the sources and
        server settings in the same Redis (any bot process may get a result's button click,
        or any server's next job); else everything in this process (a queue, a SQLite journal
        and one worker on this machine's device, the sources and server settings in the data
        folder)."""
        if settings.redis_url is not None:
            from placebot.distributed.backend import RedisBackend
            from placebot.distributed.connection import connect
            from placebot.distributed.server_settings import RedisServerSettings
            from placebot.distributed.sources import RedisSourceStore
            from placebot.distributed.store import RedisJobStore

            client = connect(settings.redis_url)  # one client, one pool, for all three
            backend = RedisBackend(RedisJobStore(client), self.reporter,
                                   user_max=settings.user_max, queue_max=settings.queue_max,
                                   user_cooldown_s=settings.user_cooldown_s)
            return backend, RedisSourceStore(client), RedisServerSettings(client)
        # Only this mode renders here, so only it loads the engine (and torch): the
        # distributed mode's bot process stays free of them.
        renderer = renderer or build_renderer(settings)
        jobs_journal = Journal(settings.data_dir / journal.FILENAME)
        queue = JobQueue(settings.queue_max, settings.user_max)
        worker = Worker(queue, renderer, self.reporter, max_batch=settings.max_batch,
                        job_timeout_s=settings.job_timeout_s, journal=jobs_journal,
                        on_stuck=self.restart_for_fresh_engine)
        return (LocalBackend(queue, worker, jobs_journal, self.reporter,
                             user_cooldown_s=settings.user_cooldown_s),
                FolderSourceStore(settings.data_dir / "sources"),
                SqliteServerSettings(settings.data_dir / "servers.sqlite3"))

    async def setup_hook(self) -> None:
        # Runs again when a login is retried (Discord went out of reach while the commands
        # were synced): a cog loaded by the failed try is not loaded twice.
        # Buttons first: they need no cog, so they work even if a cog fails to load.
        self.add_dynamic_items(*BUTTONS)
        for extension in EXTENSIONS:
            if extension in self.extensions:
                continue
            try:  # one broken cog must not keep the others (and the bot) down
                await self.load_extension(extension)
            except Exception:
                log.exception("could not load extension %s", extension)
        self.tree.error(self._on_app_command_error)
        await self.sync_commands_if_changed()
        await self.jobs.start()
        self._atlas_loading = asyncio.create_task(self._load_atlas(), name="atlas")
        self._heartbeat = asyncio.create_task(self._beat_while_connected(), name="heartbeat")

    @property
    def stopping(self) -> bool:
        """close() has begun: no command runs (placebot.discord_side.command_tree), no job is
        taken."""
        return self._stopping

    async def connect(self, *, reconnect: bool = True) -> None:
        """discord.py's connect(), ended as soon as close() is done.

        Between two reconnects discord.py sleeps its backoff (minutes, in a long outage) and
        only then sees that the client was closed: a stop signal during an outage would wait
        for it, past Docker's 10 s. Whatever discord.py waits on is cancelled instead."""
        connecting = asyncio.ensure_future(super().connect(reconnect=reconnect))
        closed = asyncio.ensure_future(self._closed.wait())
        try:
            await asyncio.wait([connecting, closed], return_when=asyncio.FIRST_COMPLETED)
        finally:
            closed.cancel()
            if not connecting.done():
                connecting.cancel()
                await asyncio.wait([connecting])
        if not connecting.cancelled():
            connecting.result()  # what ended the connection (a refused intent...) is raised

    async def _load_atlas(self) -> None:
        """Read the r/Place Atlas in a thread once the bot runs (a second or two of JSON), so
        that neither the first autocomplete nor the first result waits for it; without its
        files, one log line says so. An unexpected failure is logged with its traceback."""
        try:
            await asyncio.to_thread(self.atlas.load_all)
        except Exception:
            log.exception("could not load the r/Place Atlas from %s", self.atlas.folder)

    async def on_interaction(self, interaction: discord.Interaction) -> None:
        await refuse_unknown_button(interaction)

    async def _beat_while_connected(self) -> None:
        """Touch the health file while the gateway connection is up (Docker HEALTHCHECK).

        A failed write (full disk, say) is logged and tried again at the next beat: a
        heartbeat that stopped for good would mark a serving bot unhealthy."""
        failing = False
        while not self.is_closed():
            if self.ws is not None and self.ws.open and self.is_ready():
                try:
                    await asyncio.to_thread(health.beat, self.settings.data_dir)
                except OSError as exc:
                    if not failing:
                        log.warning("could not write the heartbeat file %s (%s); retrying "
                                    "every %s s", health.heartbeat_path(self.settings.data_dir),
                                    exc, health.EVERY_S)
                    failing = True
                else:
                    if failing:
                        log.info("heartbeat file written again")
                    failing = False
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
        # The application too: another bot token with the same data folder must sync anew.
        synced_as = [self.application_id, target, payload]
        digest = hashlib.sha256(json.dumps(synced_as, sort_keys=True).encode()).hexdigest()
        marker = self.settings.data_dir / COMMAND_SYNC_FILE
        last_digest, last_guild = await asyncio.to_thread(_read_marker, marker)
        if last_digest == digest:
            log.info("slash commands unchanged (%s); not syncing", target)
            return False
        try:
            synced = await self.tree.sync(guild=guild)
        except discord.Forbidden as exc:
            if guild is None or exc.code != MISSING_ACCESS:
                raise
            raise StartupError("DISCORD_GUILD_ID", f"is {guild.id}, a server this bot is not "
                               "in: invite it there (see the README), or correct the id "
                               "(empty: commands everywhere)") from None
        if last_guild is not None and (guild is None or guild.id != last_guild):
            await self._clear_guild_commands(last_guild)
        await asyncio.to_thread(_write_marker, marker, digest, guild.id if guild else None)
        log.info("synced %d slash command(s) to %s", len(synced), target)
        return True

    async def _clear_guild_commands(self, guild_id: int) -> None:
        """The commands copied to the server of an earlier DISCORD_GUILD_ID (the README's way
        to try the bot) would stay there beside the global ones, each listed twice: remove
        them. A server the bot has left is only logged."""
        server = discord.Object(guild_id)
        self.tree.clear_commands(guild=server)
        try:
            await self.tree.sync(guild=server)
            log.info("removed the commands synced earlier to guild %s", guild_id)
        except discord.HTTPException as exc:
            log.warning("could not remove the commands synced earlier to guild %s (%s)",
                        guild_id, exc)

    async def report_unexpected(self, interaction: discord.Interaction, error: Exception) -> None:
        """The one place an unexpected error in a command or button meets the user."""
        log.error("error handling interaction %s", interaction.id, exc_info=error)
        text = texts.SORRY.format(message=user_message(error))
        try:
            if interaction.response.is_done():
                await interaction.followup.send(text, ephemeral=True)
            else:
                await interaction.response.send_message(text, ephemeral=True)
        except discord.HTTPException:
            log.warning("could not tell the user of interaction %s", interaction.id)

    def restart_for_fresh_engine(self, error: Exception) -> None:
        """The render engine is stuck (placebot.jobs.watchdog): close gracefully, then bot.py runs
        the process again; the journal brings back the jobs still waiting."""
        if self.restart_reason is None:
            self.restart_reason = str(error)
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
            try:
                await self.jobs.shutdown(self.shutdown_grace_s)
            except Exception:
                log.exception("error during graceful shutdown")
        if self._heartbeat is not None:
            self._heartbeat.cancel()
        await super().close()
        self._closed.set()


class ShardedPlaceBot(PlaceBot, commands.AutoShardedBot):
    """The same bot over several gateway connections (PLACE_SHARDS): Discord requires shards
    past 2,500 servers. Everything else is PlaceBot's."""


def build_bot(settings: Settings, **options) -> PlaceBot:
    """PlaceBot, or ShardedPlaceBot when PLACE_SHARDS is set ("auto": Discord's count), on
    the shards of PLACE_SHARD_IDS only when that is set (one bot process of several)."""
    if settings.shards is None:
        return PlaceBot(settings, **options)
    count = None if settings.shards == "auto" else int(settings.shards)
    if settings.shard_ids is not None:
        options["shard_ids"] = list(settings.shard_ids)
    return ShardedPlaceBot(settings, shard_count=count, **options)


def _read_marker(marker: Path) -> tuple[str | None, int | None]:
    """The digest of the last command sync and its server (None: global); (None, None)
    before the first. The server is on a second line (absent in older files)."""
    if not marker.is_file():
        return None, None
    lines = marker.read_text().split()
    guild = lines[1] if len(lines) > 1 and lines[1].isdigit() else None
    return (lines[0] if lines else None), (int(guild) if guild else None)


def _write_marker(marker: Path, digest: str, guild_id: int | None) -> None:
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(digest + (f"\n{guild_id}" if guild_id is not None else "") + "\n")
