"""Reading one year's file of the r/Place Atlas (the atlas projects' own JSON) into Artworks.

Each entry of the file is one artwork charted by the community: an id, a name, a description,
links and an outline polygon. Two formats exist, and both are read:

- one outline per entry (the older files): `"path": [[x, y], ...]`, with `"subreddit"` as
  one string ("/r/a, /r/b"); coordinates may sit on pixel centres (571.5);
- outlines keyed by period (the current files): `"path": {"1-166, T": [[x, y], ...], ...}`,
  with `"links": {"subreddit": ["a", "b"], ...}`. A key lists, comma-separated, the canvas
  periods the outline holds for: `N` or `N-M` on the main canvas, `CODE:N-M` or a bare `CODE`
  on a variation (T: "The Final Clean", an edited copy). The outline used here is the first
  whose key covers the period of the shipped final canvas (FINAL_PERIOD), as the atlas site
  picks one for a period; an entry with none was gone by the end and is left out.

Points are floored to whole tiles (as the atlas's own formatter does) and moved from atlas
coordinates to the shipped canvas's pixel grid (ORIGIN: the 2023 atlas is centred on the
canvas). A vertex names a tile, and the tiles an outline passes through belong to it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

from pipeline.canvases import CANVAS_KEYS
from pipeline.errors import PipelineError
from pipeline.params import ARTWORK_KEY

ATLAS_YEARS = CANVAS_KEYS
# The period of each year's atlas that shows the canvas shipped in pipeline/canvas_files: the
# index of that image in the atlas site's web/_js/config.js (variationsConfig.default.versions).
FINAL_PERIOD = {
    "2017": 144,  # 1491238734, place30/1491238734-16559896.png
    "2022": 164,  # "Final Canvas", place30ex/final.png
    "2023": 254,  # "True Final Canvas", main-ex/1690314219.png
}
# Where atlas coordinate (0, 0) lies on the shipped canvas (minus config.js's canvasOffset).
ORIGIN = {"2017": (0, 0), "2022": (0, 0), "2023": (1500, 1000)}
SITE = "https://{year}.place-atlas.stefanocoding.me/"
# An artwork's key, "<year>-<atlas id>", names it in a button's custom_id (100 characters
# hold every other parameter and one key this long; the atlases' ids are 1-7 characters).
KEY_PATTERN = ARTWORK_KEY
_ID = re.compile(ARTWORK_KEY.split("-", 1)[1])
_SPAN = re.compile(r"(\d+)(?:-(\d+))?")
_SUBREDDIT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_]{1,20}")  # the atlas schema's own pattern
_SUBREDDIT_IN_TEXT = re.compile(r"(?:^|[\s,/])r/([A-Za-z0-9][A-Za-z0-9_]{1,20})")



class AtlasFileError(PipelineError):
    """A year's atlas file cannot be read as an atlas (not JSON, not a list of entries)."""


@dataclass(frozen=True, eq=False)
class Artwork:
    """One artwork as it stands on the shipped final canvas, in that canvas's pixels."""

    year: str
    id: str
    name: str
    subreddits: tuple[str, ...]
    # (points, 2) int32 tiles: a tenth of the memory of tuples (10,000 outlines of 4-1,000
    # points), and moved to a window's corner in one operation per lookup
    outline: np.ndarray
    box: tuple[int, int, int, int]  # left, top, right, bottom: inclusive, inside the canvas
    area: float  # of the outline, in tiles (its order among a year's artworks)

    @classmethod
    def on_canvas(cls, year: str, id_: str, name: str, subreddits: tuple[str, ...],
                  outline: np.ndarray, size: tuple[int, int]) -> Artwork | None:
        """The artwork with its box clipped to a canvas of `size`; None if it lies wholly
        outside the canvas."""
        width, height = size
        (left, top), (right, bottom) = outline.min(axis=0), outline.max(axis=0)
        box = (max(int(left), 0), max(int(top), 0), min(int(right), width - 1),
               min(int(bottom), height - 1))
        if box[0] > box[2] or box[1] > box[3]:
            return None
        return cls(year, id_, name, subreddits, outline, box, polygon_area(outline))

    @property
    def key(self) -> str | None:
        """"2022-000012": how a command or a button names it; None for an id too long for a
        button (such an artwork is still named in results, but cannot be picked)."""
        return f"{self.year}-{self.id}" if _ID.fullmatch(self.id) else None

    @property
    def url(self) -> str:
        """Its page on the atlas site (the site opens the entry named after the '#')."""
        return SITE.format(year=self.year) + "#" + quote(self.id, safe="")

    @property
    def width(self) -> int:
        return self.box[2] - self.box[0] + 1

    @property
    def height(self) -> int:
        return self.box[3] - self.box[1] + 1


