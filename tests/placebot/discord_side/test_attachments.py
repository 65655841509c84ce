"""Fetching an attached picture: declared size first, a capped stream, a bounded decode."""

import asyncio
import io
import threading
from dataclasses import dataclass

import discord
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from PIL import Image

from pipeline.image_source import ImageSourceError
from placebot.discord_side import attachments
from placebot.discord_side.attachments import (
    MB,
    AttachmentRefused,
    download,
    is_discord_media,
    picture_source,
)


@dataclass
class Attached:
    filename: str
    size: int
    url: str
    content_type: str | None = "image/png"


def _png(size=(64, 48)) -> bytes:
    buffer = io.BytesIO()
    Image.effect_noise(size, 50).convert("RGB").save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
async def cdn(monkeypatch):
    """A stand-in for Discord's CDN on 127.0.0.1: serves `files`, counts requests and bytes.
    discord.py is pointed at it, as at a fake Discord: only Discord's hosts are fetched from."""
    # stall: an asyncio.Event; redirects: a name → the URL it is redirected to
    state = {"files": {}, "requests": 0, "sent": 0, "stall": None, "redirects": {}}

    async def serve(request):
        state["requests"] += 1
        state.setdefault("paths", []).append(request.path)
        if request.match_info["name"] in state["redirects"]:
            raise web.HTTPFound(state["redirects"][request.match_info["name"]])
        body = state["files"].get(request.match_info["name"])
        if body is None:
            return web.Response(status=404)
        response = web.StreamResponse()
        await response.prepare(request)
        if state["stall"] is not None:  # headers sent, then no body until the event is set
            await state["stall"].wait()
        for start in range(0, len(body), 64 * 1024):
            piece = body[start:start + 64 * 1024]
            try:
                await response.write(piece)
            except ConnectionError:
                break
            state["sent"] += len(piece)
        return response

    app = web.Application()
    app.router.add_get("/attachments/{name}", serve)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    monkeypatch.setattr(discord.http.Route, "BASE", str(server.make_url("/api/v10")))
    state["url"] = lambda name: str(server.make_url(f"/attachments/{name}"))
    yield state
    await server.close()


async def test_an_attachment_within_the_limit_is_fetched_whole(cdn):
    """A small PNG arrives byte for byte."""
    data = cdn["files"]["a.png"] = _png()
    assert await download(Attached("a.png", len(data), cdn["url"]("a.png")), 8) == data


async def test_a_declared_size_over_the_limit_is_refused_before_any_download(cdn):
    """A file that says it is 9 MB is refused at 8 MB without a request to the CDN."""
    cdn["files"]["big.png"] = _png()
    with pytest.raises(AttachmentRefused, match=r"big\.png is 9\.0 MB; this bot takes images "
                       r"up to 8 MB"):
        await download(Attached("big.png", 9 * MB, cdn["url"]("big.png")), 8)
    assert cdn["requests"] == 0


async def test_a_download_is_cut_once_it_passes_the_limit(cdn):
    """A file that declares 1 KB but streams 3 MB is refused once past 1 MB."""
    cdn["files"]["liar.png"] = b"\0" * (3 * MB)
    with pytest.raises(AttachmentRefused, match="larger than 1 MB"):
        await download(Attached("liar.png", 1024, cdn["url"]("liar.png")), 1)


async def test_a_file_that_is_not_an_image_is_refused_by_its_type(cdn):
    """A declared content type other than image/* is refused before the download."""
    with pytest.raises(AttachmentRefused, match=r"notes.txt is not an image \(text/plain\)"):
        await download(Attached("notes.txt", 10, cdn["url"]("notes.txt"), "text/plain"), 8)
    assert cdn["requests"] == 0


async def test_a_failed_fetch_says_so(cdn):
    """An HTTP error from the CDN is one plain sentence with the status."""
    with pytest.raises(AttachmentRefused, match="HTTP 404"):
        await download(Attached("gone.png", 10, cdn["url"]("gone.png")), 8)


