"""Pictures whose decoded form is huge while their file is small: PNGs of one colour, written
row by row (no full-size image is ever built here), for the tests of decoding's bounds."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image

ROWS_PER_CHUNK = 4096


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(
        ">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def flat_png(width: int, height: int, *, colour_type: int = 2, bit_depth: int = 8,
             pixel: bytes = b"\x10\x80\xf0", palette: bytes | None = None,
             transparency: bytes | None = None) -> bytes:
    """A width x height PNG whose every pixel is `pixel` (its bytes as the colour type and
    depth store them: RGB 2, RGBA 6, grey 0, palette 3)."""
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    squeeze = zlib.compressobj(9)
    row = b"\x00" + pixel * width
    idat = bytearray()
    for start in range(0, height, ROWS_PER_CHUNK):
        idat += squeeze.compress(row * min(ROWS_PER_CHUNK, height - start))
    idat += squeeze.flush()
    chunks = [_chunk(b"IHDR", header)]
    if palette is not None:
        chunks.append(_chunk(b"PLTE", palette))
    if transparency is not None:
        chunks.append(_chunk(b"tRNS", transparency))
    chunks += [_chunk(b"IDAT", bytes(idat)), _chunk(b"IEND", b"")]
    return b"\x89PNG\r\n\x1a\n" + b"".join(chunks)


def strip_png(length: int = 25_000_000) -> bytes:
    """1 x `length` RGB: a few dozen KB that Pillow would store in hundreds of MB."""
    return flat_png(1, length)


def rgba_png(side: int = 5000) -> bytes:
    return flat_png(side, side, colour_type=6, pixel=b"\x10\x80\xf0\x80")


def grey16_png(side: int = 5000) -> bytes:
    return flat_png(side, side, colour_type=0, bit_depth=16, pixel=b"\x80\x00")


def palette_png(side: int = 5000) -> bytes:
    """A palette picture with a transparent colour: converted, it is RGBA."""
    return flat_png(side, side, colour_type=3, pixel=b"\x01", palette=b"\x00\x00\x00\xff\x00\x00",
                    transparency=b"\x00")


def large_jpeg(side: int = 5000) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (side, side), (200, 40, 90)).save(buffer, format="JPEG", quality=50)
    return buffer.getvalue()
