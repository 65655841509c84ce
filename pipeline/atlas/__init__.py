"""The r/Place Atlas: the community's chart of every artwork of the canvases, by name and
outline. Which artworks a crop shows, and a crop drawn inside a named artwork.

The data is the atlas projects' own (AGPL-3.0), not part of this repository: `python -m
pipeline.download` fetches it into PLACE_ATLAS_DIR (docs/atlas.md). Modules: entries (reading
a year's file, both of its formats), index (the grid, and an outline's tiles), search (names),
windows (a crop inside an artwork), store (the years, loaded once), download (the pinned files).
No torch and no Discord in here.
"""

from pipeline.atlas.entries import ATLAS_YEARS, KEY_PATTERN, Artwork, AtlasFileError
from pipeline.atlas.index import Overlap
from pipeline.atlas.store import (
    MAX_CHOICES,
    NAMED_PER_RESULT,
    Atlas,
    AtlasMissing,
    UnknownArtwork,
)

__all__ = ["ATLAS_YEARS", "KEY_PATTERN", "MAX_CHOICES", "NAMED_PER_RESULT", "Artwork", "Atlas",
           "AtlasFileError", "AtlasMissing", "Overlap", "UnknownArtwork"]
