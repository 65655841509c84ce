"""Fetching the picture a user attached, and turning it into a source, within bounds.

Only a picture that Discord put in the interaction is fetched: an attachment of /dream, or the
attachment or embedded image of the message "Dream on this" was used on. Its URL comes from
Discord's payload, never from text a user typed, and it must be on Discord's own media servers
(is_discord_media): the bot never sends a request to a host a user chose. Its declared size
is checked against PLACE_IMAGE_MAX_MB before any byte is downloaded, and the download stops as
soon as it passes that size anyway (a declared size is a claim). No redirect is followed off
Discord's media servers: each hop is checked as the first URL is. Decoding runs on
MAX_DECODES threads of its own, so that pictures sent at once are decoded a few at a time
(each bounded in memory by pipeline.image_source), with a timeout: a slow or hostile file
never holds the event loop, and a decode given up on keeps its thread until it ends, so that
abandoned decodes cannot pile up. Whatever a file holds, its user gets the picture or one
line saying why.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urljoin, urlsplit

import aiohttp
import discord
from PIL import Image

from pipeline.image_source import ImageSourceError, decode, pixelate
from placebot import texts
from placebot.messages import UserFacingError

log = logging.getLogger(__name__)

MB = 1024 * 1024
CHUNK = 64 * 1024
DOWNLOAD_TIMEOUT_S = 30.0
MAX_REDIRECTS = 3  # hops followed, each one on Discord's media servers
DECODE_TIMEOUT_S = 20.0  # for the decode itself, once it has a thread
DECODE_LINE_S = 30.0  # the longest a picture waits for a thread, behind others
# Pictures decoded at once: each takes up to ~2x pipeline.image_source.MAX_DECODED_BYTES at
# its peak, so a burst of worst-case pictures stays well under a gigabyte.
MAX_DECODES = 2
_DECODERS = concurrent.futures.ThreadPoolExecutor(MAX_DECODES, thread_name_prefix="decode")
REDIRECTS = (301, 302, 303, 307, 308)


class AttachedFile(Protocol):
    """What is read of a discord.Attachment."""

    filename: str
    size: int
    url: str
    content_type: str | None


class AttachmentRefused(UserFacingError):
    """The attached file cannot be used; the message says why."""


@dataclass
class EmbeddedImage:
    """An image shown in a message's embed, as Discord's media proxy serves it (AttachedFile)."""

    url: str
    filename: str = "the embedded image"
    size: int = 0  # unknown before the download: only the streaming cap applies
    content_type: str | None = None


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".gif")


def is_discord_media(url: str) -> bool:
    """True for an https URL on Discord's CDN or media proxy (discordapp.com / .net), or on
    the host this client reaches Discord's API at (a test's local stand-in for Discord)."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme == "https" and (host.endswith(".discordapp.com")
                                    or host.endswith(".discordapp.net")):
        return True
    api = urlsplit(discord.http.Route.BASE)
    return (parts.scheme, host, parts.port) == (api.scheme, api.hostname, api.port)


def picture_of(message: discord.Message) -> AttachedFile | None:
    """The first image attachment of a message, else its first embedded image, else None.

    An embedded image is fetched only through its proxy_url, never its url: the message
    object comes from Discord, and proxy_url points at Discord's media proxy, which fetched
    the image from wherever a user linked it. So the bot talks to Discord alone: the user's
    host never sees the bot's address, and a link to an internal address (this machine, a
    private network) reaches nothing of ours."""
    for attachment in message.attachments:
        kind = attachment.content_type or ""
        if kind.startswith("image/") or attachment.filename.lower().endswith(IMAGE_SUFFIXES):
            return attachment
    for embed in message.embeds:
        for shown in (embed.image, embed.thumbnail):
            if shown.proxy_url:
                return EmbeddedImage(shown.proxy_url)
    return None


def check_declared(attachment: AttachedFile, max_mb: float) -> None:
    """Refuse, before downloading, a file that says it is too large or not an image."""
    if attachment.size > max_mb * MB:
        raise AttachmentRefused(texts.FILE_TOO_LARGE_DECLARED.format(
            filename=attachment.filename, size_mb=attachment.size / MB, max_mb=max_mb))
    kind = attachment.content_type
    if kind is not None and not kind.startswith("image/"):
        raise AttachmentRefused(texts.FILE_NOT_AN_IMAGE.format(filename=attachment.filename,
                                                                kind=kind))


