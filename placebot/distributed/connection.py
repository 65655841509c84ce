"""Connecting to Redis, and what to do when it is out of reach: the one place that knows.

A call whose answer is worth waiting for (a result in hand, a worker's start) is tried again
every RETRY_S while Redis is unreachable (until_reachable), saying once, not on every retry,
that it went away and once that it came back (Outage). A call a user is waiting on is not:
an outage during it becomes an error the user reads (unreachable_as).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar, cast

import redis.asyncio as redis
from redis.exceptions import AuthenticationError, AuthorizationError, NoPermissionError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from pipeline.config import SettingsError

# A blocking read waits at most this long, so the socket timeout below never cuts one short.
BLOCK_MS = 1000
SOCKET_TIMEOUT_S = 10.0
# What "Redis is unreachable" looks like from redis-py (a restarting server answers LOADING,
# which redis-py raises as a ConnectionError too).
UNREACHABLE = (RedisConnectionError, RedisTimeoutError, ConnectionError, OSError)
RETRY_S = 1.0  # between attempts while Redis is unreachable


# What "the server answered, and refused us" looks like: a wrong password or user, or a
# user without the rights the queue needs. Not an outage: a setting to fix.
REFUSED = (AuthenticationError, AuthorizationError, NoPermissionError)
LOGIN_CHECK_S = 5.0


def refused_message(error: BaseException) -> str:
    """What an owner reads when the server refuses the login in PLACE_REDIS_URL."""
    return (f"the Redis server refused the login ({error}): check the password in the URL "
            "(redis://:PASSWORD@host:6379/0) and, with ACL users, the user's name and rights")


def refused_setting(error: BaseException) -> SettingsError:
    return SettingsError("PLACE_REDIS_URL", refused_message(error))


async def check_login(client: redis.Redis) -> None:
    """SettingsError when the server answers but refuses this client's login or rights;
    nothing when it lets us in, or cannot be reached (that is retried, as an outage)."""
    try:
        # redis-py's stubs type a command for both clients; this one is the asyncio client's
        await cast("Awaitable[bool]", client.ping())
    except REFUSED as exc:
        raise refused_setting(exc) from None
    except UNREACHABLE:
        return


def login_problem(url: str) -> SettingsError | None:
    """check_login from outside an event loop, before a process starts: the error, if the
    server refuses the URL's login."""
    import asyncio

    async def check() -> SettingsError | None:
        client = redis.Redis.from_url(url, socket_timeout=LOGIN_CHECK_S,
                                      socket_connect_timeout=LOGIN_CHECK_S)
        try:
            await check_login(client)
        except SettingsError as exc:
            return exc
        finally:
            await client.aclose()
        return None

    return asyncio.run(check())


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


T = TypeVar("T")


async def until_reachable(outage: Outage, call: Callable[..., Awaitable[T]], *args,
                          give_up_s: float = 600.0, refusal_is_fatal: bool = False) -> T:
    """`call(*args)`, tried again every RETRY_S while Redis is unreachable (a result in hand
    is worth waiting for: the job is acknowledged only once it is stored), the outage told
    once by `outage`; past `give_up_s` the last error is raised. `refusal_is_fatal`: a server
    that answers but refuses the login raises SettingsError (at a start: a setting to fix,
    not an outage to wait out)."""
    deadline = time.monotonic() + give_up_s
    while True:
        try:
            answer = await call(*args)
            outage.back()
            return answer
        except REFUSED as exc:
            if refusal_is_fatal:
                raise refused_setting(exc) from None
            outage.lost(exc)
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(RETRY_S)
        except UNREACHABLE as exc:
            outage.lost(exc)
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(RETRY_S)


async def pause_after(error: Exception, outage: Outage, log: logging.Logger,
                      doing: str) -> None:
    """A loop that must not die (a reader that died would leave every result undelivered)
    failed at `doing`: Redis out of reach is told once, by `outage`; anything else is logged
    with its traceback. Then it waits RETRY_S before the loop tries again."""
    if isinstance(error, UNREACHABLE):
        outage.lost(error)
    else:
        log.error("could not %s; trying again", doing, exc_info=error)
    await asyncio.sleep(RETRY_S)


@contextmanager
def unreachable_as(unavailable: Callable[[], Exception], log: logging.Logger,
                   what: str) -> Iterator[None]:
    """Redis out of reach in the block: one warning naming `what` it was needed for, and
    `unavailable()` raised instead (an error whose message the user reads), without the
    connection's traceback."""
    try:
        yield
    except UNREACHABLE as exc:
        log.warning("could not reach Redis for %s: %s", what, exc)
        raise unavailable() from None
