import subprocess
import sys
from pathlib import Path

from pipeline.outputs import read_metadata

ROOT = Path(__file__).resolve().parents[2]


def _run(*args, env_model):
    env = {"PATH": "/usr/bin:/bin", "PLACE_MODEL_1_4": str(env_model), "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args], cwd=ROOT, env=env,
        capture_output=True, text=True, timeout=240,
    )


def test_cli_renders_one_job_into_a_folder(tiny_model_dir, tmp_path):
    """End to end: files written, seed and per-pass times printed, metadata in the PNG."""
    done = _run("--canvas", "2023", "--x", "100", "--y", "50", "--seed", "9", "--steps", "4",
                "--strength", "0.5", "--recursions", "1", "--device", "cpu",
                "--out", str(tmp_path), env_model=tiny_model_dir)
    assert done.returncode == 0, done.stderr
    assert "pass 2/2" in done.stdout and "seed 9" in done.stdout
    final = tmp_path / "place2023_100_50_sd1.4_seed9_s0.5_st4_p2.png"
    assert read_metadata(final.read_bytes())["seed"] == 9


def test_cli_bad_input_is_one_line_and_exit_2(tiny_model_dir, tmp_path):
    done = _run("--canvas", "2017", "--x", "999", "--y", "0", "--out", str(tmp_path),
                env_model=tiny_model_dir)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: (999, 0) is outside canvas 2017 (1000x1000): x must be 0-968 and y 0-968 "
        "for a 32x32 crop"
    ]


def test_cli_model_load_failure_is_one_line_and_exit_2(tmp_path):
    done = _run("--steps", "4", "--strength", "0.5", "--device", "cpu", "--out", str(tmp_path),
                env_model=tmp_path / "missing")
    assert done.returncode == 2
    assert done.stderr.strip().startswith("error: could not load model 1.4")