async def download(attachment: AttachedFile, max_mb: float, *,
                   timeout_s: float = DOWNLOAD_TIMEOUT_S) -> bytes:
    """The file's bytes; AttachmentRefused once more than max_mb arrive or the fetch fails."""
    check_declared(attachment, max_mb)
    if not is_discord_media(attachment.url):
        raise AttachmentRefused(texts.FILE_NOT_ON_DISCORD.format(filename=attachment.filename))
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            return await _fetch(session, attachment, max_mb)
    except (aiohttp.ClientError, TimeoutError):
        raise AttachmentRefused(texts.FILE_NOT_FETCHED.format(
            filename=attachment.filename)) from None


async def _fetch(session: aiohttp.ClientSession, attachment: AttachedFile,
                 max_mb: float) -> bytes:
    """The bytes at the attachment's URL. Redirects are followed by hand, at most
    MAX_REDIRECTS, each only to Discord's media servers (aiohttp would follow any)."""
    url = attachment.url
    for _hop in range(MAX_REDIRECTS + 1):
        async with session.get(url, allow_redirects=False) as response:
            if response.status in REDIRECTS:
                url = urljoin(url, response.headers.get("Location", ""))
                if not is_discord_media(url):
                    log.warning("the download of %s was redirected off Discord's media "
                                "servers, to %s; not followed", attachment.filename,
                                urlsplit(url).hostname)
                    raise AttachmentRefused(texts.FILE_NOT_ON_DISCORD.format(
                        filename=attachment.filename))
                continue
            if response.status != 200:
                raise AttachmentRefused(texts.FILE_NOT_FETCHED_HTTP.format(
                    filename=attachment.filename, status=response.status))
            return await _read_within(response, attachment, max_mb)
    raise AttachmentRefused(texts.FILE_TOO_MANY_REDIRECTS.format(
        filename=attachment.filename, redirects=MAX_REDIRECTS))


async def _read_within(response: aiohttp.ClientResponse, attachment: AttachedFile,
                       max_mb: float) -> bytes:
    limit = int(max_mb * MB)
    received = bytearray()
    async for chunk in response.content.iter_chunked(CHUNK):
        received += chunk
        if len(received) > limit:
            raise AttachmentRefused(texts.FILE_TOO_LARGE.format(filename=attachment.filename,
                                                                max_mb=max_mb))
    return bytes(received)


async def picture_source(data: bytes, pixel: int, *, timeout_s: float = DECODE_TIMEOUT_S,
                         line_s: float = DECODE_LINE_S) -> Image.Image:
    """The pixelated source of a downloaded picture (pipeline.image_source), decoded on one
    of the MAX_DECODES decoding threads: it waits at most line_s for one, then decodes for
    at most timeout_s. A decode past its timeout is abandoned (it keeps its thread until it
    ends, so abandoned decodes never add threads)."""
    loop = asyncio.get_running_loop()
    started = asyncio.Event()

    def decode_here() -> Image.Image:
        loop.call_soon_threadsafe(started.set)
        return _decode_and_pixelate(data, pixel)

    decoding = loop.run_in_executor(_DECODERS, decode_here)
    decoding.add_done_callback(_collect)
    try:
        await asyncio.wait_for(started.wait(), line_s)
    except TimeoutError:
        decoding.cancel()  # still in line: it never starts
        raise AttachmentRefused(texts.DECODERS_BUSY) from None
    try:
        return await asyncio.wait_for(asyncio.shield(decoding), timeout_s)
    except TimeoutError:
        raise AttachmentRefused(texts.DECODE_TOO_SLOW.format(timeout_s=timeout_s)) from None


def _collect(decoding: asyncio.Future) -> None:
    """Take the outcome of a decode nobody may be waiting for (one given up on)."""
    if not decoding.cancelled():
        decoding.exception()


def _decode_and_pixelate(data: bytes, pixel: int) -> Image.Image:
    """Any failure of a file is the user's line (ImageSourceError); one nobody foresaw is
    also logged, for the owner."""
    try:
        return pixelate(decode(data, min_short=pixel), pixel)
    except ImageSourceError:
        raise
    except MemoryError:
        raise ImageSourceError(texts.IMAGE_TOO_LARGE_TO_DECODE) from None
    except Exception as exc:
        log.warning("a picture could not be decoded (%r); its user is told it is damaged", exc)
        raise ImageSourceError(texts.IMAGE_DAMAGED) from None
