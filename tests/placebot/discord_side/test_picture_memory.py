"""Decoding's memory, bounded: pictures whose files are small and whose decoded forms are
huge, sent at once, keep the bot within a gigabyte of where it idles."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support import big_pictures
from tests.support.patience import PATIENCE_S

ROOT = Path(__file__).resolve().parents[3]
GB = 1024**3


def test_ten_worst_case_pictures_at_once_stay_under_a_gigabyte_above_idle(tmp_path):
    """Ten pictures at once, two of each worst case (a 1x25,000,000 strip, 5000x5000 RGBA,
    16-bit grey, palette with a transparent colour, JPEG): every one gets a source or one
    line saying why, and the process's peak stays under 1 GB above idle (six strips alone
    took it from 361 MB to 3.2 GB)."""
    makers = [big_pictures.strip_png, big_pictures.rgba_png, big_pictures.grey16_png,
              big_pictures.palette_png, big_pictures.large_jpeg]
    paths = []
    for n, make in enumerate(makers * 2):
        path = tmp_path / f"{n}-{make.__name__}"
        path.write_bytes(make())
        paths.append(str(path))
    done = subprocess.run([sys.executable, "-m", "tests.support.decode_burst", *paths],
                          cwd=ROOT, capture_output=True, text=True, timeout=PATIENCE_S,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    outcomes = report["outcomes"]
    assert all(o.startswith(("source", "ImageSourceError")) for o in outcomes), outcomes
    assert sum(o.startswith("source") for o in outcomes) == 8  # the strips are refused
    assert report["peak"] - report["idle"] < GB, report
    print(f"idle {report['idle'] / 2**20:.0f} MiB, peak {report['peak'] / 2**20:.0f} MiB")
