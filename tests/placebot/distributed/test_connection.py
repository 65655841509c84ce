"""What the distributed mode does when Redis is out of reach, in one place
(placebot/distributed/connection.py): wait for an answer worth waiting for, pause a loop that
must not die, or tell a waiting user. Driven by stand-in calls; no server is needed."""

from __future__ import annotations

import logging

import pytest
from redis.exceptions import AuthenticationError
from redis.exceptions import ConnectionError as RedisConnectionError

from placebot.distributed import connection
from placebot.distributed.connection import Outage, pause_after, unreachable_as, until_reachable
from placebot.settings import SettingsError

LOGGER = "test.redis"


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch):
    monkeypatch.setattr(connection, "RETRY_S", 0.001)


def failing(times: int, error: Exception, answer: str = "stored"):
    """A call that raises `error` `times` times, then answers."""
    calls = []

    async def call(*args):
        calls.append(args)
        if len(calls) <= times:
            raise error
        return answer

    return call, calls


async def test_an_answer_worth_waiting_for_is_tried_until_redis_answers(caplog):
    """Three tries out of reach, then the answer: one line for the outage, one for its end."""
    caplog.set_level(logging.INFO, LOGGER)
    call, calls = failing(3, RedisConnectionError("refused"))
    assert await until_reachable(Outage(logging.getLogger(LOGGER), "w"), call, "job-1") \
        == "stored"
    assert calls == [("job-1",)] * 4
    said = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert len(said) == 2
    assert "Redis is unreachable" in said[0] and "reachable again" in said[1]


async def test_a_refused_login_at_a_start_is_a_setting_not_an_outage():
    """refusal_is_fatal: the server answers but refuses the password: SettingsError naming
    PLACE_REDIS_URL at once, no retry."""
    call, calls = failing(5, AuthenticationError("invalid password"))
    with pytest.raises(SettingsError, match="PLACE_REDIS_URL: the Redis server refused"):
        await until_reachable(Outage(logging.getLogger(LOGGER), "w"), call,
                              refusal_is_fatal=True)
    assert len(calls) == 1


async def test_a_loop_pauses_after_an_outage_and_after_an_unexpected_error(caplog):
    """An outage is told once by the Outage (no traceback); anything else is logged with its
    traceback, naming what failed."""
    log = logging.getLogger(LOGGER)
    outage = Outage(log, "bot b")
    for _ in range(2):
        await pause_after(RedisConnectionError("gone"), outage, log, "read the job events")
    await pause_after(ValueError("odd reply"), outage, log, "read the job events")
    said = [r for r in caplog.records if r.name == LOGGER]
    assert [r.getMessage() for r in said] == [
        "bot b: Redis is unreachable (gone); retrying until it is back",
        "could not read the job events; trying again"]
    assert said[0].exc_info is None and said[1].exc_info is not None


async def test_an_outage_while_a_user_waits_becomes_the_error_they_read(caplog):
    """Redis out of reach inside unreachable_as: the given error is raised for the user, and
    the log says what Redis was needed for."""

    class StoreDown(Exception):
        def __init__(self):
            super().__init__("can't be reached right now")

    with pytest.raises(StoreDown) as raised, \
            unreachable_as(StoreDown, logging.getLogger(LOGGER), "a picture"):
        raise RedisConnectionError("gone")
    assert raised.value.__cause__ is None and raised.value.__suppress_context__
    [warning] = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert warning == "could not reach Redis for a picture: gone"
