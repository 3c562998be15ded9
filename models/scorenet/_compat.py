"""Import timm on CPU-only torch installs whose torchvision is a mismatched (CUDA) build.

The registry's only torchvision for some torch releases is a CUDA build. Its compiled
ops fail to load against CPU torch, and ``torchvision/_meta_registrations.py`` then
raises ``RuntimeError: operator torchvision::nms does not exist`` at import time, which
breaks ``import timm``. Nothing in this package calls the compiled ops (NMS, RoI align),
so declaring the two missing operator schemas is enough for the pure-Python parts of
torchvision (transforms) and all of timm to import and work.
"""

from __future__ import annotations

import sys

import torch

_MISSING_OPS = {
    "nms": "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}
_library: torch.library.Library | None = None
patched = False
"""True once the operator schemas had to be declared (torchvision's compiled ops are unusable)."""


def _declare_missing_ops() -> None:
    global _library, patched
    if _library is None:
        # Kept alive at module scope: a Library object unregisters its ops when collected.
        _library = torch.library.Library("torchvision", "FRAGMENT")
    for name, schema in _MISSING_OPS.items():
        if not hasattr(torch.ops.torchvision, name):
            _library.define(schema)
    patched = True


def ensure_torchvision() -> None:
    """Make ``import torchvision`` (and so ``import timm``) succeed; idempotent."""
    if "torchvision" in sys.modules and hasattr(sys.modules["torchvision"], "transforms"):
        return
    try:
        import torchvision  # noqa: F401
    except RuntimeError as err:
        if "torchvision::" not in str(err):
            raise
        for mod in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[mod]
        _declare_missing_ops()
        import torchvision  # noqa: F401


ensure_torchvision()
