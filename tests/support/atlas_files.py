"""A small synthetic r/Place Atlas, written by the tests in the atlas projects' own formats.

No atlas data is in this repository (it is AGPL-3.0, the atlas projects' own): these entries
are made up, placed on the shipped canvases where the tests want them. 2022 and 2023 use the
current format (outlines keyed by period, 2023's coordinates centred on the canvas); 2017 the
older one (one outline per entry, on pixel centres, the subreddit as text).
"""

from __future__ import annotations

import json
from pathlib import Path

# A "U" on the 2022 canvas: outer tiles x 100-163, y 100-163; its notch (x 116-147, y 116-163)
# is outside it. 64 * 64 - 32 * 48 = 2560 tiles.
U_SHAPE = [[100, 100], [163, 100], [163, 163], [148, 163], [148, 115], [115, 115],
           [115, 163], [100, 163]]
U_TILES = 2560
STAR_WARS = [[571, 698], [671, 698], [671, 844], [570, 843]]  # as the real atlas charts it


def entry(id_, name, outlines, *, subreddits=(), centre=None):
    """One entry of the current format; `outlines` maps period keys to outlines."""
    first = next(iter(outlines.values()))
    centre = centre or first[0]
    return {"id": id_, "name": name, "description": "", "links":
            {"subreddit": list(subreddits)} if subreddits else {},
            "path": outlines, "center": {key: centre for key in outlines}}


def entries_2022():
    return [
        entry("000012", "Star Wars", {"1-166, T": STAR_WARS}, subreddits=["starwars_place"]),
        entry("u1", "Concave U", {"1-166, T": U_SHAPE}, subreddits=["u_place"]),
        # moved during the event: only its outline of the final period counts
        entry("mover", "Wandering Frog", {"1-50": [[1500, 1500], [1520, 1500], [1520, 1520]],
                                          "51-166, T": [[300, 300], [340, 300], [340, 340],
                                                        [300, 340]]}),
        entry("gone", "Painted Over", {"1-100": [[400, 400], [440, 400], [440, 440]]}),
        entry("tfc", "Only In The Final Clean", {"T:0-1": [[500, 500], [540, 500], [540, 540]]}),
        entry("tiny", "Tiny Heart", {"109-166": [[1800, 1800], [1809, 1800], [1809, 1805],
                                                 [1800, 1805]]}),
        entry("be1", "Flag of Belgium", {"1-166": [[200, 600], [240, 600], [240, 640],
                                                   [200, 640]]}),
        entry("be2", "Flag of Belgium", {"1-166": [[900, 600], [920, 600], [920, 620],
                                                   [900, 620]]}),
        entry("corner", "Corner Piece", {"1-166": [[1990, 1990], [1999, 1990], [1999, 1999],
                                                   [1960, 1999]]}),
        {"id": "broken", "name": "No Outline", "path": {"1-166": [[1, 2]]}, "center": {}},
    ]


def entries_2023():
    # atlas coordinates: (0, 0) is the canvas's centre, (1500, 1000) on the shipped image
    return [entry(4, "Bad Apple!!", {"2-258": [[147, 203], [147, 230], [203, 230],
                                               [203, 172], [160, 172], [160, 203]]},
                  subreddits=["touhou", "osuplace"])]


def entries_2017_older_format():
    return [{"id": 0, "name": "Tux (Linux Mascot)", "description": "",
             "website": "", "subreddit": "/r/linux, /r/archlinux",
             "center": [862.5, 449.5],
             "path": [[838.5, 415.5], [838.5, 483.5], [886.5, 483.5], [886.5, 415.5]]}]


def write_atlas(folder: Path, years=("2017", "2022", "2023")) -> Path:
    """atlas-<year>.json for each year, in `folder` (created)."""
    folder.mkdir(parents=True, exist_ok=True)
    made = {"2017": entries_2017_older_format, "2022": entries_2022, "2023": entries_2023}
    for year in years:
        (folder / f"atlas-{year}.json").write_text(json.dumps(made[year]()))
    return folder
