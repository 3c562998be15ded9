"""ScoreNet: efficient two-stage vision transformer for histology, and ScoreMix augmentation.

Headless package (no Qt, no napari). Heavy submodules (torch, timm) load on first use, so
``import scorenet.slide`` stays light for the slide reader.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> submodule that defines it
_LAZY = {
    "ScoreNetConfig": "scorenet.config",
    "ScoreNet": "scorenet.model",
    "ScoreNetOutput": "scorenet.model",
    "build_model": "scorenet.model",
    "perturbed_topk": "scorenet.topk",
    "hard_topk": "scorenet.topk",
    "save_checkpoint": "scorenet.checkpoint",
    "load_checkpoint": "scorenet.checkpoint",
    "scoremix": "scorenet.mixing",
    "cutmix": "scorenet.mixing",
    "saliencymix": "scorenet.mixing",
    "MixBatchTransform": "scorenet.mixing",
    "open_slide": "scorenet.slide",
    "read_roi": "scorenet.slide",
    "ScoreNetInputError": "scorenet.errors",
    "CheckpointError": "scorenet.errors",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'scorenet' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
