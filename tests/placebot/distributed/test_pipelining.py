"""Automatic pipelining on a real server: shared round trips, answers to their own callers."""

from __future__ import annotations

import asyncio

import pytest
from redis.exceptions import ResponseError

from placebot.distributed.connection import connect
from placebot.distributed.pipelining import AutoPipeline

ECHO = "return ARGV[1]"


class CountingPipeline(AutoPipeline):
    """Counts the pipelines sent (each one network round trip)."""

    sent = 0

    async def _pipeline(self, commands):
        self.sent += 1
        return await super()._pipeline(commands)


@pytest.fixture
async def client(valkey):
    client = connect(valkey.url)
    yield client
    await client.aclose()


async def test_a_burst_of_commands_shares_round_trips_and_each_gets_its_answer(client):
    """200 concurrent INCRs of 200 keys: each caller gets its own key's answer, in a few
    pipelines instead of 200 round trips."""
    pipe = CountingPipeline(client, {})
    answers = await asyncio.gather(*(pipe.command("INCRBY", f"k{n}", n) for n in range(200)))
    assert answers == list(range(200)) and pipe.sent <= 3


async def test_a_failing_command_fails_only_its_caller(client):
    """A command the server refuses raises for its caller; the others in its pipeline answer."""
    pipe = AutoPipeline(client, {})
    await client.set("text", "not a number")
    good, bad = await asyncio.gather(pipe.command("INCR", "counter"), pipe.command("INCR", "text"),
                                     return_exceptions=True)
    assert good == 1 and isinstance(bad, ResponseError)


async def test_scripts_the_server_forgot_are_loaded_again(client):
    """After SCRIPT FLUSH (as after a restart without them) a script still runs, once."""
    pipe = AutoPipeline(client, {"ECHO": ECHO})
    assert await pipe.script("ECHO", "before") == b"before"
    await client.script_flush()
    answers = await asyncio.gather(*(pipe.script("ECHO", str(n)) for n in range(5)))
    assert answers == [str(n).encode() for n in range(5)]
