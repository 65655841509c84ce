"""Each server's own settings, chosen by its admins with /place_admin and kept durably.

`ServerSettings` is what one server chose, each setting None (or no channels) where it follows
the bot owner's. `ServerSettingsStore` is where they are kept, one interface with two
implementations, chosen where the bot is built (placebot/discord_side/client.py):
`SqliteServerSettings`
in the data folder (`servers.sqlite3`, beside the job journal) and, in the distributed mode,
`RedisServerSettings` (placebot/distributed/server_settings.py), so that every bot process
reads the same. Each setting is stored on its own (one row, one hash field), so a change
touches only what it changes. What the settings mean for a job, and the owner's bounds a
server may not cross, are placebot/servers/server_rules.py's business.

Stored values are read back as carefully as anything from outside: one that is malformed
raises ServerSettingsDamaged (the bot then refuses jobs in that server, never runs them with
looser settings), and `/place_admin reset` clears it.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Protocol

from pipeline.params import MODEL_KEYS
from placebot import texts
from placebot.messages import UserFacingError

SAFETY_EVERYWHERE = "everywhere"  # the checker also runs in this server's age-restricted channels
MAX_CHANNELS = 25


class ServerSettingsDamaged(UserFacingError):
    def __init__(self, guild_id: int, name: str):
        super().__init__(texts.SERVER_SETTINGS_DAMAGED.format(name=name))
        self.guild_id = guild_id


class ServerSettingsUnavailable(UserFacingError):
    def __init__(self):
        super().__init__(texts.SERVER_SETTINGS_UNAVAILABLE)


@dataclass(frozen=True)
class ServerSettings:
    """One server's choices; None (no channels) where it follows the owner's settings."""

    channels: tuple[int, ...] = ()  # where /place, /dream and the message command work; (): all
    cooldown_s: float | None = None  # PLACE_USER_COOLDOWN here: never shorter than the owner's
    user_max: int | None = None  # PLACE_USER_MAX here: never above the owner's
    prompts: bool | None = None  # False: no prompts here (True only where the owner allows)
    default_model: str | None = None  # PLACE_DEFAULT_MODEL here
    safety: str | None = None  # SAFETY_EVERYWHERE: checked in age-restricted channels too

    def stored(self) -> dict[str, str]:
        """The settings this server chose, each as the JSON text that is stored."""
        return {name: json.dumps(value) for name, value in self._chosen().items()}

    def _chosen(self) -> dict[str, Any]:
        return {f.name: list(value) if isinstance(value, tuple) else value
                for f in fields(self) if (value := getattr(self, f.name)) not in (None, ())}

    @classmethod
    def from_stored(cls, guild_id: int, values: Mapping[str, str]) -> ServerSettings:
        """Read back what stored() wrote; ServerSettingsDamaged for a malformed value. A
        name this version does not know (written by a newer one) is left alone."""
        settings = cls()
        for name, text in values.items():
            if name not in SETTING_NAMES:
                continue
            try:
                value = _checked(name, json.loads(text))
            except (ValueError, TypeError):
                raise ServerSettingsDamaged(guild_id, name) from None
            settings = replace(settings, **{name: value})
        return settings


SETTING_NAMES = tuple(f.name for f in fields(ServerSettings))


def _checked(name: str, value: Any) -> Any:
    """A stored value as its field holds it; ValueError/TypeError when it is not one."""
    if name == "channels":
        if not isinstance(value, list) or len(value) > MAX_CHANNELS or not all(
                isinstance(c, int) and not isinstance(c, bool) and c > 0 for c in value):
            raise ValueError(name)
        return tuple(value)
    if name == "cooldown_s":
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ValueError(name)
        return float(value)
    if name == "user_max":
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(name)
        return value
    if name == "prompts":
        if not isinstance(value, bool):
            raise ValueError(name)
        return value
    if name == "default_model" and value in MODEL_KEYS:
        return value
    if name == "safety" and value == SAFETY_EVERYWHERE:
        return value
    raise ValueError(name)


def check_name(name: str) -> str:
    if name not in SETTING_NAMES:
        raise ValueError(f"{name!r} is not a server setting; one of {', '.join(SETTING_NAMES)}")
    return name


def encode(name: str, value: Any) -> str:
    """One setting's value as it is stored (the same text ServerSettings.stored gives)."""
    check_name(name)
    return json.dumps(list(value) if isinstance(value, tuple) else value)


class ServerSettingsStore(Protocol):
    """Every server's settings, durable. Each method may await I/O; none blocks the loop.
    A store that can't be reached raises ServerSettingsUnavailable."""

    async def load(self, guild_id: int) -> ServerSettings:
        """The server's settings (all the owner's for a server that chose nothing)."""

    async def change(self, guild_id: int, name: str, value: Any) -> None:
        """Set one setting (a SETTING_NAMES name); None: back to the owner's."""

    async def clear(self, guild_id: int) -> None:
        """Every setting of the server back to the owner's."""


class SqliteServerSettings:
    """ServerSettingsStore in a SQLite file: a row per (server, setting). Each call opens
    the file in a thread (a few milliseconds; admins change settings rarely and every job
    reads them once), so nothing is shared between threads."""

    def __init__(self, path: Path):
        self.path = Path(path)

    async def load(self, guild_id: int) -> ServerSettings:
        rows = await asyncio.to_thread(self._run, "SELECT name, value FROM server_settings "
                                       "WHERE guild_id = ?", (guild_id,))
        return ServerSettings.from_stored(guild_id, dict(rows))

    async def change(self, guild_id: int, name: str, value: Any) -> None:
        if value is None:
            await asyncio.to_thread(self._run, "DELETE FROM server_settings WHERE guild_id = ? "
                                    "AND name = ?", (guild_id, check_name(name)))
            return
        await asyncio.to_thread(self._run, "INSERT OR REPLACE INTO server_settings (guild_id, "
                                "name, value) VALUES (?, ?, ?)",
                                (guild_id, name, encode(name, value)))

    async def clear(self, guild_id: int) -> None:
        await asyncio.to_thread(self._run, "DELETE FROM server_settings WHERE guild_id = ?",
                                (guild_id,))

    def _run(self, statement: str, arguments: tuple) -> list[tuple]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path)
        try:
            with db:  # one transaction, committed on leaving
                db.execute("CREATE TABLE IF NOT EXISTS server_settings (guild_id INTEGER NOT "
                           "NULL, name TEXT NOT NULL, value TEXT NOT NULL, "
                           "PRIMARY KEY (guild_id, name))")
                return db.execute(statement, arguments).fetchall()
        finally:
            db.close()
