"""The widgets' model cache serves a checkpoint once, and the new weights once the file is replaced."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from scorenet.checkpoint import save_checkpoint
from scorenet.demo_data import DEMO_MODEL_OVERRIDES
from scorenet.errors import CheckpointError
from scorenet.model import build_model
from scorenet.model_cache import ModelCache

from napari_scorenet._widgets import _workers
from napari_scorenet._widgets._workers import cached_model

CLASSES = ["carcinoma", "stroma"]


@pytest.fixture(autouse=True)
def empty_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_workers, "_MODELS", ModelCache())


def _save(path: Path, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = build_model("scorenet_4_1", len(CLASSES), **DEMO_MODEL_OVERRIDES)
    save_checkpoint(model, path, CLASSES)  # written to a temporary file, then renamed over ``path``
    return model


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_an_unchanged_checkpoint_is_loaded_once(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    _save(path, seed=0)
    first = cached_model(path, "cpu")
    assert cached_model(str(path), "cpu") is first


def test_a_checkpoint_retrained_at_the_same_path_is_reloaded(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    old = _save(path, seed=0)
    old_model, _ = cached_model(path, "cpu")
    assert _same_weights(old_model, old)
    new = _save(path, seed=1)
    new_model, _ = cached_model(path, "cpu")
    assert _same_weights(new_model, new) and not _same_weights(new_model, old)
    assert cached_model(path, "cpu")[0] is new_model
    assert len(_workers._MODELS) == 1  # the replaced model is not kept


def test_a_missing_checkpoint_is_refused_and_not_cached(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    _save(path, seed=0)
    cached_model(path, "cpu")
    path.unlink()
    with pytest.raises(CheckpointError, match="not found"):
        cached_model(path, "cpu")
    assert len(_workers._MODELS) == 0


def test_a_cache_of_one_model_keeps_only_the_last_checkpoint(tmp_path: Path) -> None:
    cache = ModelCache(max_models=1)  # what a cohort worker keeps
    first, second = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    _save(first, seed=0), _save(second, seed=1)
    model_a, _ = cache.get(first, "cpu")
    assert cache.get(first, "cpu")[0] is model_a
    model_b, _ = cache.get(second, "cpu")
    assert len(cache) == 1 and not _same_weights(model_a, model_b)
    assert cache.get(first, "cpu")[0] is not model_a  # loaded again: it was let go
