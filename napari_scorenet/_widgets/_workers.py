"""Model cache, default checkpoint and device choice shared by the widgets."""

from __future__ import annotations

from pathlib import Path

from scorenet.checkpoint import CheckpointInfo, load_checkpoint
from scorenet.inference import resolve_device
from scorenet.model import ScoreNet

# (path, device) -> (the file's (inode, mtime, size) when loaded, (model, info)): one entry per path and
# device, so retraining into the same file replaces the model instead of adding one
_MODELS: dict[tuple[str, str], tuple[tuple[int, int, int] | None, tuple[ScoreNet, CheckpointInfo]]] = {}


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
    dev = resolve_device(device)
    resolved = Path(path).resolve()
    key = (str(resolved), str(dev))
    try:
        st = resolved.stat()
        # an atomic save is a new inode; mtime and size also catch a file rewritten in place
        stamp: tuple[int, int, int] | None = (st.st_ino, st.st_mtime_ns, st.st_size)
    except OSError:
        stamp = None  # load_checkpoint names the problem
    cached = _MODELS.get(key)
    if cached is None or stamp is None or cached[0] != stamp:
        _MODELS.pop(key, None)  # free the old model before loading its replacement
        model, info = load_checkpoint(path, map_location=dev)
        _MODELS[key] = (stamp, (model.to(dev).eval(), info))
    return _MODELS[key][1]
