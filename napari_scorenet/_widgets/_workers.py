"""Model cache, default checkpoint and device choice shared by the widgets."""

from __future__ import annotations

from pathlib import Path

from scorenet.checkpoint import load_checkpoint
from scorenet.inference import resolve_device

_MODELS: dict[tuple[str, str], tuple] = {}


def default_checkpoint_path() -> Path:
    """The bundled demo checkpoint (may be absent in a source checkout)."""
    return Path(__file__).resolve().parent.parent / "weights" / "scorenet_demo.safetensors"


def cached_model(path: str | Path, device: str = "auto"):
    """(model, info) loaded once per (path, device); raises the checkpoint's input error otherwise."""
    dev = resolve_device(device)
    key = (str(Path(path).resolve()), str(dev))
    if key not in _MODELS:
        model, info = load_checkpoint(path, map_location=dev)
        _MODELS[key] = (model.to(dev).eval(), info)
    return _MODELS[key]
