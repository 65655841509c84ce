"""The atlas of every year, from the files in PLACE_ATLAS_DIR, each loaded once on first use.

`python -m pipeline.download` puts one file a year there (atlas-2017.json, atlas-2022.json,
atlas-2023.json). A year whose file is missing or cannot be read is logged once and is simply
not there: the bot then works as it does without the atlas. Loading parses several MB of JSON
and builds the year's grid and name list: blocking work, so async code calls these methods
from a thread. The loaded years are shared by every thread (a lock guards the loading).
"""

from __future__ import annotations

import logging
import random
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pipeline.atlas.entries import (
    ATLAS_YEARS,
    KEY_PATTERN,
    Artwork,
    AtlasFileError,
    read_year,
)
from pipeline.atlas.index import GridIndex, Overlap
from pipeline.atlas.search import NameSearch
from pipeline.atlas.windows import artwork_crop
from pipeline.canvases import CROP_SIZE, Crop, canvas_size
from pipeline.errors import ParamError

log = logging.getLogger(__name__)

FILE_NAME = "atlas-{year}.json"
MAX_CHOICES = 25  # Discord shows at most 25 autocomplete choices
CLOSEST_SHOWN = 3  # names offered in the line refusing an unknown one
NAMED_PER_RESULT = 3  # artworks a result names (its embed and its PNG's metadata)


class AtlasMissing(ParamError):
    """No atlas file (of this year) is there: the owner has not downloaded it."""

    def __init__(self, year: str | None = None):
        which = f"the {year} r/Place Atlas" if year else "the r/Place Atlas"
        super().__init__(f"the owner of this bot has not downloaded {which}, so artworks "
                         "cannot be named here; leave artwork out")


class UnknownArtwork(ParamError):
    """No artwork has this name (or key); the message offers the closest names."""


@dataclass(frozen=True)
class YearAtlas:
    """One year's artworks, indexed by place and by name."""

    year: str
    artworks: list[Artwork]
    grid: GridIndex
    names: NameSearch
    by_key: dict[str, Artwork]

    @classmethod
    def build(cls, year: str, artworks: list[Artwork]) -> YearAtlas:
        by_key = {key: a for a in artworks if (key := a.key) is not None}
        return cls(year, artworks, GridIndex(artworks), NameSearch(list(by_key.values())),
                   by_key)


def atlas_path(folder: Path, year: str) -> Path:
    return folder / FILE_NAME.format(year=year)


