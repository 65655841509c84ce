"""A render request on a user's picture, and what a result's buttons keep beside it (a prompt).

/dream and "Dream on this" make the source from the uploaded file
(placebot/discord_side/attachments.py),
keep it (placebot/discord_side/source_store.py) and dream on its centre square; Re-roll takes the
same
square from the kept source again, New crop another one (a random offset along the long side;
a square picture has one, and then only the seed is new). The square travels in the job itself
(RenderJob.tiles), so the render needs nothing but the job.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import replace

from PIL import Image

from pipeline.image_source import (
    ImageSourceError,
    centre_offset,
    random_offset,
    square,
    square_count,
    tiles_text,
)
from pipeline.params import RenderRequest, kept_values
from placebot import texts
from placebot.discord_side.attachments import picture_source
from placebot.discord_side.source_store import SourceStore


def on_square(request: RenderRequest, key: str, source: Image.Image,
              offset: int) -> RenderRequest:
    """The request dreaming on the source's square at `offset` (a bad offset names the range)."""
    if not (0 <= offset < square_count(source)):
        raise ImageSourceError(texts.NO_SUCH_SQUARE.format(last=square_count(source) - 1,
                                                           offset=offset))
    tiles = square(source, offset)
    return replace(request, canvas=None, x=None, y=None, picture=key, offset=offset,
                   pixel=min(source.size), tiles=tiles_text(tiles))


async def from_upload(store: SourceStore, request: RenderRequest, data: bytes) -> RenderRequest:
    """A downloaded picture made into a source (decoded in a thread, bounded), kept, and its
    centre square dreamed on."""
    source = await picture_source(data, request.pixel)
    key = await store.save_picture(source)
    # on_square encodes the square's tiles as PNG text (tens of ms): off the event loop
    return await asyncio.to_thread(on_square, request, key, source, centre_offset(source))


async def from_kept(store: SourceStore, request: RenderRequest,
                    rng: random.Random | None = None) -> RenderRequest:
    """A Re-roll (offset given) or New crop (offset drawn) of a kept picture; SourceExpired
    when it is gone."""
    key = request.picture
    if key is None:
        raise ValueError("from_kept needs a request on a picture")
    source = await store.load_picture(key)
    offset = request.offset
    if offset is None:
        offset = random_offset(source, rng or random.Random())
    return await asyncio.to_thread(on_square, request, key, source, offset)


async def with_kept(store: SourceStore, request: RenderRequest, key: str) -> RenderRequest:
    """The request with the values kept under `key` (its prompt and guidance; SourceExpired if
    gone)."""
    return replace(request, **await store.load_kept(key))


async def keep(store: SourceStore, request: RenderRequest) -> None:
    """Keep what the result's Re-roll and New crop cannot carry (pipeline.params.kept_values:
    a prompted request's prompt and guidance), under the key its buttons name."""
    values = kept_values(request)
    if values is not None:
        await store.save_kept(values)
