"""Start the bot: `python bot.py`. Settings come from the environment and `.env`."""

from __future__ import annotations

import asyncio
import logging
import os
import sys

from pipeline.config import keep_kernel_caches, quiet_libraries
from placebot.settings import SettingsError, load_process_settings, warn_of_ignored_variables
from placebot.stopping import install_stop_handlers

log = logging.getLogger("placebot")


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


def main() -> int:
    try:
        settings = load_process_settings()
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    from placebot.startup import StartupError, check_data_dir, warn_if_output_dir_unwritable

    try:
        check_data_dir(settings.data_dir)  # the journal must be writable before any job
    except StartupError as exc:
        print(f"cannot start: {exc}", file=sys.stderr)
        return 2
    if settings.redis_url is not None:  # a refused login is a setting, not an outage
        from placebot.redisqueue.connection import login_problem

        problem = login_problem(settings.redis_url)
        if problem is not None:
            print(f"configuration error: {problem}", file=sys.stderr)
            return 2
    keep_kernel_caches(settings.data_dir)
    # Imported after the settings check: discord.py (and torch, which the bot loads only where
    # it renders itself) take seconds to import, a typo should not.
    import discord

    from placebot.client import build_bot
    from placebot.logs import setup_logging

    setup_logging(settings.log_level, settings.discord_token)
    warn_of_ignored_variables(settings)
    quiet_libraries()
    warn_if_output_dir_unwritable(settings.output_dir)
    silence_voice_warnings()
    bot = build_bot(settings)
    code = 0
    try:
        asyncio.run(run(bot, settings.discord_token))
    except discord.LoginFailure:
        log.error("Discord refused the token in DISCORD_TOKEN: check it in the developer portal")
        code = 2
    except discord.PrivilegedIntentsRequired as exc:
        log.error("%s", exc)
        code = 2
    except StartupError as exc:
        log.error("cannot start: %s", exc)
        code = 2
    # The journal is closed by now. A render stuck in a model download, or a background
    # compile, must not hold the exit past Docker's 10 seconds: leave without joining them.
    if bot.restart_reason is not None:  # a stuck render engine: start afresh, same process
        from placebot.restart import reexec

        reexec(bot.restart_reason)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
