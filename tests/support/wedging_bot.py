"""`python tests/support/wedging_bot.py`: bot.py's main() whose first render never returns.

For the test of the real restart path: it points discord.py at the fake Discord named in
FAKE_DISCORD_URL and, while the file WEDGE_MARKER does not exist, shortens the render
watchdog's grace to WEDGE_GRACE_S and makes the first render write its process id there and
then hang like a wedged CUDA call (it never polls the stop flag). After the bot re-executes
itself the marker exists, so renders run normally, with the default timeout and grace.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script from anywhere

import discord
import yarl
from discord.gateway import DiscordWebSocket

import bot
from pipeline.engine import Renderer
from placebot.jobs import watchdog


def wedge_first_render(marker: Path) -> None:
    if marker.exists():  # after the restart: the defaults, so a slow machine renders in time
        os.environ.pop("PLACE_JOB_TIMEOUT", None)
        return
    watchdog.STUCK_GRACE_S = float(os.environ["WEDGE_GRACE_S"])

    def render(self, jobs, **kwargs):
        marker.write_text(str(os.getpid()))
        threading.Event().wait()  # forever: only the process's end frees this thread

    Renderer.render = render


if __name__ == "__main__":
    url = os.environ["FAKE_DISCORD_URL"]
    discord.http.Route.BASE = f"{url}/api/v10"
    DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(url.replace("http", "ws", 1) + "/gateway")
    wedge_first_render(Path(os.environ["WEDGE_MARKER"]))
    sys.exit(bot.main())