def covers_period(key: str, period: int) -> bool:
    """Whether a period key ("1-166, T", "16-77, 80-247", "T:0-1, 144") includes `period`
    of the main canvas (a variation's periods, "CODE:..." or a bare code, do not count)."""
    for part in key.split(","):
        code, _, span = part.strip().rpartition(":")
        match = _SPAN.fullmatch(span)
        if code or match is None:
            continue
        start = int(match[1])
        end = int(match[2]) if match[2] is not None else start
        if min(start, end) <= period <= max(start, end):
            return True
    return False


def final_outline(entry: Mapping[str, Any], year: str) -> list | None:
    """The entry's outline on the final canvas: the list itself (one-outline format) or the
    first one whose period key covers FINAL_PERIOD[year]; None if the entry has none."""
    path = entry.get("path")
    if isinstance(path, list):
        return path
    if isinstance(path, dict):
        for key, outline in path.items():
            if covers_period(str(key), FINAL_PERIOD[year]):
                return outline
    return None


def subreddits_of(entry: Mapping[str, Any]) -> tuple[str, ...]:
    """Subreddit names without "r/": from links.subreddit (current format) or the
    "subreddit" text (older format). Names that are not subreddit names are left out."""
    links = entry.get("links")
    if isinstance(links, dict) and isinstance(links.get("subreddit"), list):
        names: Iterable[Any] = links["subreddit"]
    else:
        text = entry.get("subreddit")
        if not isinstance(text, str):
            return ()
        names = _SUBREDDIT_IN_TEXT.findall(text) or [text.strip()]
    return tuple(dict.fromkeys(n for n in names if isinstance(n, str) and _SUBREDDIT.fullmatch(n)))


MAX_COORDINATE = 100_000  # far past any canvas: a point beyond it is no atlas's


def to_canvas(outline: Any, year: str) -> np.ndarray | None:
    """The outline's points floored to tiles and moved onto the canvas, as (points, 2) int32;
    None if it is not a list of at least 3 [x, y] pairs of (finite, plausible) numbers."""
    if not isinstance(outline, list) or len(outline) < 3:
        return None
    try:
        points = np.array(outline, dtype=np.float64)
    except (TypeError, ValueError):  # ragged, or not numbers (text, null, nested lists)
        return None
    if points.ndim != 2 or points.shape[1] != 2 or not np.isfinite(points).all() \
            or np.abs(points).max() > MAX_COORDINATE:
        return None
    return (np.floor(points) + ORIGIN[year]).astype(np.int32)


def polygon_area(points: np.ndarray) -> float:
    """Shoelace area; at least 1 (a line of tiles still covers tiles)."""
    x: np.ndarray = points[:, 0].astype(np.float64)
    y: np.ndarray = points[:, 1].astype(np.float64)
    twice = float(x[:-1] @ y[1:] - x[1:] @ y[:-1] + x[-1] * y[0] - x[0] * y[-1])
    return max(abs(twice) / 2, 1.0)


def artwork_of(entry: Any, year: str, size: tuple[int, int]) -> Artwork | None:
    """The entry as an Artwork on a canvas of `size`; None if it is malformed, has no outline
    on the final canvas, or lies wholly outside the canvas."""
    if not isinstance(entry, dict):
        return None
    name, raw_id = entry.get("name"), entry.get("id")
    if not isinstance(name, str) or not name.strip() or isinstance(raw_id, bool) \
            or not isinstance(raw_id, int | str) or str(raw_id) == "":
        return None
    points = to_canvas(final_outline(entry, year), year)
    if points is None:
        return None
    return Artwork.on_canvas(year, str(raw_id), " ".join(name.split()), subreddits_of(entry),
                             points, size)


@dataclass(frozen=True)
class YearFile:
    """A year's artworks, and how many entries of the file were left out (malformed, or not
    on the final canvas)."""

    artworks: list[Artwork]
    skipped: int


def read_year(path: Path, year: str, size: tuple[int, int]) -> YearFile:
    """Every artwork of the final canvas in the year's file. AtlasFileError when the file is
    not an atlas at all; single malformed entries are skipped and counted."""
    if year not in FINAL_PERIOD:
        raise AtlasFileError(f"{path.name}: {year!r} is not an atlas year "
                             f"({', '.join(ATLAS_YEARS)})")
    try:
        entries = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:  # UnicodeDecodeError and JSONDecodeError included
        raise AtlasFileError(f"{path} cannot be read as JSON ({exc})") from None
    if not isinstance(entries, list):
        raise AtlasFileError(f"{path} is not an atlas: its JSON is not a list of entries")
    artworks = [a for e in entries if (a := artwork_of(e, year, size)) is not None]
    if entries and not artworks:
        raise AtlasFileError(f"{path} has {len(entries)} entries but none is an artwork of "
                             f"the final {year} canvas: is it another year's file?")
    return YearFile(artworks, len(entries) - len(artworks))
