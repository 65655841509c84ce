"""Restarting the process in place: the fresh engine the render watchdog asks for.

The process re-executes its own command line (same interpreter, options, arguments,
environment, working directory and process id), so whatever supervises it (Docker, systemd,
a terminal) sees nothing but the log line. Threads that could not be stopped (a wedged render)
and the GPU context go with the old image; the journal brings back the jobs that were waiting.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import NoReturn


def command_line() -> list[str]:
    """This process's command line as started (`python bot.py`, `python -m module ...`)."""
    return [sys.executable, *sys.orig_argv[1:]]


def reexec(reason: str) -> NoReturn:
    """Replace this process by a fresh run of the same command. Call it with nothing left to
    close: the bot and its journal are closed; threads are not joined (they may be stuck)."""
    logging.getLogger(__name__).warning("restarting the process: %s", reason)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, command_line())
