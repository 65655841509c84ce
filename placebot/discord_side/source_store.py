"""What a result's buttons need that does not fit in a custom_id (100 characters), kept a week.

Re-roll and New crop of a /dream result need the user's pixelated picture (the "source", a few
KB at the default 32 tiles), and those of any prompted result need the parameters marked `kept`
in pipeline/params.py (its prompt, up to 500 characters, and guidance). Both are kept under a
content hash, which is what the button carries: the same picture or prompt is stored once, and
a payload cannot name anything but a hash (a forged one finds nothing). Every use refreshes an
entry; entries unused for KEEP_S are gone, and a click after that is told its picture or prompt
has expired.

SourceStore is the interface; two implementations, chosen where the bot is built
(placebot/discord_side/client.py): FolderSourceStore keeps them in the data folder, and the
distributed
mode keeps them in Redis (placebot/distributed/sources.py), so that any bot process can serve
any result's buttons.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import logging
import os
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from PIL import Image

from pipeline.image_source import decode
from pipeline.params import CONTENT_KEY, CONTENT_KEY_CHARS, decode_kept
from placebot import texts
from placebot.messages import UserFacingError

log = logging.getLogger(__name__)

KEEP_S = 7 * 86400
PRUNE_EVERY_S = 3600.0


class SourceExpired(UserFacingError):
    """The picture or prompt a button needs is gone; the message says what to do."""


class SourceStore(Protocol):
    """Pictures and prompts by content key, each kept KEEP_S after its last save or load.
    A load of a key that is gone raises SourceExpired."""

    async def save_picture(self, source: Image.Image) -> str: ...

    async def load_picture(self, key: str) -> Image.Image: ...

    async def save_kept(self, values: Mapping[str, Any]) -> str: ...

    async def load_kept(self, key: str) -> dict[str, Any]: ...


def content_key(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:CONTENT_KEY_CHARS]


def check_key(key: str) -> str:
    """The key, if it is a content key; a forged one (a path, say) never reaches storage."""
    if not re.fullmatch(CONTENT_KEY, key):
        raise ValueError(f"not a content key: {key[:40]!r}")
    return key


def kept_key(values: Mapping[str, Any]) -> str:
    """The key a result's kept values (pipeline.params.kept_values) are kept under: a pure
    function of them, so that a result's buttons can name them without any I/O."""
    return content_key(kept_record(values))


# ----- how an entry is stored, and read back, by every implementation
def picture_record(source: Image.Image) -> bytes:
    """The source as PNG (CPU work: call it from a thread)."""
    buffer = io.BytesIO()
    source.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def kept_record(values: Mapping[str, Any]) -> bytes:
    """{name: value} as JSON, keys sorted: a prompt and guidance are stored, and keyed, as they
    were before other parameters could be kept, so older results' buttons still find them."""
    return json.dumps(dict(values), sort_keys=True).encode()


def read_picture(data: bytes | None, keep_s: float) -> Image.Image:
    """A stored picture decoded (CPU work: call it from a thread); None: it has expired."""
    if data is None:
        raise SourceExpired(texts.PICTURE_EXPIRED.format(days=keep_s / 86400))
    return decode(data)


def read_kept(data: bytes | None, keep_s: float) -> dict[str, Any]:
    """Stored kept values read back and typed; None: they have expired."""
    if data is None:
        raise SourceExpired(texts.PROMPT_EXPIRED.format(days=keep_s / 86400))
    return decode_kept(json.loads(data))


class FolderSourceStore:
    """The SourceStore in a folder (the bot's data folder): a file per entry, its mtime the
    last use; unused ones are pruned now and then. Files and PNG coding are handled in a
    thread."""

    def __init__(self, folder: Path, *, keep_s: float = KEEP_S):
        self.folder = Path(folder)
        self.keep_s = keep_s
        self._last_prune = 0.0

    async def save_picture(self, source: Image.Image) -> str:
        """Keep the pixelated source; return its key."""
        return await asyncio.to_thread(lambda: self._save(picture_record(source), ".png"))

    async def load_picture(self, key: str) -> Image.Image:
        """The source under `key`; SourceExpired once it is gone."""
        return await asyncio.to_thread(
            lambda: read_picture(self._load(key, ".png"), self.keep_s))

    # ".prompt.json": the name kept values had when only a prompt and guidance were kept
    async def save_kept(self, values: Mapping[str, Any]) -> str:
        return await asyncio.to_thread(self._save, kept_record(values), ".prompt.json")

    async def load_kept(self, key: str) -> dict[str, Any]:
        data = await asyncio.to_thread(self._load, key, ".prompt.json")
        return read_kept(data, self.keep_s)

    # ----- files
    def _path(self, key: str, suffix: str) -> Path:
        return self.folder / f"{check_key(key)}{suffix}"  # never a path from outside

    def _save(self, data: bytes, suffix: str) -> str:
        key = content_key(data)
        path = self._path(key, suffix)
        self.folder.mkdir(parents=True, exist_ok=True)
        if path.is_file():
            os.utime(path)  # the same content again: it lives another KEEP_S
        else:  # written whole, then renamed: a crash never leaves half a file under the key
            partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            partial.write_bytes(data)
            partial.replace(path)
        self.prune_now_and_then()
        return key

    def _load(self, key: str, suffix: str) -> bytes | None:
        path = self._path(key, suffix)
        try:
            if time.time() - path.stat().st_mtime > self.keep_s:
                path.unlink(missing_ok=True)
                return None
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        os.utime(path)
        return data

    def prune_now_and_then(self) -> int:
        """prune(), at most once per PRUNE_EVERY_S (saves call it)."""
        if time.monotonic() - self._last_prune < PRUNE_EVERY_S and self._last_prune:
            return 0
        self._last_prune = time.monotonic()
        return self.prune()

    def prune(self) -> int:
        """Delete entries unused for keep_s; return how many."""
        if not self.folder.is_dir():
            return 0
        cutoff = time.time() - self.keep_s
        removed = 0
        for path in self.folder.iterdir():
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:  # pruned meanwhile by another thread
                continue
        if removed:
            log.info("pruned %d picture(s) and prompt(s) unused for %g days", removed,
                     self.keep_s / 86400)
        return removed
