"""The Redis source store on a real server: the folder store's contract, shared by every bot
process, each entry expiring a week after its last use."""

from __future__ import annotations

import pytest
from PIL import Image

from placebot.redisqueue import keys
from placebot.redisqueue.connection import connect
from placebot.redisqueue.sources import RedisSourceStore, SourcesUnavailable
from placebot.source_store import KEEP_S, SourceExpired, kept_key

FOX = {"prompt": "a fox", "guidance": 9.0}  # what a prompted result keeps

def _picture() -> Image.Image:
    return Image.effect_noise((40, 32), 60).convert("RGB")


@pytest.fixture
async def client(valkey):
    client = connect(valkey.url)
    yield client
    await client.aclose()


@pytest.fixture
async def other_client(valkey):
    """Another connection, as another bot process would have."""
    client = connect(valkey.url)
    yield client
    await client.aclose()


async def test_a_picture_saved_by_one_process_loads_in_another(client, other_client):
    """Pixel for pixel, under the same content key as the folder store would give it."""
    picture = _picture()
    key = await RedisSourceStore(client).save_picture(picture)
    assert (await RedisSourceStore(other_client).load_picture(key)).tobytes() \
        == picture.tobytes()


async def test_a_prompt_is_kept_under_the_key_buttons_compute(client):
    """kept_key needs no I/O and names what save_kept kept, read back as it was."""
    store = RedisSourceStore(client)
    assert await store.save_kept(FOX) == kept_key(FOX)
    assert await store.load_kept(kept_key(FOX)) == FOX


async def test_an_entry_expires_a_week_after_it_was_saved(client):
    """A saved picture's key carries a one-week expiry."""
    key = await RedisSourceStore(client).save_picture(_picture())
    ttl_ms = await client.pttl(keys.source_picture(key))
    assert KEEP_S * 1000 - 60_000 < ttl_ms <= KEEP_S * 1000


async def test_a_load_renews_the_week(client):
    """An entry near its end is given a full week again by a load."""
    store = RedisSourceStore(client)
    key = await store.save_kept(FOX)
    await client.pexpire(keys.source_prompt(key), 5_000)
    await store.load_kept(key)
    assert await client.pttl(keys.source_prompt(key)) > KEEP_S * 1000 - 60_000


async def test_a_gone_picture_has_expired(client):
    """Once Redis has dropped it, loading it says it has expired and what to do."""
    store = RedisSourceStore(client)
    key = await store.save_picture(_picture())
    await client.delete(keys.source_picture(key))
    with pytest.raises(SourceExpired, match="picture of this result has expired"):
        await store.load_picture(key)


async def test_a_key_that_is_not_a_content_hash_is_refused(client):
    """A forged key never names a Redis key."""
    with pytest.raises(ValueError, match="not a content key"):
        await RedisSourceStore(client).load_picture("place:job:x")


async def test_redis_out_of_reach_is_one_clear_line(client, valkey):
    """The server is down: saving says the store can't be reached, for the user to read."""
    valkey.stop()
    with pytest.raises(SourcesUnavailable, match="can't be reached right now"):
        await RedisSourceStore(client).save_kept(FOX)
