"""/place_status, and the bot's presence showing the model state and the queue length."""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands, tasks

PRESENCE_EVERY_S = 20  # Discord limits presence updates; the queue can change much faster


def status_facts(bot) -> dict:
    store = bot.renderer.store.describe()
    average = bot.worker.timer.average if bot.worker else None
    return {
        "waiting": len(bot.queue) if bot.queue else 0,
        "running": len(bot.queue.running) if bot.queue else 0,
        "loaded": ", ".join(f"SD {key}" for key in store["loaded"]) or "none yet (loads on "
                  "the first /place)",
        "device": store["device"],
        "vram_mode": store["vram_mode"],
        "average": f"{average:.1f} s" if average is not None else "no job yet",
    }


def presence_text(facts: dict) -> str:
    model = facts["loaded"] if not facts["loaded"].startswith("none") else "model not loaded"
    return f"/place · {model} · {facts['waiting']} waiting"


class StatusCog(commands.Cog, name="Status"):
    def __init__(self, bot):
        self.bot = bot
        self._shown: str | None = None
        self.update_presence.start()

    def cog_unload(self) -> None:
        self.update_presence.cancel()

    @app_commands.command(name="place_status")
    async def place_status(self, interaction: discord.Interaction) -> None:
        """Queue length, loaded model, device, VRAM mode and average job time."""
        facts = status_facts(self.bot)
        embed = discord.Embed(title="/place status", colour=discord.Colour.blurple())
        for name, key in (("Waiting", "waiting"), ("Running", "running"),
                          ("Loaded model", "loaded"), ("Device", "device"),
                          ("VRAM mode", "vram_mode"), ("Average job time", "average")):
            embed.add_field(name=name, value=str(facts[key]), inline=True)
        await interaction.response.send_message(embed=embed, ephemeral=True)

    @tasks.loop(seconds=PRESENCE_EVERY_S)
    async def update_presence(self) -> None:
        text = presence_text(status_facts(self.bot))
        if text != self._shown:
            await self.bot.change_presence(activity=discord.CustomActivity(name=text))
            self._shown = text

    @update_presence.before_loop
    async def _wait_until_ready(self) -> None:
        await self.bot.wait_until_ready()


async def setup(bot) -> None:
    await bot.add_cog(StatusCog(bot))
