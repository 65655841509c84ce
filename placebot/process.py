"""One process of this bot from start to exit: `python bot.py` and the render worker
(`python -m placebot.gpu_worker`) start, run and end the same way, here.

1. The settings are read and checked before anything slow is imported: a typo is one line
   on stderr and exit code EXIT_SETTING, as is a setting the owner must fix before the
   process can do anything (a Redis server refusing PLACE_REDIS_URL's login, a data folder
   that cannot be written). A service manager does not restart a process that exits with it.
2. Logging is set up (secrets kept out of it) and the misspelt PLACE_* variables named.
3. The process serves until it is stopped (each installs its own stop-signal handlers:
   placebot.stopping). A failure it reports as a setting to fix is one line, exit 2.
4. A stuck render engine asks for a fresh process: it re-executes itself (placebot.restart).
   Otherwise it leaves without joining threads: a render stuck in a model download, or a
   background compile, must not hold the exit past Docker's 10 seconds.

The parts both processes build alike from the settings (the Renderer) are built here too.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import urlsplit

from pipeline.config import keep_kernel_caches, quiet_libraries
from placebot.logs import setup_logging
from placebot.settings import (
    Settings,
    SettingsError,
    load_process_settings,
    warn_of_ignored_variables,
)

if TYPE_CHECKING:
    from pipeline.engine import Renderer

log = logging.getLogger(__name__)

EXIT_SETTING = 2  # a setting the owner must fix: restarting the process would not help


class StartupError(Exception):
    """The process cannot start, for a reason its owner can fix; `setting` names the variable."""

    def __init__(self, setting: str | None, message: str):
        super().__init__(f"{setting}: {message}" if setting else message)
        self.setting = setting


# serve(settings): runs until the process is stopped; returns why it must restart (a stuck
# render engine), or None.
Serve = Callable[[Settings], Coroutine[Any, Any, str | None]]


def run_process(serve: Serve, *, need_token: bool = True,
                check: Callable[[Settings], object] | None = None,
                prepare: Callable[[Settings], None] | None = None,
                explain: Callable[[BaseException], str | None] | None = None) -> int:
    """Start, serve and end one process; what differs between the two is passed in.

    `check(settings)`: before logging, raises SettingsError or StartupError for what stops
    the start. `prepare(settings)`: once logging is set up (warnings). `explain(error)`: the
    line to log for an error out of `serve` that is a setting to fix (None: not one).
    Returns EXIT_SETTING when the settings stop the start; otherwise the process ends here."""
    try:
        settings = load_process_settings(need_token=need_token)
        if check is not None:
            check(settings)
        check_redis_login(settings)
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return EXIT_SETTING
    except StartupError as exc:
        print(f"cannot start: {exc}", file=sys.stderr)
        return EXIT_SETTING
    keep_kernel_caches(settings.data_dir)
    setup_logging(settings.log_level, *secrets(settings))
    warn_of_ignored_variables(settings)
    quiet_libraries()
    if prepare is not None:
        prepare(settings)
    code, restart_reason = 0, None
    try:
        restart_reason = asyncio.run(serve(settings))
    except SettingsError as exc:  # met only once serving (a login refused after an outage)
        print(f"configuration error: {exc}", file=sys.stderr)
        code = EXIT_SETTING
    except StartupError as exc:
        log.error("cannot start: %s", exc)
        code = EXIT_SETTING
    except Exception as exc:
        line = explain(exc) if explain is not None else None
        if line is None:
            raise
        log.error("%s", line)
        code = EXIT_SETTING
    end(code, restart_reason)


def check_redis_login(settings: Settings) -> None:
    """A Redis server that answers but refuses PLACE_REDIS_URL's login is a setting to fix,
    told before anything else starts; one out of reach is an outage, waited for later."""
    if settings.redis_url is None:
        return
    from placebot.distributed.connection import login_problem

    problem = login_problem(settings.redis_url)
    if problem is not None:
        raise problem


def secrets(settings: Settings) -> tuple[str, ...]:
    """What must never reach the log: the bot token and the Redis password (empty: none)."""
    password = urlsplit(settings.redis_url).password if settings.redis_url else None
    return settings.discord_token, password or ""


def end(code: int, restart_reason: str | None) -> NoReturn:
    """Re-execute the process for a fresh engine, or leave with `code` without joining the
    threads that may still run (a wedged render, a background compile)."""
    if restart_reason is not None:
        from placebot.restart import reexec

        reexec(restart_reason)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def build_renderer(settings: Settings) -> Renderer:
    """The render engine as the settings describe it: the one place either process builds it.
    It imports torch, so only a process that renders calls it."""
    from pipeline.engine import Renderer
    from pipeline.models import ModelStore

    return Renderer(ModelStore(
        settings.model_ids, device=settings.device, vram_mode=settings.vram_mode,
        safety_checker=settings.safety_checker, compile=settings.compile))
