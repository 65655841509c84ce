"""Finding artworks by name for autocomplete: what was typed first, near misses after."""

from pipeline.atlas.search import NameSearch
from tests.pipeline.atlas.test_index import artwork


def named(*names):
    return NameSearch([artwork([[0, 0], [10 + i, 0], [10 + i, 10 + i]], name, str(i))
                       for i, name in enumerate(names)])


def names(found):
    return [a.name for _, a in found]


def test_names_starting_with_the_text_come_first_then_word_starts_then_any():
    search = named("The Star Wars Poster", "Starry Night", "Rockstar", "Star Wars")
    assert names(search.best("star", 25)) == ["Star Wars", "Starry Night",
                                              "The Star Wars Poster", "Rockstar"]


def test_a_misspelt_name_is_found():
    """A typo is no substring, but rapidfuzz's ratio finds the name."""
    search = named("Star Wars", "Flag of France", "Tux")
    assert names(search.best("star wras", 25))[0] == "Star Wars"


def test_case_and_punctuation_do_not_matter():
    search = named("Bad Apple!!", "Apple")
    assert names(search.best("BAD APPLE", 25))[0] == "Bad Apple!!"
    assert [a.name for a in search.named("bad apple")] == ["Bad Apple!!"]


def test_a_much_shorter_name_is_no_near_miss():
    """"C++" (normalised "c") is not offered for "dickbutt"."""
    assert "C++" not in names(named("C++", "Dickbutt").best("dickbutt", 25))


def test_no_text_lists_the_largest_artworks_and_the_limit_holds():
    search = named(*(f"Artwork {i}" for i in range(40)))
    found = search.best("", 25)
    assert len(found) == 25 and names(found)[0] == "Artwork 39"
    assert len(search.best("artwork", 25)) == 25
