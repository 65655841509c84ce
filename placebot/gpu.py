"""Choosing one GPU of several for this process.

pin_gpu lives with the device settings (pipeline.config), so `python -m pipeline` and
`python -m pipeline.download` pin PLACE_DEVICE=cuda:N exactly as the bot and its workers do.
"""

from __future__ import annotations

from pipeline.config import pin_gpu

__all__ = ["pin_gpu"]
