"""The ServerSettingsStore (placebot/servers/server_settings.py) of the distributed mode: each
server's
settings in the Redis the bot processes share, so that a change made through one bot process
applies to the next job whichever process accepts it.

One hash per server, a field per setting (HSET, HDEL: a change touches only its own setting).
It never expires: the settings are the server admins', kept until they change them. The
server should keep its data (AOF), as for the jobs.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import Any, cast

import redis.asyncio as redis

from placebot.distributed import keys
from placebot.distributed.codec import text
from placebot.distributed.connection import unreachable_as
from placebot.servers.server_settings import (
    ServerSettings,
    ServerSettingsUnavailable,
    check_name,
    encode,
)

log = logging.getLogger(__name__)

WHAT = "a server's settings"  # what Redis was needed for, in the log


class RedisServerSettings:
    """ServerSettingsStore on the Redis that the bot processes share."""

    def __init__(self, client: redis.Redis):
        self.redis = client

    async def load(self, guild_id: int) -> ServerSettings:
        with unreachable_as(ServerSettingsUnavailable, log, WHAT):
            # redis-py's stubs type a command for both clients; this one is the asyncio one's
            raw = await cast("Awaitable[dict[bytes, bytes]]",
                             self.redis.hgetall(keys.server_settings(guild_id)))
        return ServerSettings.from_stored(guild_id, {text(k): text(v) for k, v in raw.items()})

    async def change(self, guild_id: int, name: str, value: Any) -> None:
        key = keys.server_settings(guild_id)
        with unreachable_as(ServerSettingsUnavailable, log, WHAT):
            if value is None:
                await cast("Awaitable[int]", self.redis.hdel(key, check_name(name)))
            else:
                await cast("Awaitable[int]", self.redis.hset(key, name, encode(name, value)))

    async def clear(self, guild_id: int) -> None:
        with unreachable_as(ServerSettingsUnavailable, log, WHAT):
            await self.redis.delete(keys.server_settings(guild_id))
