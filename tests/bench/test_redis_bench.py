"""bench/redis.py's scaling benchmark runs end to end on the CPU (tiny model, two workers),
with the timeline of every batch and a summary that accounts for every second."""

import json
import subprocess
import sys


def test_scaling_bench_smoke_answers_every_job_once_with_one_and_two_workers(tmp_path):
    """`python -m bench.redis scaling --smoke`: real render worker processes on a real server,
    every job answered exactly once with one worker and with two, and a speed-up computed."""
    out = tmp_path / "scaling.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.redis", "scaling", "--smoke",
         "--cache", str(tmp_path / "cache"), "--out", str(out)],
        capture_output=True, text=True, timeout=280,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    results = json.loads(out.read_text())
    assert results["each_answered_once"] and results["speedup"] > 0
    assert results["workers_1"]["jobs"] == results["workers_2"]["jobs"] == 4

    for run in ("workers_1", "workers_2"):
        summary, rows = results[run]["summary"], results[run]["timeline"]
        parts = (summary["round_trips_s"] + summary["rendering_s"] + summary["waiting_s"]
                 + summary["tail_s"])
        assert abs(parts - results[run]["seconds"]) < 0.005, summary
        assert sum(row["jobs"] for row in rows) == 4
        for row in rows:  # each batch's moments, in the order they came
            assert row["read"] <= row["taken"] <= row["render_start"] <= row["render_end"]
            assert row["render_end"] <= row["stored"] and row["render_end"] <= row["received"]
            assert row["received"] <= row["delivered"] <= results[run]["seconds"] + 0.005
