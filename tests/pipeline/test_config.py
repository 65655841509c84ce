import os

from pipeline.config import keep_kernel_caches, pin_gpu


def test_kernel_caches_go_to_the_data_folder_unless_the_owner_chose(monkeypatch, tmp_path):
    """The CUDA and torch.compile caches land in the data folder; a variable already set wins."""
    monkeypatch.delenv("CUDA_CACHE_PATH", raising=False)
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", "/owner/choice")
    keep_kernel_caches(tmp_path)
    assert os.environ["CUDA_CACHE_PATH"] == str(tmp_path.resolve() / "cuda-cache")
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == "/owner/choice"


def test_pinning_cuda_n_makes_it_the_only_visible_gpu():
    """cuda:1 becomes CUDA_VISIBLE_DEVICES=1 and the engine's plain "cuda"."""
    environ: dict[str, str] = {}
    assert pin_gpu("cuda:1", environ) == "cuda" and environ == {"CUDA_VISIBLE_DEVICES": "1"}
    assert pin_gpu("cpu", environ) == "cpu"


def test_the_atlas_folder_defaults_to_the_owners_cache_and_must_be_a_folder(tmp_path,
                                                                           monkeypatch):
    """PLACE_ATLAS_DIR: ~/.cache/place-dreams/atlas by default, `~` expanded; a missing
    folder is fine (not downloaded yet), a file is refused naming the variable."""
    import pytest

    from pipeline.config import SettingsError, engine_settings_from_env

    monkeypatch.setenv("HOME", str(tmp_path))
    assert engine_settings_from_env({}).atlas_dir == tmp_path / ".cache/place-dreams/atlas"
    assert engine_settings_from_env({"PLACE_ATLAS_DIR": "~/a"}).atlas_dir == tmp_path / "a"
    (tmp_path / "file").write_text("")
    with pytest.raises(SettingsError, match=r"PLACE_ATLAS_DIR: .* is a file; accepts a folder"):
        engine_settings_from_env({"PLACE_ATLAS_DIR": str(tmp_path / "file")})
