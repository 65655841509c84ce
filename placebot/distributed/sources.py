"""The SourceStore (placebot/discord_side/source_store.py) of the distributed mode: pictures and
prompts in
Redis, so that a result's Re-roll or New crop works whichever bot process the click reaches.

Each entry is one string key that expires KEEP_S after its last use: a save sets it with that
expiry (the same content saved again lives on), a load reads it and renews the expiry in one
command (GETEX). Redis drops what nobody used; nothing here prunes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

import redis.asyncio as redis
from PIL import Image

from placebot import texts
from placebot.discord_side.source_store import (
    KEEP_S,
    check_key,
    content_key,
    kept_record,
    picture_record,
    read_kept,
    read_picture,
)
from placebot.distributed import keys
from placebot.distributed.connection import unreachable_as
from placebot.messages import UserFacingError

log = logging.getLogger(__name__)

WHAT = "a picture or prompt"  # what Redis was needed for, in the log


class SourcesUnavailable(UserFacingError):
    def __init__(self):
        super().__init__(texts.SOURCES_UNAVAILABLE)


class RedisSourceStore:
    """SourceStore on the Redis that the bot processes share. PNG coding runs in a thread."""

    def __init__(self, client: redis.Redis, *, keep_s: float = KEEP_S):
        self.redis = client
        self.keep_s = keep_s

    async def save_picture(self, source: Image.Image) -> str:
        data = await asyncio.to_thread(picture_record, source)
        return await self._save(data, keys.source_picture)

    async def load_picture(self, key: str) -> Image.Image:
        data = await self._load(key, keys.source_picture)
        return await asyncio.to_thread(read_picture, data, self.keep_s)

    async def save_kept(self, values: Mapping[str, Any]) -> str:
        return await self._save(kept_record(values), keys.source_prompt)

    async def load_kept(self, key: str) -> dict[str, Any]:
        return read_kept(await self._load(key, keys.source_prompt), self.keep_s)

    @property
    def _keep_ms(self) -> int:
        return int(self.keep_s * 1000)

    async def _save(self, data: bytes, name: Callable[[str], str]) -> str:
        key = content_key(data)
        with unreachable_as(SourcesUnavailable, log, WHAT):
            await self.redis.set(name(key), data, px=self._keep_ms)
        return key

    async def _load(self, key: str, name: Callable[[str], str]) -> bytes | None:
        with unreachable_as(SourcesUnavailable, log, WHAT):
            return await self.redis.getex(name(check_key(key)), px=self._keep_ms)
