"""The r/Place Atlas's costs on this machine: loading a year, autocomplete, a result's lookup.

`python -m bench.atlas` writes a synthetic atlas in the atlas projects' current format (no
atlas data is in this repository: it is AGPL-3.0, theirs): 10,000 entries on the 2022 canvas,
as many as 2022's real atlas has, 1,500 on 2017's and 8,000 on 2023's, with outlines of 4-64
points whose sizes spread from a few tiles to a few hundred, and names made of common words.
Then, in this process:

- load: the time to read and index each year (Atlas.year: JSON, outlines, grid, names), and
  the memory the three years hold (tracemalloc: Python's and numpy's allocations, after a
  collection, in a load of its own: tracemalloc slows a load several times);
- autocomplete: what the bot's autocomplete callback runs for each keystroke (cogs.place
  .artwork_choices in a thread through asyncio.to_thread, as the callback awaits it), for
  every prefix of 300 names, 200 misspelt names and 100 random strings, on the 2022 canvas
  and on every year: median, p95, p99 and the slowest;
- lookup: the artworks a random crop shows (Atlas.overlapping), 5,000 crops;
- locator: the locator picture of a crop (pipeline.locator), 200 crops.

It prints a table and writes JSON (`--out`, default bench/results/atlas-<N>cpu.json).
Not a test: timings depend on the machine and on its load, so they are recorded, not asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import os
import platform
import random
import statistics
import string
import tempfile
import time
import tracemalloc
from pathlib import Path

from cogs.place import artwork_choices
from pipeline.atlas import Atlas
from pipeline.canvases import CROP_SIZE, Crop, crop_range
from pipeline.locator import locator_jpeg

ENTRIES = {"2017": 1500, "2022": 10000, "2023": 8000}
PERIOD_KEY = {"2017": "T:0-1, 144", "2022": "1-166, T", "2023": "1-258"}
SIZE = {"2017": (1000, 1000), "2022": (2000, 2000), "2023": (3000, 2000)}
ORIGIN = {"2017": (0, 0), "2022": (0, 0), "2023": (1500, 1000)}
_WORDS = ("flag star wars heart logo cat dog team club pixel art tower city bridge river game "
          "anime hero knight dragon moon sun crown rose tree kingdom empire union alliance "
          "university school band music stream emote meme frog duck bear fox wolf owl penguin "
          "mario zelda pokemon minecraft portal void rainbow ocean mountain castle ship train "
          "france germany spain italy poland canada brazil japan korea india ukraine ireland "
          "belgium netherlands sweden norway finland denmark turkey greece mexico chile peru")
WORDS = _WORDS.split()


def outline(rng: random.Random, year: str) -> list[list[int]]:
    """A star-shaped (so simple) polygon: 4-64 points around a centre, mostly small."""
    width, height = SIZE[year]
    radius = min(rng.lognormvariate(2.8, 0.9), 400)
    cx, cy = rng.uniform(0, width), rng.uniform(0, height)
    points = rng.randint(4, 64)
    angles = sorted(rng.uniform(0, 6.283) for _ in range(points))
    dx, dy = ORIGIN[year]
    return [[int(cx + radius * rng.uniform(0.5, 1) * math.cos(a)) - dx,
             int(cy + radius * rng.uniform(0.5, 1) * math.sin(a)) - dy] for a in angles]


def name(rng: random.Random) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(1, 4))]
    return " ".join(words).title() + (f" {rng.randint(2, 99)}" if rng.random() < 0.1 else "")


def write_synthetic(folder: Path, seed: int, scale: float = 1.0) -> dict[str, int]:
    """atlas-<year>.json for each year (ENTRIES times `scale` entries); returns each file's
    size in bytes."""
    rng = random.Random(seed)
    sizes = {}
    for year, count in ENTRIES.items():
        entries = []
        for index in range(max(1, round(count * scale))):
            shape = outline(rng, year)
            entries.append({"id": index + 1, "name": name(rng), "description": "x" * 120,
                            "links": {"subreddit": [rng.choice(WORDS) + "place"]},
                            "path": {PERIOD_KEY[year]: shape},
                            "center": {PERIOD_KEY[year]: shape[0]}})
        path = folder / f"atlas-{year}.json"
        path.write_text("[\n" + ",\n".join(json.dumps(e) for e in entries) + "\n]")
        sizes[year] = path.stat().st_size
    return sizes


def queries(rng: random.Random, names: list[str], scale: float = 1.0) -> list[str]:
    """What people type, keystroke by keystroke: prefixes, misspellings, noise."""
    typed = []
    for full in rng.sample(names, min(len(names), max(1, round(300 * scale)))):
        typed += [full[:n] for n in range(1, min(len(full), 16) + 1)]
    for full in rng.sample(names, min(len(names), max(1, round(200 * scale)))):
        chars = list(full.lower())
        spot = rng.randrange(len(chars))
        chars[spot] = rng.choice(string.ascii_lowercase)
        typed.append("".join(chars))
    typed += ["".join(rng.choice(string.ascii_lowercase + " ") for _ in range(rng.randint(2, 12)))
              for _ in range(max(1, round(100 * scale)))]
    return typed


def summary(seconds: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in seconds)
    return {"runs": len(ms), "median_ms": statistics.median(ms),
            "p95_ms": ms[int(0.95 * (len(ms) - 1))], "p99_ms": ms[int(0.99 * (len(ms) - 1))],
            "max_ms": ms[-1]}


def memory_of_loading(folder: Path) -> tuple[int, int]:
    """Bytes the three loaded years hold, and the peak while loading (tracemalloc, which
    slows loading several times: the load times are measured apart, without it)."""
    gc.collect()
    tracemalloc.start()
    atlas = Atlas(folder)
    atlas.load_all()
    gc.collect()
    held, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del atlas
    return held, peak


async def autocomplete_times(atlas: Atlas, typed: list[str], canvas: str | None) -> list[float]:
    times = []
    for text in typed:
        started = time.perf_counter()
        await asyncio.to_thread(artwork_choices, atlas, text, canvas)
        times.append(time.perf_counter() - started)
    return times


def run(seed: int, scale: float = 1.0) -> dict:
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        sizes = write_synthetic(folder, seed, scale)
        held, peak = memory_of_loading(folder)
        atlas = Atlas(folder)
        load = {}
        for year in ENTRIES:
            started = time.perf_counter()
            loaded = atlas.year(year)
            load[year] = {"seconds": time.perf_counter() - started, "file_bytes": sizes[year],
                          "artworks": len(loaded.artworks) if loaded else 0}
        names = [a.name for a in atlas.year("2022").artworks]  # type: ignore[union-attr]
        typed = queries(rng, names, scale)
        asyncio.run(autocomplete_times(atlas, typed[:50], None))  # warm: threads, caches
        autocomplete = {
            "2022": summary(asyncio.run(autocomplete_times(atlas, typed, "2022"))),
            "every year": summary(asyncio.run(autocomplete_times(atlas, typed, None))),
        }
        max_x, max_y = crop_range("2022")
        crops = [Crop("2022", rng.randint(0, max_x), rng.randint(0, max_y))
                 for _ in range(max(1, round(5000 * scale)))]
        lookups = []
        for crop in crops:
            started = time.perf_counter()
            atlas.overlapping(crop)
            lookups.append(time.perf_counter() - started)
        locator_jpeg(crops[0])  # the scaled canvas is made once: not what a result pays
        locators = []
        for crop in crops[:200]:
            started = time.perf_counter()
            locator_jpeg(crop)
            locators.append(time.perf_counter() - started)
    return {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                        "processor": platform.processor() or platform.machine(),
                        "load_average_1min": (os.getloadavg()[0] if hasattr(os, "getloadavg")
                                              else None)},
            "scale": scale, "crop_size": CROP_SIZE, "queries": len(typed), "load": load,
            "memory_mb": {"held": held / 1e6, "peak_while_loading": peak / 1e6},
            "autocomplete": autocomplete, "lookup": summary(lookups),
            "locator": summary(locators)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.atlas", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--scale", type=float, default=1.0,
                        help="entries, queries and crops times this (default: %(default)s; "
                             "0.02 checks the paths in seconds)")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON file (default: bench/results/atlas-<N>cpu.json)")
    args = parser.parse_args(argv)
    results = run(args.seed, args.scale)
    out = args.out or Path(__file__).with_name("results") / f"atlas-{os.cpu_count()}cpu.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    for year, figures in results["load"].items():
        print(f"load {year}: {figures['artworks']} artworks, {figures['file_bytes'] / 1e6:.1f} "
              f"MB of JSON in {figures['seconds']:.2f} s")
    memory = results["memory_mb"]
    print(f"memory held by the three years: {memory['held']:.0f} MB "
          f"(peak while loading {memory['peak_while_loading']:.0f} MB)")
    for label, figures in [*(("autocomplete " + k, v) for k, v in
                             results["autocomplete"].items()),
                           ("lookup a crop", results["lookup"]),
                           ("locator picture", results["locator"])]:
        print(f"{label:>24}: median {figures['median_ms']:.2f} ms, p95 "
              f"{figures['p95_ms']:.2f}, p99 {figures['p99_ms']:.2f}, max "
              f"{figures['max_ms']:.2f} ({figures['runs']} runs)")
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
