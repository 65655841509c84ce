"""What placebot/discord_side/source_store.py's SourceStore promises, held against both stores: the
FolderSourceStore (files in tmp_path) and the RedisSourceStore (a real Valkey server). Each
contract test runs once per store; a third store is written against them. Pictures and
prompts are kept by content hash, each KEEP_S (a week) after its last use.

Each store has a "side" here that opens it as another bot process would (another handle on
the same folder, another connection to the same server) and says how long an entry has left
and how to make one older; the few tests of one store only are at the end.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator

import pytest
from PIL import Image

from placebot.discord_side.source_store import (
    KEEP_S,
    FolderSourceStore,
    SourceExpired,
    SourceStore,
    content_key,
    kept_key,
    picture_record,
)
from placebot.distributed import keys
from placebot.distributed.connection import connect
from placebot.distributed.sources import RedisSourceStore, SourcesUnavailable
from tests.support.valkey import ValkeyProcess

FOX = {"prompt": "a fox", "guidance": 9.0}  # what a prompted result keeps


def _picture() -> Image.Image:
    return Image.effect_noise((40, 32), 60).convert("RGB")


class FolderSide:
    """Entries are files; an entry's last use is its file's mtime."""

    def __init__(self, folder):
        self.folder = folder
        self.suffix = {"picture": ".png", "prompt": ".prompt.json"}

    def open(self) -> FolderSourceStore:
        return FolderSourceStore(self.folder)

    def path(self, kind: str, key: str):
        return self.folder / f"{key}{self.suffix[kind]}"

    async def left_s(self, kind: str, key: str) -> float:
        return KEEP_S - (time.time() - self.path(kind, key).stat().st_mtime)

    async def make_old(self, kind: str, key: str, age_s: float) -> None:
        then = time.time() - age_s
        os.utime(self.path(kind, key), (then, then))

    async def close(self) -> None:
        pass


class RedisSide:
    """Entries are keys with an expiry; each open() is a connection of its own."""

    def __init__(self, url: str):
        self.url = url
        self.name = {"picture": keys.source_picture, "prompt": keys.source_prompt}
        self.clients: list = []

    def open(self) -> RedisSourceStore:
        self.clients.append(connect(self.url))
        return RedisSourceStore(self.clients[-1])

    async def left_s(self, kind: str, key: str) -> float:
        return await self.clients[0].pttl(self.name[kind](key)) / 1000

    async def make_old(self, kind: str, key: str, age_s: float) -> None:
        name = self.name[kind](key)
        if age_s >= KEEP_S:  # past its expiry: Redis has dropped it
            await self.clients[0].delete(name)
        else:
            await self.clients[0].pexpire(name, int((KEEP_S - age_s) * 1000))

    async def close(self) -> None:
        for client in self.clients:
            await client.aclose()


@pytest.fixture(params=["folder", "redis"])
async def side(request, tmp_path) -> AsyncIterator[FolderSide | RedisSide]:
    if request.param == "folder":
        yield FolderSide(tmp_path / "sources")
        return
    with ValkeyProcess(tmp_path / "valkey", password="test-secret") as valkey:
        redis_side = RedisSide(valkey.url)
        try:
            yield redis_side
        finally:
            await redis_side.close()


# ----- the contract
async def test_a_picture_saved_by_one_process_loads_in_another_pixel_for_pixel(side):
    """The same picture saved twice has one key, its content hash (what a button carries,
    the same in every store), and another process loads it back unchanged."""
    store: SourceStore = side.open()
    picture = _picture()
    key = await store.save_picture(picture)
    assert await store.save_picture(picture) == key == content_key(picture_record(picture))
    other: SourceStore = side.open()
    assert (await other.load_picture(key)).tobytes() == picture.tobytes()


async def test_a_prompt_is_kept_under_the_key_buttons_compute(side):
    """kept_key needs no I/O and names what save_kept kept, read back as it was."""
    store: SourceStore = side.open()
    assert await store.save_kept(FOX) == kept_key(FOX)
    assert await side.open().load_kept(kept_key(FOX)) == FOX


async def test_a_saved_entry_is_kept_a_week(side):
    """A picture just saved has a week (KEEP_S) left, give or take a minute."""
    key = await side.open().save_picture(_picture())
    assert KEEP_S - 60 < await side.left_s("picture", key) <= KEEP_S


async def test_a_load_renews_the_week(side):
    """An entry near its end is given a full week again by a load."""
    store: SourceStore = side.open()
    key = await store.save_kept(FOX)
    await side.make_old("prompt", key, KEEP_S - 5)
    await store.load_kept(key)
    assert await side.left_s("prompt", key) > KEEP_S - 60


@pytest.mark.parametrize("kind", ["picture", "prompt"])
async def test_an_entry_unused_for_a_week_has_expired(side, kind):
    """Loading it after a week says it has expired, how long entries are kept and what to
    do, and it stays expired."""
    store: SourceStore = side.open()
    if kind == "picture":
        key, load = await store.save_picture(_picture()), store.load_picture
        advice = "use /dream with it again"
    else:
        key, load = await store.save_kept(FOX), store.load_kept
        advice = "run the command again with it"
    await side.make_old(kind, key, KEEP_S + 86400)
    for _ in range(2):
        with pytest.raises(SourceExpired) as expired:
            await load(key)
        assert str(expired.value) == (f"the {kind} of this result has expired ({kind}s are "
                                      f"kept 7 days after their last use); {advice}")


@pytest.mark.parametrize("forged", ["../../etc/passwd", "place:job:x"])
async def test_a_key_that_is_not_a_content_hash_is_refused(side, forged):
    """A forged key (a path, another Redis key) is refused before storage is touched."""
    store: SourceStore = side.open()
    with pytest.raises(ValueError, match="not a content key"):
        await store.load_picture(forged)
    with pytest.raises(ValueError, match="not a content key"):
        await store.load_kept(forged)


# ----- one store only
async def test_the_folder_store_removes_an_expired_file_when_it_is_loaded(tmp_path):
    """The file of an entry found expired is deleted then, not left for the next prune."""
    side = FolderSide(tmp_path / "sources")
    store = side.open()
    key = await store.save_picture(_picture())
    await side.make_old("picture", key, KEEP_S + 86400)
    with pytest.raises(SourceExpired):
        await store.load_picture(key)
    assert not side.path("picture", key).exists()


async def test_the_folder_store_prunes_only_entries_older_than_a_week(tmp_path):
    """prune() deletes what was unused for a week and keeps the rest (Redis expires its
    entries by itself)."""
    side = FolderSide(tmp_path / "sources")
    store = side.open()
    old, fresh = await store.save_picture(_picture()), await store.save_kept({"prompt": "kept"})
    await side.make_old("picture", old, KEEP_S + 86400)
    assert store.prune() == 1
    assert (await store.load_kept(fresh)) == {"prompt": "kept"}


async def test_the_redis_store_out_of_reach_is_one_clear_line(tmp_path):
    """The server is down: saving says the store can't be reached, for the user to read."""
    with ValkeyProcess(tmp_path / "valkey", password="test-secret") as valkey:
        side = RedisSide(valkey.url)
        store = side.open()
        valkey.stop()
        try:
            with pytest.raises(SourcesUnavailable, match="can't be reached right now"):
                await store.save_kept(FOX)
        finally:
            await side.close()
