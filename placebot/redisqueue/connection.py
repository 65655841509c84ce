"""Connecting to Redis, and saying once (not on every retry) that it went away or came back."""

from __future__ import annotations

import logging
import time

import redis.asyncio as redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

# A blocking read waits at most this long, so the socket timeout below never cuts one short.
BLOCK_MS = 1000
SOCKET_TIMEOUT_S = 10.0
# What "Redis is unreachable" looks like from redis-py (a restarting server answers LOADING,
# which redis-py raises as a ConnectionError too).
UNREACHABLE = (RedisConnectionError, RedisTimeoutError, ConnectionError, OSError)


MAX_CONNECTIONS = 32  # per process: a burst of /place waits for a connection, never floods


def connect(url: str) -> redis.Redis:
    """A client for redis:// or rediss:// (TLS) URLs, with the password in the URL."""
    pool = redis.BlockingConnectionPool.from_url(
        url, max_connections=MAX_CONNECTIONS, timeout=SOCKET_TIMEOUT_S,
        socket_timeout=SOCKET_TIMEOUT_S, socket_connect_timeout=5, health_check_interval=15)
    return redis.Redis(connection_pool=pool)


class Outage:
    """Logs the first failure of a run of failures, and the recovery after it: one line each."""

    def __init__(self, log: logging.Logger, who: str):
        self.log = log
        self.who = who
        self.since: float | None = None

    @property
    def down(self) -> bool:
        return self.since is not None

    def lost(self, error: BaseException) -> None:
        if self.since is None:
            self.since = time.monotonic()
            self.log.error("%s: Redis is unreachable (%s); retrying until it is back",
                           self.who, error)

    def back(self) -> None:
        if self.since is not None:
            self.log.warning("%s: Redis is reachable again after %.1f s", self.who,
                             time.monotonic() - self.since)
            self.since = None
