"""Choosing one GPU of several for this process."""

from __future__ import annotations

import os

from pipeline.config import GPU_INDEX


def pin_gpu(device: str, environ=os.environ) -> str:
    """For PLACE_DEVICE=cuda:N, make GPU N the only one this process sees and return "cuda".

    The engine then runs on "the" GPU exactly as on a one-GPU machine (its memory caps, CUDA
    graphs and compile all use the current device). Call before CUDA is first used.
    """
    match = GPU_INDEX.fullmatch(device)
    if match is None:
        return device
    environ["CUDA_VISIBLE_DEVICES"] = match.group(1)
    return "cuda"
