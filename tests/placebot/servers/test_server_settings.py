"""The server settings store's contract, held by both implementations: the data folder's
SQLite file and the distributed mode's Redis (a real Valkey server)."""

from __future__ import annotations

import contextlib

import pytest

from placebot.distributed import keys
from placebot.distributed.connection import connect
from placebot.distributed.server_settings import RedisServerSettings
from placebot.servers.server_settings import (
    SAFETY_EVERYWHERE,
    ServerSettings,
    ServerSettingsDamaged,
    ServerSettingsUnavailable,
    SqliteServerSettings,
)
from tests.support.valkey import ValkeyProcess

GUILD, OTHER = 111, 222


class SqliteBackend:
    """Makes SqliteServerSettings on one file; `restart` is a new process's store."""

    def __init__(self, tmp_path):
        self.path = tmp_path / "data" / "servers.sqlite3"

    async def store(self):
        return SqliteServerSettings(self.path)

    async def restart(self) -> None:
        return None  # nothing lives outside the file

    async def damage(self, guild_id: int, name: str) -> None:
        import sqlite3

        with contextlib.closing(sqlite3.connect(self.path)) as db, db:
            db.execute("UPDATE server_settings SET value = 'not json' WHERE guild_id = ? "
                       "AND name = ?", (guild_id, name))

    async def close(self) -> None:
        return None


class RedisBackend:
    """RedisServerSettings on a real Valkey server with AOF; `restart` restarts the server."""

    def __init__(self, tmp_path):
        self.server = ValkeyProcess(tmp_path / "valkey", password="test-secret").start()
        self.clients = []

    async def store(self):
        client = connect(self.server.url)
        self.clients.append(client)
        return RedisServerSettings(client)

    async def restart(self) -> None:
        self.server.restart()

    async def damage(self, guild_id: int, name: str) -> None:
        await self.clients[0].hset(keys.server_settings(guild_id), name, "not json")

    async def close(self) -> None:
        for client in self.clients:
            await client.aclose()
        self.server.stop()


@pytest.fixture(params=["sqlite", "redis"])
async def backend(request, tmp_path):
    made = {"sqlite": SqliteBackend, "redis": RedisBackend}[request.param](tmp_path)
    yield made
    await made.close()


async def test_a_server_that_chose_nothing_follows_the_owner(backend):
    """No setting stored: every field is the owner's (None, no channels)."""
    store = await backend.store()
    assert await store.load(GUILD) == ServerSettings()


async def test_each_setting_is_kept_and_read_back_as_it_was_set(backend):
    """Every setting, changed one by one, reads back as the value set."""
    store = await backend.store()
    chosen = ServerSettings(channels=(3001, 3002), cooldown_s=30.0, user_max=2, prompts=False,
                            default_model="1.5", safety=SAFETY_EVERYWHERE)
    for name, value in (("channels", (3001, 3002)), ("cooldown_s", 30.0), ("user_max", 2),
                        ("prompts", False), ("default_model", "1.5"),
                        ("safety", SAFETY_EVERYWHERE)):
        await store.change(GUILD, name, value)
    assert await store.load(GUILD) == chosen


async def test_settings_survive_a_restart(backend):
    """Stored, then read by a new store after a restart (a new process; for Redis, the
    server itself restarted from its AOF)."""
    store = await backend.store()
    await store.change(GUILD, "cooldown_s", 45.0)
    await store.change(GUILD, "channels", (3001,))
    await backend.restart()
    again = await backend.store()
    assert await again.load(GUILD) == ServerSettings(channels=(3001,), cooldown_s=45.0)


async def test_none_gives_one_setting_back_and_clear_all_of_one_server(backend):
    """change(name, None) touches only that setting; clear() only that server."""
    store = await backend.store()
    for guild in (GUILD, OTHER):
        await store.change(guild, "user_max", 1)
        await store.change(guild, "default_model", "1.5")
    await store.change(GUILD, "user_max", None)
    assert await store.load(GUILD) == ServerSettings(default_model="1.5")
    await store.clear(GUILD)
    assert await store.load(GUILD) == ServerSettings()
    assert await store.load(OTHER) == ServerSettings(user_max=1, default_model="1.5")


async def test_a_damaged_value_refuses_rather_than_loosens(backend):
    """A stored value that does not read back is an error naming the setting and the way
    out (reset), never a silent fall-back to the owner's looser setting; reset clears it."""
    store = await backend.store()
    await store.change(GUILD, "channels", (3001,))
    await backend.damage(GUILD, "channels")
    with pytest.raises(ServerSettingsDamaged, match=r"'channels' setting is damaged.*reset"):
        await store.load(GUILD)
    await store.clear(GUILD)
    assert await store.load(GUILD) == ServerSettings()


async def test_an_unknown_setting_name_is_refused(backend):
    """A name that is no setting is refused before anything is stored or deleted."""
    store = await backend.store()
    with pytest.raises(ValueError, match="'colour' is not a server setting"):
        await store.change(GUILD, "colour", "red")
    with pytest.raises(ValueError, match="'colour' is not a server setting"):
        await store.change(GUILD, "colour", None)


async def test_redis_out_of_reach_is_said_in_a_line_for_the_user(tmp_path):
    """The Redis store raises ServerSettingsUnavailable (a user's line), not a socket error."""
    server = ValkeyProcess(tmp_path / "valkey").start()
    client = connect(server.url)
    store = RedisServerSettings(client)
    server.stop()
    try:
        with pytest.raises(ServerSettingsUnavailable, match="can't be reached"):
            await store.load(GUILD)
    finally:
        await client.aclose()
