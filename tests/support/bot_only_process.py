"""`python tests/support/bot_only_process.py`: bot.py's main(), reporting what it loaded.

For the test (and the measurement) of the distributed mode's bot process: it points
discord.py at the fake Discord named in FAKE_DISCORD_URL, then runs bot.main() unchanged.
Once connected (on_ready), and again when it starts to close, it prints one JSON line to
stdout: whether torch, diffusers and transformers are imported, and the process's resident
memory (VmRSS of /proc/self/status, in KiB; null where there is no /proc).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script from anywhere

import discord
import yarl
from discord.gateway import DiscordWebSocket

import bot
from placebot.discord_side.client import PlaceBot

HEAVY = ("torch", "diffusers", "transformers")


def resident_kib() -> int | None:
    """VmRSS: the memory this process holds in RAM now (Linux)."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return None


def report(moment: str) -> None:
    facts = {"moment": moment, "rss_kib": resident_kib(),
             "loaded": [name for name in HEAVY if name in sys.modules]}
    print(json.dumps(facts), flush=True)


def report_when_connected_and_closing() -> None:
    on_ready, close = PlaceBot.on_ready, PlaceBot.close

    async def reporting_on_ready(self) -> None:
        await on_ready(self)
        report("connected")

    async def reporting_close(self) -> None:
        report("closing")
        await close(self)

    PlaceBot.on_ready = reporting_on_ready
    PlaceBot.close = reporting_close


if __name__ == "__main__":
    url = os.environ["FAKE_DISCORD_URL"]
    discord.http.Route.BASE = f"{url}/api/v10"
    DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(url.replace("http", "ws", 1) + "/gateway")
    report_when_connected_and_closing()
    sys.exit(bot.main())
