"""Waiting for a log line: a test waits for the event it expects, never a fixed time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator


class LogSeen(logging.Handler):
    """Sets `seen` once a record whose message contains `text` is logged (in the loop's
    thread, as the product's asyncio code logs)."""

    def __init__(self, text: str):
        super().__init__()
        self.text = text
        self.seen = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.seen.set()


@contextlib.contextmanager
def watching(name: str, text: str) -> Iterator[LogSeen]:
    """A LogSeen on logger `name`, its INFO lines let through meanwhile."""
    handler = LogSeen(text)
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(min(logger.getEffectiveLevel(), logging.INFO))
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
