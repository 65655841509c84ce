"""Waiting for a state that must come, where no event announces it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

from tests.support.patience import PATIENCE_S

T = TypeVar("T")
POLL_S = 0.01


async def until(condition: Callable[[], T], what: str, timeout: float = PATIENCE_S) -> T:
    """condition()'s first truthy value, looked at every POLL_S; TimeoutError naming `what`
    if it is still false after `timeout` (which bounds a hang, never a speed)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not (value := condition()):
        if loop.time() > deadline:
            raise TimeoutError(f"still not so after {timeout:g} s: {what}")
        await asyncio.sleep(POLL_S)
    return value
