"""Picking one GPU of several for a process."""

from placebot.gpu import pin_gpu
from placebot.settings import settings_from_env


def test_cuda_n_is_a_valid_device_setting():
    """PLACE_DEVICE=cuda:1 is accepted (one worker per GPU)."""
    settings = settings_from_env({"DISCORD_TOKEN": "t", "PLACE_DEVICE": "cuda:1"})
    assert settings.device == "cuda:1"


def test_pinning_cuda_n_makes_it_the_only_visible_gpu():
    """cuda:1 becomes CUDA_VISIBLE_DEVICES=1 and the engine's plain "cuda"."""
    environ: dict[str, str] = {}
    assert pin_gpu("cuda:1", environ) == "cuda" and environ == {"CUDA_VISIBLE_DEVICES": "1"}
    assert pin_gpu("cpu", environ) == "cpu"


def test_a_render_worker_needs_no_discord_token():
    """The worker reads the bot's settings without DISCORD_TOKEN; PLACE_REDIS_URL is kept."""
    settings = settings_from_env({"PLACE_REDIS_URL": "redis://:pw@host:6379/0"},
                                 need_token=False)
    assert settings.redis_url == "redis://:pw@host:6379/0"
    assert "pw" not in repr(settings)
