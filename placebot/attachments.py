"""Fetching the picture a user attached, and turning it into a source, within bounds.

Only a picture that Discord put in the interaction is fetched: an attachment of /dream, or the
attachment or embedded image of the message "Dream on this" was used on. Its URL comes from
Discord's payload, never from text a user typed, and it must be on Discord's own media servers
(is_discord_media): the bot never sends a request to a host a user chose. Its declared size
is checked against PLACE_IMAGE_MAX_MB before any byte is downloaded, and the download stops as
soon as it passes that size anyway (a declared size is a claim). Decoding runs in a thread
with a timeout, so a slow or hostile file never holds the event loop.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

import aiohttp
import discord
from PIL import Image

from pipeline.image_source import decode, pixelate
from placebot.messages import UserFacingError

MB = 1024 * 1024
CHUNK = 64 * 1024
DOWNLOAD_TIMEOUT_S = 30.0
DECODE_TIMEOUT_S = 20.0


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
        raise AttachmentRefused(f"{attachment.filename} is {attachment.size / MB:.1f} MB; "
                                f"this bot takes images up to {max_mb:g} MB")
    kind = attachment.content_type
    if kind is not None and not kind.startswith("image/"):
        raise AttachmentRefused(f"{attachment.filename} is not an image ({kind})")


async def download(attachment: AttachedFile, max_mb: float, *,
                   timeout_s: float = DOWNLOAD_TIMEOUT_S) -> bytes:
    """The file's bytes; AttachmentRefused once more than max_mb arrive or the fetch fails."""
    check_declared(attachment, max_mb)
    if not is_discord_media(attachment.url):
        raise AttachmentRefused(f"{attachment.filename} is not on Discord's media servers, the "
                                "only place this bot fetches pictures from")
    limit = int(max_mb * MB)
    received = bytearray()
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session, \
                session.get(attachment.url) as response:
            if response.status != 200:
                raise AttachmentRefused(f"{attachment.filename} could not be fetched from "
                                        f"Discord (HTTP {response.status}); try again")
            async for chunk in response.content.iter_chunked(CHUNK):
                received += chunk
                if len(received) > limit:
                    raise AttachmentRefused(f"{attachment.filename} is larger than "
                                            f"{max_mb:g} MB, the most this bot takes")
    except (aiohttp.ClientError, TimeoutError, asyncio.TimeoutError):  # two classes before 3.11
        raise AttachmentRefused(f"{attachment.filename} could not be fetched from Discord; "
                                "try again") from None
    return bytes(received)


async def picture_source(data: bytes, pixel: int, *,
                         timeout_s: float = DECODE_TIMEOUT_S) -> Image.Image:
    """The pixelated source of a downloaded picture (pipeline.image_source), decoded in a
    thread. A decode past the timeout is abandoned (its thread finishes on its own)."""
    try:
        return await asyncio.wait_for(asyncio.to_thread(_decode_and_pixelate, data, pixel),
                                      timeout_s)
    except (TimeoutError, asyncio.TimeoutError):  # two classes before Python 3.11
        raise AttachmentRefused(f"the image took more than {timeout_s:g} s to decode; "
                                "try a smaller or simpler one") from None


def _decode_and_pixelate(data: bytes, pixel: int) -> Image.Image:
    return pixelate(decode(data), pixel)
