"""Start the bot: `python bot.py`. Settings come from the environment and `.env`."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys

from placebot.settings import SettingsError, load_settings

log = logging.getLogger("placebot")


async def run(bot, token: str) -> None:
    """Run the bot until it closes; SIGINT/SIGTERM start a graceful shutdown."""
    loop = asyncio.get_running_loop()
    stopping = set()  # holds the shutdown task so it is not garbage-collected mid-way
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, lambda: stopping.add(asyncio.ensure_future(bot.shutdown())))
    try:
        async with bot:
            await bot.start(token)
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        if stopping:
            await asyncio.gather(*stopping, return_exceptions=True)


def main() -> int:
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    # The CUDA driver compiles some kernels (cuDNN attention) on a machine's first run, 3-5 s
    # (bench/README.md, T4): keep its cache with the bot's data, on the Docker volume.
    os.environ.setdefault("CUDA_CACHE_PATH", str(settings.data_dir.resolve() / "cuda-cache"))
    # torch.compile's kernels too, so a restart reuses the background compile's work.
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR",
                          str(settings.data_dir.resolve() / "inductor-cache"))
    # Imported after the settings check: torch takes seconds to import, a typo should not.
    import discord

    from pipeline.models import quiet_libraries
    from placebot.client import PlaceBot
    from placebot.logs import setup_logging

    setup_logging(settings.log_level, settings.discord_token)
    quiet_libraries()
    bot = PlaceBot(settings)
    code = 0
    try:
        asyncio.run(run(bot, settings.discord_token))
    except discord.LoginFailure:
        log.error("Discord refused the token in DISCORD_TOKEN: check it in the developer portal")
        code = 2
    except discord.PrivilegedIntentsRequired as exc:
        log.error("%s", exc)
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