async def test_the_picture_becomes_a_pixelated_source():
    """A 64x48 picture at pixel 16 gives a 21x16 source (its long side kept)."""
    source = await picture_source(_png((64, 48)), 16)
    assert source.size == (21, 16)


async def test_an_undecodable_file_raises_the_engines_error():
    """Bytes that are no image give the image source's own error, for the user to read."""
    with pytest.raises(ImageSourceError, match="not an image"):
        await picture_source(b"GIF89a but not really", 32)


async def test_a_decode_that_hangs_is_abandoned_after_its_timeout(monkeypatch):
    """A decode that does not finish in time is refused; the event loop is never blocked."""
    release = threading.Event()
    monkeypatch.setattr(attachments, "_decode_and_pixelate", lambda data, pixel: release.wait())
    try:
        with pytest.raises(AttachmentRefused, match=r"took more than 0\.05 s"):
            await picture_source(b"", 32, timeout_s=0.05)
    finally:
        release.set()


async def test_a_url_off_discords_media_servers_is_never_requested(cdn):
    """A picture URL on another host (here the same server named localhost) is refused
    without a request."""
    data = cdn["files"]["a.png"] = _png()
    elsewhere = cdn["url"]("a.png").replace("127.0.0.1", "localhost")
    with pytest.raises(AttachmentRefused, match="not on Discord's media servers"):
        await download(Attached("a.png", len(data), elsewhere), 8)
    assert cdn["requests"] == 0


def test_discords_cdn_and_media_proxy_are_its_media_servers():
    """Discord's CDN and proxy over https are accepted; look-alikes and plain http are not."""
    assert is_discord_media("https://cdn.discordapp.com/attachments/1/2/a.png")
    assert is_discord_media("https://images-ext-1.discordapp.net/external/x/https/evil.example")
    assert not is_discord_media("https://evil.example/cdn.discordapp.com/a.png")
    assert not is_discord_media("https://cdn.discordapp.com.evil.example/a.png")
    assert not is_discord_media("http://media.discordapp.net/a.png")


async def test_a_redirect_off_discords_media_servers_is_not_followed(cdn):
    """The CDN answers with a redirect to another host: the bot does not go there (it
    followed any redirect; only the first URL was checked) and refuses in one line."""
    data = cdn["files"]["a.png"] = _png()
    cdn["redirects"]["moved.png"] = cdn["url"]("a.png").replace("127.0.0.1", "localhost")
    with pytest.raises(AttachmentRefused, match="not on Discord's media servers"):
        await download(Attached("moved.png", len(data), cdn["url"]("moved.png")), 8)
    assert cdn["paths"] == ["/attachments/moved.png"]


async def test_a_redirect_within_discords_media_servers_is_followed(cdn):
    """A redirect to another path on Discord's servers is followed, and checked the same."""
    data = cdn["files"]["a.png"] = _png()
    cdn["redirects"]["moved.png"] = cdn["url"]("a.png")
    assert await download(Attached("moved.png", len(data), cdn["url"]("moved.png")), 8) == data
    assert cdn["paths"] == ["/attachments/moved.png", "/attachments/a.png"]


async def test_decodes_given_up_on_do_not_pile_up_threads(monkeypatch):
    """Eight decodes that never end, each abandoned after its timeout: they occupy at most
    MAX_DECODES threads (each took a thread of its own), and the later ones are refused
    from the line without a thread."""
    release = threading.Event()
    monkeypatch.setattr(attachments, "_decode_and_pixelate", lambda data, pixel: release.wait())
    before = threading.active_count()
    try:
        outcomes = await asyncio.gather(*(picture_source(b"", 32, timeout_s=0.05, line_s=0.2)
                                          for _ in range(8)), return_exceptions=True)
        grown = threading.active_count() - before
    finally:
        release.set()
    assert all(isinstance(o, AttachmentRefused) for o in outcomes)
    assert grown <= attachments.MAX_DECODES
    assert sum("busy decoding other pictures" in str(o) for o in outcomes) >= 8 - 2
