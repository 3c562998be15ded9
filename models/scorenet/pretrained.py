"""Pre-trained ScoreNet weights: save parts of a model, and start a new model from them.

A pre-trained file is a safetensors file holding some of a ScoreNet's parts (``PARTS``) with the
architecture in its header. ``load_init`` also accepts a full ScoreNet checkpoint: it then takes the
three parts and leaves the classification head fresh, since the head's classes belong to the task the
checkpoint was trained on. The head is never part of a pre-trained file. Nothing is ever unpickled.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import safe_open

from .checkpoint import FORMAT as CHECKPOINT_FORMAT
from .checkpoint import read_checkpoint_info, read_header, write_weights
from .config import ScoreNetConfig
from .errors import CheckpointError, ScoreNetInputError, one_line
from .model import ScoreNet

PRETRAINED_FORMAT = "scorenet-pretrained-1"
PARTS = ("scorer", "local_vit", "global_encoder")

# the config fields a part's weights were learned under: its shapes, and what its input looks like
# (the scorer sees the image downscaled by s, the ViTs see pixels normalised with mean and std)
_VIT_FIELDS = ("patch_size", "embed_dim", "depth", "num_heads", "mlp_ratio", "num_cls_tokens", "mean", "std")
_ARCH_FIELDS: dict[str, tuple[str, ...]] = {
    "scorer": ("downscale", *_VIT_FIELDS),
    "local_vit": _VIT_FIELDS,
    "global_encoder": ("embed_dim", "global_depth", "global_num_heads", "global_mlp_ratio", "global_cls"),
}
_SHOWN_FIELDS = 4  # the error names this many differing fields, so it stays one line


@dataclass
class PretrainedInfo:
    """What a pre-trained file (or a checkpoint used as one) says about itself."""

    name: str
    config: ScoreNetConfig
    parts: list[str]
    metadata: dict[str, Any] = field(default_factory=dict)
    format: str = PRETRAINED_FORMAT  # CHECKPOINT_FORMAT when the file is a full checkpoint


@dataclass
class InitReport:
    """Which parts of a model came from a file and which kept their fresh initialisation."""

    loaded: list[str]
    fresh: list[str]
    source: Path
    format: str = PRETRAINED_FORMAT

    def summary(self) -> str:
        """One line, e.g. ``initialised scorer, local_vit from X; fresh: global_encoder, head``."""
        return f"initialised {', '.join(self.loaded)} from {self.source}; fresh: {', '.join(self.fresh)}"

    def to_json(self) -> dict[str, Any]:
        """Plain JSON-able dict (for the run's ``train_config.json``)."""
        return {"source": str(self.source), "format": self.format, "loaded": self.loaded, "fresh": self.fresh}


def part_of(key: str) -> str | None:
    """The part a ScoreNet state-dict key belongs to: one of ``PARTS``, ``"head"`` (the classifier)
    or None (not a ScoreNet key)."""
    if key == "head_weights":  # the scorer's per-head weights of the semantic distribution
        return "scorer"
    prefix = key.split(".", 1)[0]
    return prefix if prefix in (*PARTS, "head") else None


def _checked_parts(parts: Sequence[str]) -> list[str]:
    """``parts`` in the canonical order; ScoreNetInputError for an empty, unknown or repeated part."""
    parts = list(parts)
    unknown = [p for p in parts if p not in PARTS]
    if not parts or unknown or len(set(parts)) != len(parts):
        raise ScoreNetInputError(f"parts must be distinct names among {', '.join(PARTS)}, got {parts}")
    return [p for p in PARTS if p in parts]


def save_pretrained(
    model: ScoreNet,
    path: str | os.PathLike[str],
    parts: Sequence[str],
    metadata: dict[str, Any] | None = None,
) -> None:
    """Write ``parts`` of ``model`` (keys as in its ``state_dict()``) to ``path`` atomically.

    ``metadata`` must be JSON-able (e.g. what the parts were pre-trained on).
    """
    parts = _checked_parts(parts)
    state = {k: v for k, v in model.state_dict().items() if part_of(k) in parts}
    write_weights(model, path, PRETRAINED_FORMAT, state, metadata, parts=parts)


def read_pretrained_info(path: str | os.PathLike[str]) -> PretrainedInfo:
    """The header of a pre-trained file or of a full checkpoint (no weights read).

    A checkpoint counts as holding all of ``PARTS``. Raises ``CheckpointError`` for a missing,
    unreadable or foreign file and for a corrupt header.
    """
    path = Path(path)
    header = read_header(path, "pre-trained weights")
    kind = header.get("format")
    if kind == CHECKPOINT_FORMAT:
        info = read_checkpoint_info(path)
        return PretrainedInfo(info.name, info.config, list(PARTS), info.metadata, CHECKPOINT_FORMAT)
    if kind != PRETRAINED_FORMAT:
        raise CheckpointError("neither ScoreNet pre-trained weights nor a ScoreNet checkpoint", path)
    try:
        config = ScoreNetConfig.from_dict(json.loads(header["config"]))
        parts = json.loads(header["parts"])
        metadata = dict(json.loads(header.get("metadata", "{}")))
        name = header["name"]
        parts = _checked_parts(parts if isinstance(parts, list) else [])
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"corrupt pre-trained header ({one_line(err)})", path) from err
    return PretrainedInfo(name, config, parts, metadata, PRETRAINED_FORMAT)


