"""bench/atlas.py runs end to end on a small synthetic atlas (its timings are not asserted)."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_atlas_bench_runs_and_writes_every_figure(tmp_path):
    """--scale 0.02: every section runs and lands in the JSON."""
    out = tmp_path / "atlas.json"
    done = subprocess.run([sys.executable, "-m", "bench.atlas", "--scale", "0.02", "--out",
                           str(out)], cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    results = json.loads(out.read_text())
    assert results["load"]["2022"]["artworks"] == 200
    assert set(results["autocomplete"]) == {"2022", "every year"}
    assert results["lookup"]["runs"] == 100 and results["memory_mb"]["held"] > 0
