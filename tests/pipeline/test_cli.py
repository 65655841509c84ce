import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.cli import build_parser
from pipeline.config import EngineSettings, engine_settings_from_env
from pipeline.outputs import read_metadata
from pipeline.params import PARAMS

ROOT = Path(__file__).resolve().parents[2]


def _run(*args, env_model):
    env = {"PATH": "/usr/bin:/bin", "PLACE_MODEL_1_4": str(env_model), "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args], env=env,
        capture_output=True, text=True, timeout=240,
    )


def test_cli_renders_one_job_into_a_folder(tiny_model_dir, tmp_path):
    """End to end: files written, seed and per-pass times printed, metadata in the PNG."""
    done = _run("--canvas", "2023", "--x", "100", "--y", "50", "--seed", "9", "--steps", "4",
                "--strength", "0.5", "--recursions", "1", "--device", "cpu",
                "--out", str(tmp_path), env_model=tiny_model_dir)
    assert done.returncode == 0, done.stderr
    assert "pass 2/2" in done.stdout and "seed 9" in done.stdout
    # the model's load is timed on its own line, before the first pass's clock starts
    assert done.stdout.index("model 1.4 loaded in") < done.stdout.index("pass 1/2")
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


def _run_in(folder, *args, env=None):
    """The CLI run from `folder` (where a .env may lie), with only `env` set."""
    full_env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1",
                **(env or {})}
    return subprocess.run([sys.executable, "-m", "pipeline", *args], cwd=folder, env=full_env,
                          capture_output=True, text=True, timeout=240)


def test_every_parameter_has_a_flag_with_its_bounds_and_choices():
    """The flags are derived from the one definition: each parameter of a canvas crop (those
    of a user's picture belong to /dream), its choices, its type."""
    parser = build_parser(EngineSettings())
    actions = {action.dest: action for action in parser._actions}
    assert "pixel" not in actions
    for name, spec in PARAMS.items():
        if spec.scope == "picture":
            continue
        assert actions[name].option_strings == [f"--{name}"]
        assert tuple(actions[name].choices or ()) == spec.choices
        assert spec.help in actions[name].help
    with pytest.raises(SystemExit):
        parser.parse_args(["--seed", "many"])


def test_flag_defaults_are_the_owners_settings():
    """--help shows PLACE_STRENGTH's and PLACE_DEFAULT_MODEL's values, not the engine's."""
    engine = engine_settings_from_env({"PLACE_STRENGTH": "0.6", "PLACE_DEFAULT_MODEL": "1.5"})
    args = build_parser(engine).parse_args([])
    assert (args.strength, args.model) == (0.6, "1.5")


def test_help_is_fast_because_torch_is_not_imported():
    """Parsing the flags imports no torch (it takes seconds to load)."""
    code = ("import sys\nfrom pipeline.cli import main\ntry:\n    main(['--help'])\n"
            "except SystemExit:\n    pass\nprint('torch loaded:', 'torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True,
                          text=True, timeout=120)
    assert "torch loaded: False" in done.stdout, done.stderr


def test_cli_reads_dotenv_and_the_default_model(tiny_model_dir, tmp_path):
    """.env in the working folder names the default model and its folder, as for the bot."""
    (tmp_path / ".env").write_text(f"PLACE_DEFAULT_MODEL=1.5\nPLACE_MODEL_1_5={tiny_model_dir}\n"
                                   f"PLACE_MODEL_1_4={tmp_path / 'missing'}\nPLACE_STEPS=2\n"
                                   "PLACE_STRENGTH=0.5\nPLACE_RECURSIONS=0\n")
    done = _run_in(tmp_path, "--seed", "3", "--device", "cpu", "--out", "out")
    assert done.returncode == 0, done.stderr
    [final] = (tmp_path / "out").glob("*_p1.png")
    metadata = read_metadata(final.read_bytes())
    assert (metadata["model"], metadata["steps"], metadata["model_id"]) == (
        "1.5", 2, str(tiny_model_dir))


