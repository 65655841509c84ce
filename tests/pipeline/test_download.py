"""`python -m pipeline.download`: the bot's model ids, checksums, and an unreachable Hub."""

import hashlib
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.download import DownloadError, main, verify

ROOT = Path(__file__).resolve().parents[2]


def test_verify_counts_matching_files_and_names_a_corrupt_one(tmp_path):
    """Each weight file is checked against its published SHA-256; a differing one is named."""
    (tmp_path / "unet").mkdir()
    weights = tmp_path / "unet" / "model.safetensors"
    weights.write_bytes(b"weights")
    (tmp_path / "model_index.json").write_text("{}")  # no published checksum: not counted
    expected = {"unet/model.safetensors": hashlib.sha256(b"weights").hexdigest()}
    assert verify(tmp_path, expected) == 1
    weights.write_bytes(b"truncated")
    with pytest.raises(DownloadError, match=r"unet/model\.safetensors .* does not match"):
        verify(tmp_path, expected)


def test_a_model_in_a_local_folder_from_dotenv_needs_no_download(tiny_model_dir, tmp_path,
                                                                 monkeypatch, capsys):
    """The model id comes from .env, as the bot reads it; a local folder is left as it is."""
    monkeypatch.delenv("PLACE_MODEL_1_5", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text(f"PLACE_MODEL_1_5={tiny_model_dir}\n")
    assert main(["--model", "1.5", "--device", "cpu", "--no-atlas"]) == 0
    assert f"{tiny_model_dir} is a local folder; nothing to download" in capsys.readouterr().out


def test_a_local_model_setting_that_is_no_model_folder_is_one_clear_line(tmp_path):
    """A folder without model_index.json, and a path that does not exist: each named, with
    the setting to fix, instead of "nothing to download" or a Hub client's repo-id error."""
    from pipeline.download import fetch_model

    with pytest.raises(DownloadError, match=r"without model_index\.json.*PLACE_MODEL_1_4"):
        fetch_model("1.4", str(tmp_path), fp16=False, safety_checker=False)
    missing = str(tmp_path / "no-such-model")
    with pytest.raises(DownloadError, match="does not exist: point PLACE_MODEL_1_4"):
        fetch_model("1.4", missing, fp16=False, safety_checker=False)


def test_an_unreachable_hub_is_one_line_saying_what_to_do(tmp_path):
    """No Hub: exit 2 and one line that names the network and the setting to use instead."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {"PATH": "/usr/bin:/bin", "HF_HOME": str(tmp_path / "hf"),
           "HF_ENDPOINT": f"http://127.0.0.1:{port}", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "pipeline.download", "--model", "1.4",
                           "--device", "cuda", "--no-atlas"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    [line] = done.stderr.splitlines()
    assert line.startswith("error: could not download model 1.4")
    assert "the Hugging Face Hub could not be reached" in line
    assert "set PLACE_MODEL_1_4 to its local diffusers folder" in line


def _fetched(monkeypatch, tmp_path, argv, env):
    """Run main() with `env` set and fetch_model recorded instead of run: its options."""
    monkeypatch.chdir(tmp_path)  # no .env of the project's
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)  # restored after the test
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    calls = []

    def record(key, model_id, *, fp16, safety_checker):
        calls.append({"fp16": fp16, "safety_checker": safety_checker})
        return f"model {key}: recorded"

    monkeypatch.setattr("pipeline.download.fetch_model", record)
    assert main(["--model", "1.4", "--no-atlas", *argv]) == 0
    [options] = calls
    return options


def test_device_and_safety_checker_default_to_the_bots_settings(monkeypatch, tmp_path):
    """PLACE_DEVICE=cuda:1 fetches the fp16 files (pinned, as the bot does) and
    PLACE_SAFETY_CHECKER=true the checker, with no flag given."""
    options = _fetched(monkeypatch, tmp_path, [],
                       {"PLACE_DEVICE": "cuda:1", "PLACE_SAFETY_CHECKER": "true"})
    assert options == {"fp16": True, "safety_checker": True}
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "1"


def test_the_default_auto_fetches_the_safety_checker_and_false_does_not(monkeypatch,
                                                                          tmp_path):
    """PLACE_SAFETY_CHECKER=auto (the default) runs the checker outside age-restricted
    channels, so its files are fetched; false never loads it, so they are not."""
    assert _fetched(monkeypatch, tmp_path, ["--device", "cpu"], {})["safety_checker"] is True
    options = _fetched(monkeypatch, tmp_path, ["--device", "cpu"],
                       {"PLACE_SAFETY_CHECKER": "false"})
    assert options["safety_checker"] is False


def test_flags_override_the_device_and_safety_checker_settings(monkeypatch, tmp_path):
    """--device cpu and --no-safety-checker win over PLACE_DEVICE and PLACE_SAFETY_CHECKER."""
    options = _fetched(monkeypatch, tmp_path, ["--device", "cpu", "--no-safety-checker"],
                       {"PLACE_DEVICE": "cuda", "PLACE_SAFETY_CHECKER": "true"})
    assert options == {"fp16": False, "safety_checker": False}


def test_a_bad_device_flag_names_what_is_accepted(monkeypatch, tmp_path, capsys):
    """--device gpu is refused by argparse with the accepted values, cuda:N among them."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main(["--device", "gpu"])
    assert exit_info.value.code == 2
    assert "'gpu' is not valid; accepts one of auto, cuda, cpu, or cuda:N" in (
        capsys.readouterr().err)