def _check_architecture(info: PretrainedInfo, config: ScoreNetConfig, path: Path) -> None:
    """CheckpointError naming the fields, among those of the parts to load, where the file differs."""
    wanted = {f for part in info.parts for f in _ARCH_FIELDS[part]}
    if "global_encoder" in info.parts and info.config.global_cls == "gap":
        wanted.add("global_cls_in_head")  # with pseudo-[CLS] tokens it fixes where they are inserted
    differ = [f.name for f in fields(ScoreNetConfig) if f.name in wanted]
    differ = [name for name in differ if getattr(info.config, name) != getattr(config, name)]
    if not differ:
        return
    shown = differ[:_SHOWN_FIELDS]
    more = f" (and {len(differ) - len(shown)} more)" if len(differ) > len(shown) else ""

    def values(cfg: ScoreNetConfig) -> str:
        return ", ".join(f"{name} {getattr(cfg, name)}" for name in shown)

    raise CheckpointError(
        f"other architecture: the file holds {values(info.config)}; this model has {values(config)}{more}",
        path,
    )


def _check_tensors(path: Path, info: PretrainedInfo, shapes: Mapping[str, tuple[int, ...]]) -> list[str]:
    """The keys to load: every tensor of the file's parts, checked against this model's ``shapes``."""
    expected = [k for k in shapes if part_of(k) in info.parts]
    try:
        with safe_open(str(path), framework="pt") as f:
            found = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}  # header only
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"not a readable safetensors file ({one_line(err)})", path) from err
    missing = [k for k in expected if k not in found]
    if missing:
        raise CheckpointError(
            f"lacks {len(missing)} tensor(s) of the parts it lists, e.g. {missing[0]}", path
        )
    # a checkpoint also holds the head, which stays fresh; any other tensor means another architecture
    head = info.format == CHECKPOINT_FORMAT
    known = set(expected)
    foreign = [k for k in found if k not in known and not (head and part_of(k) == "head")]
    if foreign:
        raise CheckpointError(f"holds {len(foreign)} unexpected tensor(s), e.g. {foreign[0]}", path)
    for k in expected:
        if found[k] != tuple(shapes[k]):
            raise CheckpointError(
                f"tensor {k} has shape {list(found[k])} in the file, {list(shapes[k])} in this model", path
            )
    return expected


def _report(info: PretrainedInfo, path: Path) -> InitReport:
    fresh = [p for p in PARTS if p not in info.parts] + ["head"]
    return InitReport(loaded=list(info.parts), fresh=fresh, source=path.resolve(), format=info.format)


def check_init(path: str | os.PathLike[str], config: ScoreNetConfig) -> InitReport:
    """What :func:`load_init` would load from ``path`` into a model of ``config``, checked without
    reading any weights; raises ``CheckpointError`` (one line) where it would fail."""
    path = Path(path)
    info = read_pretrained_info(path)
    _check_architecture(info, config, path)
    with torch.random.fork_rng(devices=[]):  # a throw-away model must not move the caller's RNG
        shapes = {k: tuple(v.shape) for k, v in ScoreNet(config).state_dict().items()}
    _check_tensors(path, info, shapes)
    return _report(info, path)


def load_init(model: ScoreNet, path: str | os.PathLike[str]) -> InitReport:
    """Copy the parts held in ``path`` (pre-trained file or full checkpoint) into ``model``, in place.

    The other parts and the head keep their values (and nothing draws random numbers), so a seeded
    run with an init file differs from one without only in the loaded parts. Raises
    ``CheckpointError`` (one line, naming the file) for a missing, corrupt or foreign file and for
    another architecture; ``model`` is unchanged then.
    """
    path = Path(path)
    info = read_pretrained_info(path)
    _check_architecture(info, model.config, path)
    keys = _check_tensors(path, info, {k: tuple(v.shape) for k, v in model.state_dict().items()})
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            state = {k: f.get_tensor(k) for k in keys}
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"corrupt weights ({one_line(err)})", path) from err
    model.load_state_dict(state, strict=False)  # the keys left out are the fresh parts
    return _report(info, path)
