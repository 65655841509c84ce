"""Finding artworks by name, fast enough for Discord's autocomplete (a request per keystroke).

What a person types is mostly the start of a name, sometimes misspelt. So names that contain
the typed text come first (those starting with it, then those with a word starting with it,
then any), larger artworks first among equals; then rapidfuzz's weighted ratio finds near
misses. Names are normalised once (lower case, punctuation to spaces), not per keystroke.
"""

from __future__ import annotations

from collections.abc import Sequence

from rapidfuzz import fuzz, process, utils

from pipeline.atlas.entries import Artwork

MIN_FUZZY_SCORE = 60  # below this a "near miss" is noise (rapidfuzz's 0-100)
# A name this much shorter than the typed text is no near miss ("C++" for "dickbutt").
MIN_LENGTH_RATIO = 0.5


def normalised(text: str) -> str:
    return utils.default_process(text)


class NameSearch:
    """Ranked name matches over one list of artworks."""

    def __init__(self, artworks: Sequence[Artwork]):
        # larger first: the order of equal matches, and the list for an empty query
        self.artworks = sorted(artworks, key=lambda a: -a.area)
        self._names = [normalised(a.name) for a in self.artworks]
        self._padded = [f" {name}" for name in self._names]

    def best(self, query: str, limit: int) -> list[tuple[float, Artwork]]:
        """Up to `limit` (score, artwork), best first. Score 100+ for names containing the
        query (101: starts with it), rapidfuzz's 0-100 for near misses."""
        text = normalised(query)
        if not text:
            return [(100.0, a) for a in self.artworks[:limit]]
        starts, words, inside = [], [], []
        word = f" {text}"
        for index, name in enumerate(self._names):
            if text in name:
                if name.startswith(text):
                    starts.append(index)
                elif word in self._padded[index]:
                    words.append(index)
                else:
                    inside.append(index)
        found = [(102.0, i) for i in starts] + [(101.0, i) for i in words] \
            + [(100.0, i) for i in inside]
        if len(found) < limit:
            taken = {index for _, index in found}
            for _, score, index in process.extract(
                    text, self._names, scorer=fuzz.WRatio, processor=None,
                    limit=limit + len(taken), score_cutoff=MIN_FUZZY_SCORE):
                if index not in taken and \
                        len(self._names[index]) >= MIN_LENGTH_RATIO * len(text):
                    found.append((score, index))
        return [(score, self.artworks[index]) for score, index in found[:limit]]

    def named(self, name: str) -> list[Artwork]:
        """The artworks whose name is `name` once normalised, larger first."""
        text = normalised(name)
        return [a for a, n in zip(self.artworks, self._names, strict=True) if n == text]
