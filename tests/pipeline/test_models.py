from pathlib import Path

import pytest

from pipeline.errors import ModelLoadError
from pipeline.models import (
    ModelStore,
    choose_vram_mode,
    compiles_in_background,
    lower_vram_mode,
)

GIB = 1024**3
ROOT = Path(__file__).resolve().parents[2]


def test_model_loads_lazily_and_once(tiny_model_dir):
    """Nothing loads at construction; the first get() loads; the second reuses it."""
    store = ModelStore({"1.4": str(tiny_model_dir)}, device="cpu")
    assert store.loaded_keys == []
    first = store.get("1.4")
    assert store.get("1.4") is first and store.loaded_keys == ["1.4"]


def test_empty_prompt_is_encoded_once_at_load(tiny_model_dir):
    model = ModelStore({"1.4": str(tiny_model_dir)}, device="cpu").get("1.4")
    assert tuple(model.empty_prompt_embeds.shape) == (1, 77, 32)


def test_cpu_loads_in_float32_without_safety_checker(tiny_model_dir):
    import torch

    model = ModelStore({"1.4": str(tiny_model_dir)}, device="cpu").get("1.4")
    assert model.dtype == torch.float32 and model.pipe.safety_checker is None


def test_missing_folder_is_one_error_naming_model_and_cause(tmp_path):
    """A model that cannot load raises ModelLoadError naming the key, the id and the cause."""
    missing = tmp_path / "no-such-model"
    store = ModelStore({"1.5": str(missing)}, device="cpu")
    with pytest.raises(ModelLoadError, match=r"could not load model 1.5 \(.*no-such-model\): "):
        store.get("1.5")
    assert store.loaded_keys == []


def test_corrupt_weights_fail_cleanly_and_a_later_try_can_succeed(tiny_model_dir, tmp_path):
    """Corrupt files → ModelLoadError; once fixed, the next get() loads (no poisoned state)."""
    import shutil

    broken = tmp_path / "model"
    shutil.copytree(tiny_model_dir, broken)
    weights = next((broken / "unet").glob("*.safetensors"))
    good = weights.read_bytes()
    weights.write_bytes(b"not a safetensors file")
    store = ModelStore({"1.4": str(broken)}, device="cpu")
    with pytest.raises(ModelLoadError, match=r"could not load model 1\.4"):
        store.get("1.4")
    weights.write_bytes(good)
    assert store.get("1.4").key == "1.4"


def test_unknown_model_key_is_a_value_error(tiny_model_dir):
    with pytest.raises(ValueError, match=r"model '2.0' is unknown"):
        ModelStore({"1.4": str(tiny_model_dir)}, device="cpu").get("2.0")


@pytest.mark.parametrize(
    ("free", "expected"), [(24 * GIB, "full"), (6 * GIB, "low"), (3.6 * GIB, "low"),
                           (2 * GIB, "minimal")]
)
def test_auto_vram_mode_follows_free_memory(free, expected):
    assert choose_vram_mode("auto", "cuda", free_bytes=int(free)) == expected


def test_explicit_vram_mode_is_kept_and_cpu_is_always_full():
    assert choose_vram_mode("minimal", "cuda", free_bytes=80 * GIB) == "minimal"
    assert choose_vram_mode("low", "cpu") == "full"


def test_out_of_memory_retry_steps_down_one_mode_at_a_time():
    assert [lower_vram_mode(m) for m in ("full", "low", "minimal")] == ["low", "minimal", None]


def test_on_a_gpu_switching_models_unloads_the_other_first(monkeypatch):
    """A 4 GB card can't hold both: get('1.5') unloads 1.4 before loading."""
    from pipeline.models import LoadedModel

    loads = []

    def fake_load(self, key, device, mode):
        loads.append((key, tuple(self.loaded_keys)))
        return LoadedModel(key, key, object(), None, device, None, mode)

    monkeypatch.setattr("pipeline.models.resolve_device", lambda requested: "cuda")
    monkeypatch.setattr("pipeline.models.choose_vram_mode", lambda *args: "low")
    monkeypatch.setattr(ModelStore, "_load", fake_load)
    store = ModelStore({"1.4": "a", "1.5": "b"}, device="cuda")
    store.get("1.4")
    store.get("1.5")
    assert loads == [("1.4", ()), ("1.5", ())] and store.loaded_keys == ["1.5"]


@pytest.mark.parametrize(("setting", "mode", "expected"), [
    ("auto", "full", True), ("auto", "low", False), ("on", "low", True),
    ("on", "minimal", False), ("off", "full", False),
])
def test_place_compile_decides_which_vram_modes_compile_in_the_background(setting, mode,
                                                                          expected):
    assert compiles_in_background(setting, mode) is expected


def test_an_unknown_compile_setting_is_refused_naming_the_choices():
    with pytest.raises(ValueError, match=r"'sometimes'.*'auto', 'on', 'off'"):
        ModelStore({}, compile="sometimes")


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_unreachable_hub_says_what_happened_and_what_to_do(tmp_path):
    """A Hub id while the Hub cannot be reached: the error names the network and the setting."""
    import subprocess
    import sys

    code = ("from pipeline.models import ModelStore\n"
            "try:\n"
            "    ModelStore({'1.4': 'CompVis/stable-diffusion-v1-4'}, device='cpu').get('1.4')\n"
            "except Exception as exc:\n"
            "    print(exc)\n")
    env = {"PATH": "/usr/bin:/bin", "HF_HOME": str(tmp_path / "hf"),
           "HF_ENDPOINT": f"http://127.0.0.1:{_closed_port()}", "HF_HUB_ETAG_TIMEOUT": "5",
           "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=300, cwd=tmp_path)
    message = done.stdout.strip()
    assert message.startswith("could not load model 1.4 (CompVis/stable-diffusion-v1-4): "
                              "the Hugging Face Hub could not be reached ("), done.stderr
    assert "check this machine's network connection" in message
    assert "set PLACE_MODEL_1_4 to its local diffusers folder" in message
    assert "outgoing traffic" not in message


def test_an_unpinned_cuda_n_is_refused_naming_the_devices():
    """The engine takes the devices of pipeline.config; cuda:N must be pinned first."""
    from pipeline.models import resolve_device

    with pytest.raises(ValueError, match=r"'cuda:1' is unknown; choose one of auto, cuda, cpu"):
        resolve_device("cuda:1")
