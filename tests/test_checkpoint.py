"""Checkpoints: exact round trip, atomic writes, clear refusals of bad files."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from scorenet import checkpoint
from scorenet.checkpoint import load_checkpoint, read_checkpoint_info, save_checkpoint
from scorenet.cli import main
from scorenet.errors import CheckpointError
from scorenet.model import build_model

CLASSES = ["normal", "benign", "invasive"]


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model("scorenet_4_3", num_classes=3, top_k=6).eval()


@pytest.fixture
def saved(model, tmp_path):
    path = tmp_path / "model.safetensors"
    save_checkpoint(model, path, CLASSES, metadata={"mpp": 0.5, "epochs": 15})
    return path


def test_round_trip_gives_identical_outputs(model, saved):
    loaded, info = load_checkpoint(saved, expected_num_classes=3, expected_name="scorenet_4_3")
    assert info.name == "scorenet_4_3"
    assert info.class_names == CLASSES
    assert info.metadata == {"mpp": 0.5, "epochs": 15}
    assert info.config == model.config
    assert not loaded.training
    images = torch.rand(2, 3, 384, 512, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        a, b = model(images), loaded(images)
    assert torch.equal(a.logits, b.logits)
    assert torch.equal(a.distribution, b.distribution)


def test_save_leaves_no_temporary_files_and_replaces_atomically(model, saved, monkeypatch):
    assert [p.name for p in saved.parent.iterdir()] == ["model.safetensors"]
    before = saved.read_bytes()

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint, "save_file", fail)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(model, saved, CLASSES)
    assert saved.read_bytes() == before  # the old file survives a failed write
    assert [p.name for p in saved.parent.iterdir()] == ["model.safetensors"]


def test_refuses_mismatched_class_count_and_name(saved):
    with pytest.raises(CheckpointError, match="3 classes, expected 7") as err:
        load_checkpoint(saved, expected_num_classes=7)
    assert str(saved) in str(err.value)
    with pytest.raises(CheckpointError, match="expected 'scorenet_4_1'"):
        load_checkpoint(saved, expected_name="scorenet_4_1")


def test_refuses_missing_file(tmp_path):
    path = tmp_path / "absent.safetensors"
    with pytest.raises(CheckpointError, match="not found") as err:
        load_checkpoint(path)
    assert str(path) in str(err.value)


def test_refuses_truncated_and_garbage_files(saved, tmp_path):
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(saved.read_bytes()[: saved.stat().st_size // 2])
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x80\x04 this is a pickle, not a checkpoint")
    for path in (truncated, garbage):
        with pytest.raises(CheckpointError) as err:
            load_checkpoint(path)
        assert str(path) in str(err.value)


def test_refuses_safetensors_without_scorenet_header(model, tmp_path):
    path = tmp_path / "plain.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    with pytest.raises(CheckpointError, match="not a ScoreNet checkpoint"):
        load_checkpoint(path)


def _mismatched(saved, tmp_path, **overrides) -> str:
    """A file with ``saved``'s header over the weights of a model built with ``overrides``."""
    other = build_model("scorenet_4_3", num_classes=3, top_k=6, **overrides)
    path = tmp_path / "mismatch.safetensors"
    state = {k: v.contiguous() for k, v in other.state_dict().items()}
    save_file(state, str(path), metadata=_header(saved))
    return str(path)


@pytest.mark.parametrize(
    ("overrides", "counts", "example"),
    [
        # the scorer and the local ViT have 12 tensors per block; unexpected names come sorted
        ({"depth": 6}, (48, 0, 0), "scorer.blocks.6.norm1.weight"),
        ({"depth": 10}, (0, 48, 0), "local_vit.blocks.8.attn.proj.bias"),
        ({"mlp_ratio": 4.0}, (0, 0, 48), "scorer.blocks.0.mlp.fc1.weight"),
    ],
)
def test_refuses_weights_that_do_not_match_the_header_in_one_line(
    model, saved, tmp_path, overrides, counts, example
):
    path = _mismatched(saved, tmp_path, **overrides)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    missing, unexpected, reshaped = counts
    assert str(err.value) == (
        f"{path}: the weights do not match the model its header describes ({missing} missing, "
        f"{unexpected} unexpected, {reshaped} of other shape, e.g. '{example}')"
    )


def test_cli_reports_mismatched_weights_in_one_line(saved, tmp_path, tiles_dir, capsys):
    path = _mismatched(saved, tmp_path, depth=6)
    image = str(tiles_dir / "norm_tile.jpg")
    out = tmp_path / "out"
    assert main(["score", image, "--checkpoint", path, "--out", str(out), "--device", "cpu"]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"scorenet score: error: {path}: the weights do not match the model")
    assert captured.out == "" and not list(out.glob("*"))


def test_refuses_corrupt_header(saved, tmp_path, model):
    header = _header(saved)
    header["config"] = json.dumps({"depth": "eight", "no_such_key": 1})
    path = tmp_path / "bad-header.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path), metadata=header)
    with pytest.raises(CheckpointError, match="corrupt checkpoint header"):
        read_checkpoint_info(path)


def _header(path) -> dict[str, str]:
    with safe_open(str(path), framework="pt") as f:
        return dict(f.metadata())


def test_save_refuses_wrong_number_of_class_names(model, tmp_path):
    with pytest.raises(ValueError, match="2 class names for 3 classes"):
        save_checkpoint(model, tmp_path / "m.safetensors", ["a", "b"])
    assert not any(tmp_path.iterdir())
