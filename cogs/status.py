"""/place_status, and the bot's presence showing the model state and the queue length."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands, tasks

from placebot.discord_side.embeds import Field, build_embed
from placebot.jobs.backend import JobBackend, QueueStatus
from placebot.jobs.jobqueue import QueueRefusal
from placebot.messages import user_message

if TYPE_CHECKING:
    from placebot.discord_side.client import PlaceBot

PRESENCE_EVERY_S = 20  # Discord limits presence updates; the queue can change much faster
MAX_WORKERS_SHOWN = 18  # an embed holds 25 fields; 6 are the queue's own


def status_facts(status: QueueStatus) -> dict[str, str]:
    average = status.average_job_s
    return {
        "waiting": str(status.waiting),
        "running": str(status.running),
        "loaded": ", ".join(f"SD {key}" for key in status.loaded_models)
                  or "none yet (loads on the first /place)",
        "device": status.device,
        "vram_mode": status.vram_mode,
        "average": f"{average:.1f} s" if average is not None else "no job yet",
    }


def worker_line(facts: dict, now: float) -> tuple[str, str]:
    """One render worker as /place_status lists it: a title, and its facts."""
    loaded = ", ".join(f"SD {key}" for key in facts.get("loaded", [])) or "no model loaded"
    beat = max(0.0, now - float(facts.get("beat", now)))
    # its cause is for the owner (in that worker's log), as a failed load's always is
    failing = ", ".join(f"SD {key}" for key in facts.get("cannot_load", []))
    unable = f" · cannot load {failing} for now (its log says why)" if failing else ""
    return (f"Worker {facts.get('host', '?')}",
            f"{facts.get('gpu', '?')} · VRAM {facts.get('vram_mode', '?')} · {loaded} · "
            f"{facts.get('jobs_done', 0)} jobs done · last heartbeat {beat:.0f} s ago{unable}")


def presence_text(status: QueueStatus) -> str:
    model = ", ".join(f"SD {key}" for key in status.loaded_models) or "model not loaded"
    return f"/place · {model} · {status.waiting} waiting"


class StatusCog(commands.Cog, name="Status"):
    def __init__(self, jobs: JobBackend, client: discord.Client,
                 owner_notices: Callable[[], list[str]] = list):
        self.jobs = jobs
        self.client = client  # for the presence
        self.owner_notices = owner_notices  # problems the owner should fix, one line each
        self._shown: str | None = None
        self.update_presence.start()

    async def cog_unload(self) -> None:
        self.update_presence.cancel()

    @app_commands.command(name="place_status")
    async def place_status(self, interaction: discord.Interaction) -> None:
        """Queue length, loaded model, device, VRAM mode and average job time."""
        try:
            status = await self.jobs.status()
        except QueueRefusal as exc:  # the queue is out of reach (the distributed mode)
            await interaction.response.send_message(user_message(exc), ephemeral=True)
            return
        facts = status_facts(status)
        fields = [Field(name, facts[key]) for name, key in (
            ("Waiting", "waiting"), ("Running", "running"), ("Loaded model", "loaded"),
            ("Device", "device"), ("VRAM mode", "vram_mode"), ("Average job time", "average"))]
        now = time.time()
        for worker in status.workers[:MAX_WORKERS_SHOWN]:
            name, value = worker_line(worker, now)
            fields.append(Field(name, value, inline=False))
        notices = self.owner_notices()
        if notices:
            fields.append(Field("Needs the owner", "\n".join(notices), inline=False))
        embed = build_embed(title="/place status", colour=discord.Colour.blurple(),
                            fields=fields)
        await interaction.response.send_message(embed=embed, ephemeral=True)

    @tasks.loop(seconds=PRESENCE_EVERY_S)
    async def update_presence(self) -> None:
        try:
            text = presence_text(await self.jobs.status())
        except QueueRefusal:  # out of reach for now: the presence stays as it was
            return
        if text != self._shown:
            await self.client.change_presence(activity=discord.CustomActivity(name=text))
            self._shown = text

    @update_presence.before_loop
    async def _wait_until_ready(self) -> None:
        await self.client.wait_until_ready()


async def setup(bot: PlaceBot) -> None:
    await bot.add_cog(StatusCog(bot.jobs, bot, bot.reporter.owner_notices))
