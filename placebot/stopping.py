"""How a process of this bot is asked to stop, and how long its running render may take then:
shared by the bot (bot.py) and the render worker (python -m placebot.gpu_worker)."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable

# The running render's time to finish on a stop: Docker kills after 10 s, and the rest is for
# closing the connections.
STOP_GRACE_S = 6.0

# Ctrl+C, a service manager's stop, and Ctrl+Break in a Windows console.
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGBREAK")
                     if hasattr(signal, name))


def install_stop_handlers(loop: asyncio.AbstractEventLoop,
                          stop: Callable[[], object]) -> Callable[[], None]:
    """Call `stop()` on the loop when a stop signal arrives; return what uninstalls it.

    Windows' event loops have no add_signal_handler (NotImplementedError). There a plain
    signal.signal handler is used: Python runs it in the main thread between two bytecodes,
    so it only hands `stop` to the loop, which call_soon_threadsafe also wakes.
    """
    try:
        for signum in STOP_SIGNALS:
            loop.add_signal_handler(signum, stop)
    except NotImplementedError:
        previous = {signum: signal.signal(signum, lambda *_: loop.call_soon_threadsafe(stop))
                    for signum in STOP_SIGNALS}

        def restore() -> None:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

        return restore

    def remove() -> None:
        for signum in STOP_SIGNALS:
            loop.remove_signal_handler(signum)

    return remove
