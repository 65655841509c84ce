"""What must hold before the bot serves, and the one-line errors an owner can act on.

A start-up failure the owner can fix (a data folder that cannot be written, a server the bot
is not in, Discord out of reach) is a StartupError: bot.py prints it as one line and exits with
code 2, as it does for a malformed setting, instead of a traceback and a restart loop.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

import aiohttp
import discord

log = logging.getLogger(__name__)

CONNECT_ATTEMPTS = 6  # 5 + 10 + 20 + 40 + 60 s apart: a network coming up after a boot
CONNECT_FIRST_RETRY_S = 5.0
CONNECT_MAX_RETRY_S = 60.0
STOP_CHECK_S = 0.2  # how soon a stop signal ends the wait between two tries
_PROBE = ".write-check"


class StartupError(Exception):
    """The bot cannot start, for a reason its owner can fix; `setting` names the variable."""

    def __init__(self, setting: str | None, message: str):
        super().__init__(f"{setting}: {message}" if setting else message)
        self.setting = setting


def check_data_dir(data_dir: Path) -> None:
    """Create PLACE_DATA_DIR and write (and sync) a file in it, or raise StartupError.

    The journal must be writable before a job is accepted: a folder that is read-only or full
    is reported now, in one line, rather than as a traceback from deep inside SQLite."""
    reason = _write_problem(Path(data_dir))
    if reason is not None:
        raise StartupError("PLACE_DATA_DIR", f"{data_dir} cannot be written ({reason}): give "
                           "the bot a folder it can write to, with free space")


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
    """client.login(), retried with backoff while Discord cannot be reached. False when the
    client was closed meanwhile (Ctrl+C during the retries): the caller then just ends.

    A machine that just booted may have no network or DNS yet: each failed try is one line in
    the log, and after CONNECT_ATTEMPTS a StartupError says what to check."""
    delay = CONNECT_FIRST_RETRY_S
    for attempt in range(1, CONNECT_ATTEMPTS + 1):
        try:
            await client.login(token)
            return True
        except (aiohttp.ClientConnectionError, asyncio.TimeoutError, RuntimeError) as exc:
            if client.is_closed():  # stopped mid-try: its session was closed under it
                return False
            if isinstance(exc, RuntimeError):
                raise
            reason = _connection_reason(exc)
            if attempt == CONNECT_ATTEMPTS:
                raise StartupError(None, f"cannot reach Discord ({reason}) after {attempt} "
                                   "tries: check this machine's network, DNS and proxy") from None
            log.warning("cannot reach Discord (%s); try %d of %d, again in %.0f s",
                        reason, attempt, CONNECT_ATTEMPTS, delay)
            await _forget_session(client)
            if not await _wait_unless_closed(client, delay):
                return False
            delay = min(delay * 2, CONNECT_MAX_RETRY_S)
    return False  # not reached: the last try returns or raises


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
    return str(exc) or type(exc).__name__
