"""Model cache, default checkpoint and device choice shared by the widgets."""

from __future__ import annotations

from pathlib import Path

from scorenet.checkpoint import CheckpointInfo
from scorenet.model import ScoreNet
from scorenet.model_cache import ModelCache

# one model per checkpoint and device; retraining into the same file replaces it instead of adding one
_MODELS = ModelCache()


def default_checkpoint_path() -> Path:
    """The bundled demo checkpoint (may be absent in a source checkout)."""
    return Path(__file__).resolve().parent.parent / "weights" / "scorenet_demo.safetensors"


def missing_checkpoint_message(path: str | Path) -> str:
    """Why ``path`` cannot be used, saying so plainly when it is the bundled one."""
    if Path(path).resolve() == default_checkpoint_path():
        return f"{path}: the bundled demo checkpoint is not installed; choose a checkpoint file"
    return f"{path}: checkpoint not found"


def cached_model(path: str | Path, device: str = "auto") -> tuple[ScoreNet, CheckpointInfo]:
    """(model, info) of the checkpoint at ``path`` on ``device``, loaded again only when the file has
    changed (a run retrained into the same path); raises the checkpoint's input error."""
    return _MODELS.get(path, device)
