"""Automatic pipelining: the commands that concurrent tasks issue while one round trip is in
flight go to Redis together, as the next pipeline.

A process that serves many jobs at once (a bot admitting a burst of /place, a worker ending a
batch, a bot handling a read of events) would otherwise pay one network round trip per
command, one after another. Here each caller still awaits its own answer, and a failed
command fails only its caller. Blocking reads (XREADGROUP BLOCK) do not come through here:
they would hold up every command queued behind them.

Scripts are sent as EVALSHA; a server that does not know one (restarted, or flushed) answers
NOSCRIPT, and the scripts are loaded again and the refused commands re-sent (a refused script
did not run, so sending it again is safe).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Mapping

import redis.asyncio as redis
from redis.exceptions import NoScriptError


def sha1(body: str) -> str:
    return hashlib.sha1(body.encode()).hexdigest()


class AutoPipeline:
    """One pipeline in flight at a time; whatever queued up meanwhile is the next one."""

    def __init__(self, client: redis.Redis, scripts: Mapping[str, str]):
        self.client = client
        self._scripts = dict(scripts)
        self._shas = {name: sha1(body) for name, body in self._scripts.items()}
        self._queued: list[tuple[tuple, asyncio.Future]] = []
        self._sender: asyncio.Task | None = None

    async def command(self, *args):
        """The answer to one Redis command, sent with the others queued now."""
        future = asyncio.get_running_loop().create_future()
        self._queued.append((args, future))
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._send_all())
        return await future

    async def script(self, name: str, *args):
        """Run one of the Lua scripts (no keys: they build their key names from ARGV)."""
        return await self.command("EVALSHA", self._shas[name], 0, *args)

    async def load_scripts(self) -> None:
        for body in self._scripts.values():
            await self.client.script_load(body)

    async def _send_all(self) -> None:
        await asyncio.sleep(0)  # let the tasks woken with this one queue their commands too
        while self._queued:
            batch, self._queued = self._queued, []
            live = [(args, future) for args, future in batch if not future.cancelled()]
            try:
                answers = await self._send(live)
            except BaseException as exc:  # the connection failed: every caller hears it
                for _args, future in live:
                    if not future.done():
                        future.set_exception(exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise
                continue
            for (_args, future), answer in zip(live, answers, strict=True):
                if future.done():
                    continue
                if isinstance(answer, Exception):
                    future.set_exception(answer)
                else:
                    future.set_result(answer)

    async def _send(self, commands: list[tuple[tuple, asyncio.Future]]) -> list:
        answers = await self._pipeline([args for args, _future in commands])
        refused = [i for i, answer in enumerate(answers) if isinstance(answer, NoScriptError)]
        if refused:
            await self.load_scripts()
            again = await self._pipeline([commands[i][0] for i in refused])
            for i, answer in zip(refused, again, strict=True):
                answers[i] = answer
        return answers

    async def _pipeline(self, commands: list[tuple]) -> list:
        if not commands:
            return []
        async with self.client.pipeline(transaction=False) as pipe:
            for args in commands:
                pipe.execute_command(*args)
            return await pipe.execute(raise_on_error=False)
