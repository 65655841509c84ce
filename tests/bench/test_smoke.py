import json
import subprocess
import sys


def test_bench_smoke_runs_and_speedups_are_byte_exact_on_cpu(tmp_path, tiny_model_dir):
    """bench/run.py --smoke runs the queue and engine end to end on a tiny CPU model; the
    CPU-side parts of pipeline/accel.py change no pixel.

    On the suite's tiny model (already built) and with the plain and the default variant only:
    the other variants differ in GPU-side settings that the CPU ignores."""
    out = tmp_path / "smoke.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.run", "--smoke", "--only", "t1,t2,t5",
         "--model", str(tiny_model_dir), "--variants", "project-eager,graphs+auto",
         "--out", str(out)],
        capture_output=True, text=True, timeout=240,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    results = json.loads(out.read_text())
    assert set(results["t1"]) == {"project-eager", "graphs+auto"}
    assert results["t5"]["degenerate"] is None
    assert results["t5"]["optimised_vs_project_eager"]["max_abs_255"] == 0
    assert results["t2"]["max_batch=2"]["batches"] == [2, 2]
