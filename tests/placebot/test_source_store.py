"""The folder source store: pictures and prompts by content hash, kept a week after their last
use."""

import os
import time

import pytest
from PIL import Image

from placebot.source_store import FolderSourceStore, SourceExpired, kept_key

FOX = {"prompt": "a fox", "guidance": 9.0}  # what a prompted result keeps

def _picture() -> Image.Image:
    return Image.effect_noise((40, 32), 60).convert("RGB")


def _age(path, days):
    then = time.time() - days * 86400
    os.utime(path, (then, then))


async def test_a_picture_comes_back_pixel_for_pixel_under_its_content_key(tmp_path):
    """The same picture saved twice is one file, and loads back unchanged."""
    store = FolderSourceStore(tmp_path)
    picture = _picture()
    key = await store.save_picture(picture)
    assert await store.save_picture(picture) == key and len(list(tmp_path.iterdir())) == 1
    assert (await store.load_picture(key)).tobytes() == picture.tobytes()


async def test_a_prompt_is_kept_under_the_key_buttons_compute(tmp_path):
    """kept_key needs no I/O and names what save_kept kept, read back as it was."""
    store = FolderSourceStore(tmp_path)
    assert await store.save_kept(FOX) == kept_key(FOX)
    assert await store.load_kept(kept_key(FOX)) == FOX


async def test_a_picture_unused_for_a_week_has_expired(tmp_path):
    """Loading it after a week says so, and the file is gone."""
    store = FolderSourceStore(tmp_path)
    key = await store.save_picture(_picture())
    _age(tmp_path / f"{key}.png", 8)
    with pytest.raises(SourceExpired, match="has expired"):
        await store.load_picture(key)
    assert not (tmp_path / f"{key}.png").exists()


async def test_prune_removes_only_entries_older_than_a_week(tmp_path):
    store = FolderSourceStore(tmp_path)
    old, fresh = await store.save_picture(_picture()), await store.save_kept({"prompt": "kept"})
    _age(tmp_path / f"{old}.png", 8)
    assert store.prune() == 1
    assert (await store.load_kept(fresh)) == {"prompt": "kept"}


async def test_a_key_that_is_not_a_content_hash_never_becomes_a_path(tmp_path):
    """A forged key (a path, say) is refused before any file is touched."""
    with pytest.raises(ValueError, match="not a content key"):
        await FolderSourceStore(tmp_path).load_picture("../../etc/passwd")
