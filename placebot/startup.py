"""What must hold before the bot serves, and the one-line errors an owner can act on.

A start-up failure the owner must fix (a data folder that cannot be written, a server the bot
is not in) is a StartupError: the process bootstrap (placebot/process.py) prints it as one line
and exits with code 2, as it does for a malformed setting, instead of a traceback and a
restart loop. Discord out of reach is not one: nothing is wrong with the bot's settings, so it
waits for Discord (login_with_retries).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
from pathlib import Path

import aiohttp
import discord

from placebot import health
from placebot.jobs import journal
from placebot.process import StartupError

__all__ = ["StartupError", "check_data_dir", "login_with_retries",
           "warn_if_output_dir_unwritable"]

log = logging.getLogger(__name__)

# Discord out of reach at start (a machine that just booted, an outage): tried again 5, 10,
# 20, 40, 80 s later, then every CONNECT_MAX_RETRY_S, for as long as it takes.
CONNECT_FIRST_RETRY_S = 5.0
CONNECT_MAX_RETRY_S = 120.0
STOP_CHECK_S = 0.2  # how soon a stop signal ends the wait between two tries
_PROBE = ".write-check"
# The files the bot keeps in PLACE_DATA_DIR: a folder in the place of one is a setting to fix.
COMMAND_SYNC_FILE = "commands.sha256"  # the last command sync (placebot.discord_side.client)
_DATA_FILES = {journal.FILENAME: "its job journal", health.FILENAME: "its health heartbeat",
               COMMAND_SYNC_FILE: "its record of the last command sync"}


def check_data_dir(data_dir: Path) -> None:
    """Create PLACE_DATA_DIR and write (and sync) a file in it, or raise StartupError.

    The journal must be writable before a job is accepted: a folder that is read-only or full
    is reported now, in one line, rather than as a traceback from deep inside SQLite."""
    reason = _write_problem(Path(data_dir))
    if reason is not None:
        raise StartupError("PLACE_DATA_DIR", f"{data_dir} cannot be written ({reason}): give "
                           "the bot a folder it can write to, with free space")
    for name, what in _DATA_FILES.items():
        if (Path(data_dir) / name).is_dir():
            raise StartupError("PLACE_DATA_DIR", f"{Path(data_dir) / name} is a folder where "
                               f"the bot keeps a file ({what}): move that folder away")


def warn_if_output_dir_unwritable(output_dir: Path | None) -> None:
    """PLACE_OUTPUT_DIR only gets the owner's copies, so a folder that cannot be written does
    not stop the bot (users still get their results): the owner hears of it now, once, rather
    than at the first result."""
    if output_dir is None:
        return
    reason = _write_problem(Path(output_dir))
    if reason is not None:
        log.warning("PLACE_OUTPUT_DIR: %s cannot be written (%s); results are delivered but "
                    "not saved there until it can be", output_dir, reason)


def _write_problem(folder: Path) -> str | None:
    """Why a file cannot be created (and synced) in `folder`, made if missing; None if it can."""
    probe = folder / _PROBE
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with open(probe, "wb") as file:
            file.write(b"ok")
            file.flush()
            os.fsync(file.fileno())
        probe.unlink()
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    return None


async def login_with_retries(client: discord.Client, token: str) -> bool:
    """client.login(), tried again with a growing, capped interval for as long as Discord
    cannot be reached. False when the client was closed meanwhile (a stop signal): the caller
    then just ends. A refused token (LoginFailure) is raised at once.

    A machine that just booted may have no network or DNS yet, and Discord has outages: each
    failed try is one line in the log, saying when the next one is."""
    delay = CONNECT_FIRST_RETRY_S
    for attempt in itertools.count(1):
        try:
            if not await _login_unless_closed(client, token):
                return False
        except (TimeoutError, aiohttp.ClientConnectionError, discord.DiscordServerError,
                RuntimeError) as exc:
            if client.is_closed():  # stopped mid-try: its session was closed under it
                return False
            if isinstance(exc, RuntimeError):
                raise
            log.warning("cannot reach Discord (%s); try %d failed, the next in %.0f s "
                        "(the bot waits for Discord until it is stopped; check this machine's "
                        "network, DNS and proxy)", _connection_reason(exc), attempt, delay)
            await _forget_session(client)
            if not await _wait_unless_closed(client, delay):
                return False
            delay = min(delay * 2, CONNECT_MAX_RETRY_S)
        else:
            if attempt > 1:
                log.info("reached Discord at try %d", attempt)
            return True
    return False  # not reached: the loop ends only by returning or raising


async def _login_unless_closed(client: discord.Client, token: str) -> bool:
    """client.login(token); False as soon as the client is closed meanwhile. A try can take
    long (a DNS or TCP timeout, discord.py's own waits between its retries of a 502): a stop
    signal cancels it rather than wait for it."""
    login = asyncio.ensure_future(client.login(token))
    try:
        while not login.done():
            await asyncio.wait([login], timeout=STOP_CHECK_S)
            if client.is_closed() and not login.done():
                return False
        login.result()  # raises what failed the try
        return True
    finally:
        if not login.done():
            login.cancel()
            await asyncio.wait([login])


async def _forget_session(client: discord.Client) -> None:
    """Each login opens a new HTTP session and a failed one stays open (aiohttp then warns of
    an "Unclosed client session"): close it, and let the next try make its own connector
    (closing the session closed the one it had)."""
    await client.http.close()
    client.http.connector = discord.utils.MISSING


async def _wait_unless_closed(client: discord.Client, seconds: float) -> bool:
    """Wait `seconds`; False as soon as the client is closed (a stop signal came)."""
    loop = asyncio.get_running_loop()
    until = loop.time() + seconds
    while not client.is_closed():
        left = until - loop.time()
        if left <= 0:
            return True
        await asyncio.sleep(min(left, STOP_CHECK_S))
    return False


def _connection_reason(exc: BaseException) -> str:
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return "its name does not resolve"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return exc.strerror or str(exc.os_error)
    if isinstance(exc, asyncio.TimeoutError):
        return "timed out"
    if isinstance(exc, discord.DiscordServerError):
        return f"Discord answered HTTP {exc.status}"
    return str(exc) or type(exc).__name__
