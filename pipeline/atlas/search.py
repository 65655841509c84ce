"""Finding artworks by name, fast enough for Discord's autocomplete (a request per keystroke).

What a person types is mostly the start of a name, sometimes misspelt. So names that contain
the typed text come first (those starting with it, then those with a word starting with it,
then any), larger artworks first among equals; then rapidfuzz's partial ratio finds near
misses. Names are normalised once (lower case, punctuation to spaces) and joined into one
text, largest artwork first: the text's own search (C speed) finds the best matches of each
kind first, and stops once the list is full.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterator, Sequence

from rapidfuzz import fuzz, process, utils

from pipeline.atlas.entries import Artwork

MIN_FUZZY_SCORE = 60  # below this a "near miss" is noise (rapidfuzz's 0-100)
# A name this much shorter than the typed text is no near miss ("C++" for "dickbutt").
MIN_LENGTH_RATIO = 0.5
# Scores above rapidfuzz's 100: names containing the typed text, by where it is in them.
STARTS, WORD_STARTS, CONTAINS = 102.0, 101.0, 100.0


def normalised(text: str) -> str:
    return utils.default_process(text)


class NameSearch:
    """Ranked name matches over one list of artworks."""

    def __init__(self, artworks: Sequence[Artwork]):
        # larger first: the order of equal matches, and the list for an empty query
        self.artworks = sorted(artworks, key=lambda a: -a.area)
        self._names = [normalised(a.name) for a in self.artworks]
        # "\n" + every name + "\n": no name holds a "\n" once normalised
        self._text = "\n" + "\n".join(self._names) + "\n"
        self._starts = []  # where each name starts in _text
        offset = 1
        for name in self._names:
            self._starts.append(offset)
            offset += len(name) + 1

    def _found(self, needle: str, skip: int) -> Iterator[int]:
        """The indices of the names holding `needle` (found `skip` characters into it), in
        list order."""
        position = self._text.find(needle)
        while position >= 0:
            yield bisect_right(self._starts, position + skip) - 1
            position = self._text.find(needle, position + 1)

    def best(self, query: str, limit: int) -> list[tuple[float, Artwork]]:
        """Up to `limit` (score, artwork), best first. Above 100 for names containing the
        query (STARTS, WORD_STARTS, CONTAINS), rapidfuzz's 0-100 for near misses."""
        text = normalised(query)
        if not text:
            return [(100.0, a) for a in self.artworks[:limit]]
        found: dict[int, float] = {}  # index: score, in the order found (best first)
        for score, needle, skip in ((STARTS, f"\n{text}", 1), (WORD_STARTS, f" {text}", 1),
                                    (CONTAINS, text, 0)):
            for index in self._found(needle, skip):
                if len(found) >= limit:
                    break
                found.setdefault(index, score)
        if len(found) < limit:
            for _, score, index in process.extract(
                    text, self._names, scorer=fuzz.partial_ratio, processor=None,
                    limit=limit + len(found), score_cutoff=MIN_FUZZY_SCORE):
                if len(found) >= limit:
                    break
                if index not in found and \
                        len(self._names[index]) >= MIN_LENGTH_RATIO * len(text):
                    found[index] = score
        return [(score, self.artworks[index]) for index, score in found.items()]

    def named(self, name: str) -> list[Artwork]:
        """The artworks whose name is `name` once normalised, larger first."""
        text = normalised(name)
        return [a for a, n in zip(self.artworks, self._names, strict=True) if n == text]