def test_cli_refuses_an_unwritable_out_before_loading_a_model(tmp_path):
    """--out under a file: one line naming it, exit 2, and no model load was tried."""
    (tmp_path / "a-file").write_text("")
    done = _run_in(tmp_path, "--out", str(tmp_path / "a-file" / "out"),
                   env={"PLACE_MODEL_1_4": str(tmp_path / "missing")})
    assert done.returncode == 2
    assert done.stderr.startswith(f"error: --out {tmp_path / 'a-file' / 'out'}: cannot write")
    assert "could not load model" not in done.stderr and "crop:" not in done.stdout


def test_cli_reports_a_malformed_setting_in_one_line(tmp_path):
    """A bad PLACE_STRENGTH in .env stops the CLI as it stops the bot."""
    (tmp_path / ".env").write_text("PLACE_STRENGTH=strong\n")
    done = _run_in(tmp_path, "--help")
    assert done.returncode == 2
    assert done.stderr.strip() == ("error: PLACE_STRENGTH: 'strong' is not valid; "
                                   "accepts a number in (0, 1]")


def test_cuda_n_is_accepted_and_pinned_as_the_bot_does(monkeypatch, tmp_path):
    """--device cuda:1 makes GPU 1 the only visible one and renders on "cuda"."""
    from pipeline import cli

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)  # restored after the test
    rendered = []
    monkeypatch.setattr(cli, "_render",
                        lambda job, model_ids, args, atlas: rendered.append(args) or 0)
    assert cli.main(["--device", "cuda:1", "--out", str(tmp_path / "out")]) == 0
    assert rendered[0].device == "cuda"
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "1"


def test_place_device_cuda_n_is_the_device_default():
    """PLACE_DEVICE=cuda:1 is a valid default for --device (not refused as unknown)."""
    engine = engine_settings_from_env({"PLACE_DEVICE": "cuda:1"})
    assert build_parser(engine).parse_args([]).device == "cuda:1"


def _cli_with_atlas(monkeypatch, tmp_path, argv):
    """cli.main with a synthetic atlas in PLACE_ATLAS_DIR and the render recorded: (exit
    code, the job it would render)."""
    from pipeline import cli
    from tests.support.atlas_files import write_atlas

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PLACE_ATLAS_DIR", str(write_atlas(tmp_path / "atlas")))
    jobs = []
    monkeypatch.setattr(cli, "_render", lambda job, model_ids, args, atlas: jobs.append(job) or 0)
    return cli.main([*argv, "--out", str(tmp_path / "out")]), jobs


def test_artwork_by_name_draws_the_crop_on_its_canvas(monkeypatch, tmp_path, capsys):
    """--artwork "star wars": the artwork's key, its 2022 canvas, a crop of it."""
    code, [job] = _cli_with_atlas(monkeypatch, tmp_path, ["--artwork", "star wars"])
    assert code == 0 and (job.artwork, job.canvas) == ("2022-000012", "2022")
    assert 570 - 16 <= job.x <= 671 - 16 and 698 - 16 <= job.y <= 844 - 16
    assert "artwork: Star Wars (2022, https://2022.place-atlas" in capsys.readouterr().out


def test_an_unknown_artwork_is_one_line_with_the_closest_names(monkeypatch, tmp_path, capsys):
    code, jobs = _cli_with_atlas(monkeypatch, tmp_path, ["--artwork", "star warz"])
    assert code == 2 and jobs == []
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("error: no artwork named 'star warz'") and "Star Wars (2022)" in line


def test_cli_names_the_artworks_its_result_shows(tiny_model_dir, tmp_path):
    """With the atlas: printed, and in the PNG's metadata with the atlas page."""
    from tests.support.atlas_files import write_atlas

    done = _run_in(tmp_path, "--canvas", "2022", "--x", "600", "--y", "750", "--seed", "1",
                   "--steps", "2", "--strength", "0.5", "--recursions", "0", "--device", "cpu",
                   "--out", "out", env={"PLACE_MODEL_1_4": str(tiny_model_dir),
                                        "PLACE_ATLAS_DIR": str(write_atlas(tmp_path / "a"))})
    assert done.returncode == 0, done.stderr
    assert "on r/Place: Star Wars (100% of the crop)" in done.stdout
    [final] = (tmp_path / "out").glob("*_p1.png")
    [named] = read_metadata(final.read_bytes())["artworks"]
    assert named["url"] == "https://2022.place-atlas.stefanocoding.me/#000012"
