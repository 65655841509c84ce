"""Shared fixtures: the tiny Stable Diffusion model, built once per test session."""

from __future__ import annotations

import pytest

from tests.support.tiny_sd import build_tiny_sd

# Small but real: 2 denoising steps a pass (steps x strength), 2 passes.
FAST = {"steps": 4, "strength": 0.5, "recursions": 1}


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A tiny random SD img2img model saved with save_pretrained, as a local model folder."""
    return build_tiny_sd(tmp_path_factory.mktemp("tiny-sd"))


@pytest.fixture(scope="session")
def tiny_store(tiny_model_dir):
    """A ModelStore on the CPU whose 1.4 and 1.5 both name the tiny model; shared (loads once)."""
    from pipeline.models import ModelStore

    return ModelStore({"1.4": str(tiny_model_dir), "1.5": str(tiny_model_dir)}, device="cpu")


@pytest.fixture(scope="session")
def renderer(tiny_store):
    from pipeline.engine import Renderer

    return Renderer(tiny_store)
