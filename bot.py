"""Start the bot: `python bot.py`. Settings come from the environment and `.env`.

How a process starts and ends (settings, logging, exit codes, the restart for a fresh engine)
is placebot/process.py, shared with the render worker; this file says what the bot adds."""

from __future__ import annotations

import asyncio
import sys

from placebot.process import run_process
from placebot.settings import Settings
from placebot.stopping import install_stop_handlers


async def run(bot, token: str) -> None:
    """Run the bot until it closes; a stop signal starts a graceful shutdown."""
    loop = asyncio.get_running_loop()
    stopping = set()  # holds the shutdown task so it is not garbage-collected mid-way
    uninstall = install_stop_handlers(
        loop, lambda: stopping.add(asyncio.ensure_future(bot.shutdown())))
    from placebot.startup import login_with_retries

    try:
        async with bot:
            # Discord out of reach: tried again until it answers; False: stopped meanwhile
            if await login_with_retries(bot, token):
                await bot.connect()
    finally:
        uninstall()
        if stopping:
            await asyncio.gather(*stopping, return_exceptions=True)


def silence_voice_warnings() -> None:
    """discord.py warns on every start that PyNaCl and davey (voice libraries) are missing.
    This bot never joins a voice channel, so the warnings only alarm its owner."""
    from discord import VoiceClient

    VoiceClient.warn_nacl = False
    VoiceClient.warn_dave = False


def check(settings: Settings) -> None:
    """The journal must be writable before any job: StartupError, before anything starts."""
    from placebot.startup import check_data_dir

    check_data_dir(settings.data_dir)


def prepare(settings: Settings) -> None:
    """Once logging is set up: what the owner should hear of at once, and no voice warnings."""
    from placebot.startup import warn_if_output_dir_unwritable

    warn_if_output_dir_unwritable(settings.output_dir)
    silence_voice_warnings()


async def serve(settings: Settings) -> str | None:
    """The bot, built and run until it closes; why it must restart (a stuck engine), or None."""
    from placebot.discord_side.client import build_bot

    bot = build_bot(settings)
    await run(bot, settings.discord_token)
    return bot.restart_reason


def explain(error: BaseException) -> str | None:
    """What Discord refuses at login is a setting to fix: one line, exit 2."""
    import discord

    if isinstance(error, discord.LoginFailure):
        return "Discord refused the token in DISCORD_TOKEN: check it in the developer portal"
    if isinstance(error, discord.PrivilegedIntentsRequired):
        return str(error)
    return None


def main() -> int:
    # discord.py (and torch, which the bot loads only where it renders itself) take seconds
    # to import, a typo should not: they are imported only once the settings are checked.
    return run_process(serve, check=check, prepare=prepare, explain=explain)


if __name__ == "__main__":
    sys.exit(main())
