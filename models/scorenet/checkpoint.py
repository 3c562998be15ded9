"""Save and load ScoreNet weights as safetensors, with the config and class names in the header."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from . import __version__
from .atomic import atomic_path
from .config import MODEL_CONFIGS, ScoreNetConfig
from .errors import CheckpointError, one_line
from .model import ScoreNet

FORMAT = "scorenet-checkpoint-1"


@dataclass
class CheckpointInfo:
    """What a checkpoint says about itself."""

    name: str
    config: ScoreNetConfig
    class_names: list[str]
    metadata: dict[str, Any] = field(default_factory=dict)


def save_checkpoint(
    model: ScoreNet,
    path: str | os.PathLike[str],
    class_names: list[str],
    metadata: dict[str, Any] | None = None,
) -> None:
    """Write ``model``'s weights and description to ``path`` atomically (temp file, then rename).

    ``metadata`` must be JSON-able (e.g. ``{"mpp": 0.5}``, the resolution the model was trained at).
    """
    path = Path(path)
    class_names = [str(c) for c in class_names]
    if len(class_names) != model.config.num_classes:
        raise ValueError(f"{len(class_names)} class names for {model.config.num_classes} classes")
    write_weights(model, path, FORMAT, model.state_dict(), metadata, class_names=class_names)


def write_weights(
    model: ScoreNet,
    path: str | os.PathLike[str],
    kind: str,
    state: dict[str, torch.Tensor],
    metadata: dict[str, Any] | None = None,
    **fields: Any,
) -> None:
    """Write ``state`` (some or all of ``model``'s tensors) to ``path`` atomically, with the header
    every ScoreNet file carries (format ``kind``, version, model name, config, ``metadata``) and
    ``fields`` as JSON."""
    header = {
        "format": kind,
        "scorenet_version": __version__,
        "name": model.name,
        "config": json.dumps(model.config.to_dict()),
        **{k: json.dumps(v) for k, v in fields.items()},
        "metadata": json.dumps(metadata or {}),
    }
    tensors = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    with atomic_path(path) as tmp:
        save_file(tensors, tmp, metadata=header)


def read_header(path: str | os.PathLike[str], what: str = "checkpoint") -> dict[str, str]:
    """The string header of a safetensors file (no weights read); ``CheckpointError`` naming the
    file and ``what`` it should hold when it is missing or unreadable."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{what} not found", path)
    try:
        with safe_open(str(path), framework="pt") as f:
            return f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"not a readable safetensors {what} ({one_line(err)})", path) from err


def read_checkpoint_info(path: str | os.PathLike[str]) -> CheckpointInfo:
    """The checkpoint's header only (no weights loaded)."""
    path = Path(path)
    header = read_header(path, "checkpoint file")
    if header.get("format") != FORMAT:
        raise CheckpointError("not a ScoreNet checkpoint (no scorenet header in the file)", path)
    try:
        config = ScoreNetConfig.from_dict(json.loads(header["config"]))
        class_names = list(json.loads(header["class_names"]))
        metadata = dict(json.loads(header.get("metadata", "{}")))
        name = header["name"]
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"corrupt checkpoint header ({err})", path) from err
    if name not in MODEL_CONFIGS:
        raise CheckpointError(f"unknown model name {name!r} in checkpoint", path)
    if len(class_names) != config.num_classes:
        raise CheckpointError(
            f"checkpoint lists {len(class_names)} class names for {config.num_classes} classes", path
        )
    return CheckpointInfo(name=name, config=config, class_names=class_names, metadata=metadata)


def load_checkpoint(
    path: str | os.PathLike[str],
    map_location: str | torch.device = "cpu",
    *,
    expected_num_classes: int | None = None,
    expected_name: str | None = None,
) -> tuple[ScoreNet, CheckpointInfo]:
    """Rebuild the model stored at ``path`` (in eval mode) and its description.

    Raises ``CheckpointError`` naming the file when it is missing, corrupt, or does not match the
    expected model name or class count. Never unpickles anything.
    """
    info = read_checkpoint_info(path)
    if expected_name is not None and info.name != expected_name:
        raise CheckpointError(f"checkpoint holds model {info.name!r}, expected {expected_name!r}", path)
    if expected_num_classes is not None and info.config.num_classes != expected_num_classes:
        raise CheckpointError(
            f"checkpoint has {info.config.num_classes} classes, expected {expected_num_classes}", path
        )
    try:
        state = load_file(str(path), device=str(map_location))
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"corrupt checkpoint weights ({err})", path) from err
    model = ScoreNet(info.config, name=info.name)
    mismatch = weights_mismatch(model.state_dict(), state)
    if mismatch:
        raise CheckpointError(f"the weights do not match the model its header describes ({mismatch})", path)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:  # torch's message spans lines; the CLI prints one
        raise CheckpointError(f"the weights do not load into the model ({one_line(err)})", path) from err
    return model.to(map_location).eval(), info


def weights_mismatch(expected: dict[str, torch.Tensor], found: dict[str, torch.Tensor]) -> str:
    """How ``found`` differs from ``expected`` in names and shapes, counted on one line with the
    first difference as an example; ``""`` when they agree."""
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    reshaped = [k for k in expected if k in found and found[k].shape != expected[k].shape]
    if not (missing or unexpected or reshaped):
        return ""
    example = (missing or reshaped or unexpected)[0]
    return (
        f"{len(missing)} missing, {len(unexpected)} unexpected, {len(reshaped)} of other shape, "
        f"e.g. {example!r}"
    )