class Atlas:
    """Every year's atlas in `folder`, loaded lazily. Blocking: call it from a thread."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self._years: dict[str, YearAtlas | None] = {}  # None: tried, and not there
        self._lock = threading.Lock()

    # ----- what is there
    def downloaded(self) -> bool:
        """Whether any year's file is there (a stat per year; the files are not read)."""
        return any(self._years.get(y) is not None or atlas_path(self.folder, y).is_file()
                   for y in ATLAS_YEARS)

    def year(self, year: str) -> YearAtlas | None:
        """The year's atlas, loaded on first use; None (logged once) if its file is missing
        or unreadable."""
        if year in self._years:
            return self._years[year]
        with self._lock:
            if year not in self._years:
                self._years[year] = self._load(year)
            return self._years[year]

    def load_all(self) -> None:
        """Load every year now (each still once): a bot warms up with this, in a thread, so
        that the first keystroke of an autocomplete does not wait for the files. Without any
        file, one log line says so."""
        if not self.downloaded():
            with self._lock:
                for year in ATLAS_YEARS:
                    self._years.setdefault(year, None)
            log.info("no r/Place Atlas in %s (PLACE_ATLAS_DIR): results do not name the "
                     "artworks they show, and /place artwork: is refused; python -m "
                     "pipeline.download fetches it", self.folder)
            return
        for year in ATLAS_YEARS:
            self.year(year)

    def _load(self, year: str) -> YearAtlas | None:
        path = atlas_path(self.folder, year)
        if not path.is_file():
            log.info("no %s in %s: the %s canvas's artworks are not named (python -m "
                     "pipeline.download fetches the atlas)", path.name, self.folder, year)
            return None
        try:
            read = read_year(path, year, canvas_size(year))
        except AtlasFileError as exc:
            log.warning("the %s atlas is left out: %s (delete the file and run python -m "
                        "pipeline.download again)", year, exc)
            return None
        loaded = YearAtlas.build(year, read.artworks)
        log.info("loaded the %s atlas: %d artworks on the final canvas (%d entries of %s "
                 "left out: malformed or gone by the end), %d can be picked by name",
                 year, len(read.artworks), read.skipped, path.name, len(loaded.by_key))
        return loaded

    def _loaded(self, years: Iterable[str]) -> list[YearAtlas]:
        return [atlas for year in years if (atlas := self.year(year)) is not None]

    # ----- what a crop shows
    def overlapping(self, crop: Crop, limit: int | None = NAMED_PER_RESULT
                    ) -> list[Overlap] | None:
        """The artworks the crop shows (up to `limit`), by the share of its tiles they cover;
        None without that year's atlas."""
        atlas = self.year(crop.canvas)
        if atlas is None:
            return None
        return atlas.grid.overlapping(crop.x, crop.y, CROP_SIZE)[:limit]

    # ----- naming an artwork
    def search(self, text: str, canvas: str | None = None,
               limit: int = MAX_CHOICES) -> list[Artwork]:
        """The best matches for `text` on one canvas or all (merged by score)."""
        years = (canvas,) if canvas else ATLAS_YEARS
        scored = [(score, -artwork.area, artwork.year, artwork) for atlas in self._loaded(years)
                  for score, artwork in atlas.names.best(text, limit)]
        scored.sort(key=lambda s: (-s[0], s[1], s[2]))
        return [artwork for *_, artwork in scored[:limit]]

    def artwork(self, key: str) -> Artwork:
        """The artwork a key ("2022-000012") names; UnknownArtwork if it is not (or no longer)
        in the atlas, AtlasMissing without that year's file."""
        if not re.fullmatch(KEY_PATTERN, key):
            raise UnknownArtwork(f"{key[:40]!r} names no artwork of the r/Place Atlas")
        year = key[:4]
        atlas = self.year(year)
        if atlas is None:
            raise AtlasMissing(year)
        if key not in atlas.by_key:
            raise UnknownArtwork(f"artwork {key} is not in the {year} atlas (it may have been "
                                 "removed since); pick another one")
        return atlas.by_key[key]

    def find(self, text: str, canvas: str | None = None) -> Artwork:
        """What a person named: an artwork's key (an autocomplete choice) or its exact name
        (any case; the largest of that name). UnknownArtwork names the closest matches."""
        text = text.strip()
        if re.fullmatch(KEY_PATTERN, text):
            artwork = self.artwork(text)
            if canvas is not None and artwork.year != canvas:
                raise ParamError(f"{artwork.name!r} is on the {artwork.year} canvas, not "
                                 f"{canvas}: leave canvas out, or choose {artwork.year}")
            return artwork
        years = (canvas,) if canvas else ATLAS_YEARS
        loaded = self._loaded(years)
        if not loaded:
            raise AtlasMissing(canvas)
        named = sorted((a for atlas in loaded for a in atlas.names.named(text)),
                       key=lambda a: -a.area)
        if named:
            return named[0]
        where = f"the {canvas} atlas" if canvas else "the r/Place Atlas"
        closest = [_label(a, canvas is None) for a in self.search(text, canvas, CLOSEST_SHOWN)]
        hint = (f"; closest: {'; '.join(closest)}" if closest else "")
        raise UnknownArtwork(f"no artwork named {text[:60]!r} in {where}{hint} (pick one from "
                             "the list as you type)")

    def crop_in(self, key: str, rng: random.Random) -> Crop:
        """A crop window of the artwork (see pipeline.atlas.windows)."""
        return artwork_crop(self.artwork(key), rng)


def _label(artwork: Artwork, with_year: bool) -> str:
    return f"{artwork.name} ({artwork.year})" if with_year else artwork.name
