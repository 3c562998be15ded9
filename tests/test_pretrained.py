"""Pre-trained weights: parts saved and loaded exactly, fresh parts untouched, clear refusals of bad files,
and ``scorenet train --init`` / ``TrainConfig.init`` starting from them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import scorenet.train as training
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from scorenet import checkpoint
from scorenet.checkpoint import FORMAT as CHECKPOINT_FORMAT
from scorenet.checkpoint import save_checkpoint
from scorenet.cli import main
from scorenet.demo_data import DEMO_MODEL_OVERRIDES, make_tile_folder
from scorenet.errors import CheckpointError, ScoreNetInputError
from scorenet.model import build_model
from scorenet.pretrained import (
    PARTS,
    PRETRAINED_FORMAT,
    check_init,
    load_init,
    part_of,
    read_pretrained_info,
    save_pretrained,
)

SMALL = DEMO_MODEL_OVERRIDES
SMALL_ARGS = [arg for key, value in SMALL.items() for arg in ("--set", f"{key}={value}")]


def _model(seed: int, num_classes: int = 2, **overrides) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model("scorenet_4_1", num_classes, **{**SMALL, **overrides})


def _state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.fixture(scope="module")
def source() -> torch.nn.Module:
    return _model(seed=1, num_classes=3)


@pytest.fixture
def full_file(source, tmp_path: Path) -> Path:
    path = tmp_path / "pre.safetensors"
    save_pretrained(source, path, PARTS, metadata={"task": "planted"})
    return path


def _assert_one_line(err: pytest.ExceptionInfo, path: Path) -> str:
    message = str(err.value)
    assert message.startswith(f"{path}: ") and "\n" not in message, message
    assert len(message) < 300 and "state_dict" not in message and "Missing key" not in message, message
    return message


ONE_OR_TWO_PARTS = [["scorer"], ["local_vit"], ["global_encoder"], ["global_encoder", "scorer"]]


@pytest.mark.parametrize("parts", ONE_OR_TWO_PARTS)
def test_each_part_round_trips_and_the_rest_stays_fresh(source, tmp_path: Path, parts) -> None:
    path = tmp_path / "pre.safetensors"
    save_pretrained(source, path, parts, metadata={"epochs": 3})
    with safe_open(str(path), framework="pt") as f:
        header, keys = f.metadata(), set(f.keys())
    assert keys == {k for k in source.state_dict() if part_of(k) in parts}  # exactly those parts
    assert ("head_weights" in keys) == ("scorer" in parts) and not any(k.startswith("head.") for k in keys)
    assert header["format"] == PRETRAINED_FORMAT and header["name"] == "scorenet_4_1"
    info = read_pretrained_info(path)
    assert info.parts == [p for p in PARTS if p in parts] and info.metadata == {"epochs": 3}
    assert info.config == source.config

    model, reference = _model(seed=0), _state(_model(seed=0))  # same seed: what a run without init has
    report = load_init(model, path)
    assert report.loaded == info.parts and report.fresh == [p for p in PARTS if p not in parts] + ["head"]
    assert report.source == path.resolve()
    loaded = {k for k in reference if part_of(k) in parts}
    for key, value in model.state_dict().items():
        expected = source.state_dict()[key] if key in loaded else reference[key]
        assert torch.equal(value, expected), key
    assert loaded and loaded != set(reference)


def test_a_full_checkpoint_gives_every_part_but_the_head(source, tmp_path: Path) -> None:
    path = tmp_path / "best.safetensors"
    save_checkpoint(source, path, ["a", "b", "c"])
    model, reference = _model(seed=0, num_classes=2), _state(_model(seed=0, num_classes=2))
    report = load_init(model, path)  # 3 classes in the file, 2 here: the head is not loaded
    assert report.loaded == list(PARTS) and report.fresh == ["head"] and report.format == CHECKPOINT_FORMAT
    expected = f"initialised scorer, local_vit, global_encoder from {path.resolve()}; fresh: head"
    assert report.summary() == expected
    for key, value in model.state_dict().items():
        expected = reference[key] if key.startswith("head.") else source.state_dict()[key]
        assert torch.equal(value, expected), key


def test_another_architecture_is_one_line_naming_the_fields(full_file: Path) -> None:
    model = _model(seed=0, depth=3, embed_dim=64)
    before = _state(model)
    with pytest.raises(CheckpointError) as err:
        load_init(model, full_file)
    message = _assert_one_line(err, full_file)
    assert "the file holds embed_dim 32, depth 2; this model has embed_dim 64, depth 3" in message
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # untouched
    with pytest.raises(CheckpointError, match="embed_dim 32, depth 2"):
        check_init(full_file, model.config)


def test_only_the_loaded_parts_must_match(source, tmp_path: Path) -> None:
    path = tmp_path / "scorer.safetensors"
    save_pretrained(source, path, ["scorer"])
    # a deeper global encoder and another top-K do not touch the scorer's weights
    assert load_init(_model(seed=0, global_depth=2, top_k=6), path).loaded == ["scorer"]
    with pytest.raises(CheckpointError, match="downscale 4; this model has downscale 8"):
        load_init(_model(seed=0, downscale=8), path)  # the scorer would see another magnification


def _broken_files(source, full_file: Path, tmp: Path) -> dict[str, tuple[Path, str]]:
    header = safe_open(str(full_file), framework="pt").metadata()
    tensors = load_file(full_file)
    files: dict[str, tuple[Path, str]] = {}

    def write(name: str, data: dict[str, torch.Tensor] | bytes, meta: dict | None, needle: str) -> None:
        path = tmp / f"{name}.safetensors"
        if isinstance(data, bytes):
            path.write_bytes(data)
        else:
            save_file(data, str(path), metadata=meta)
        files[name] = (path, needle)

    files["missing"] = (tmp / "absent.safetensors", "not found")
    write("garbage", b"\x80\x04 a pickle, never unpickled", None, "not a readable safetensors")
    write("truncated", full_file.read_bytes()[:-200], None, "not a readable safetensors")
    write("plain", tensors, None, "neither ScoreNet pre-trained weights nor a ScoreNet checkpoint")
    write("unknown_format", tensors, {**header, "format": "scorenet-pretrained-99"}, "neither ScoreNet")
    write("bad_parts", tensors, {**header, "parts": '["head"]'}, "corrupt pre-trained header")
    write("bad_config", tensors, {**header, "config": "{not json"}, "corrupt pre-trained header")
    lacking = {k: v for k, v in tensors.items() if k != "local_vit.norm.weight"}
    write("lacking", lacking, header, "lacks 1 tensor(s) of the parts it lists, e.g. local_vit.norm.weight")
    with_head = {**tensors, "head.weight": source.head.weight.detach().contiguous()}
    write("with_head", with_head, header, "1 unexpected tensor(s), e.g. head.weight")
    reshaped = {**tensors, "head_weights": torch.ones(3)}
    write("reshaped", reshaped, header, "tensor head_weights has shape [3] in the file, [2] in this model")
    return files


def test_bad_files_are_one_line_errors(source, full_file: Path, tmp_path: Path) -> None:
    model = _model(seed=0)
    before = _state(model)
    for name, (path, needle) in _broken_files(source, full_file, tmp_path).items():
        with pytest.raises(CheckpointError) as err:
            load_init(model, path)
        assert needle in _assert_one_line(err, path), name
        with pytest.raises(CheckpointError) as err:
            check_init(path, model.config)  # what the training run checks before reading any data
        assert needle in _assert_one_line(err, path), name
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_save_refuses_unknown_parts_and_writes_atomically(source, full_file: Path, monkeypatch) -> None:
    with pytest.raises(ScoreNetInputError, match="parts must be distinct names"):
        save_pretrained(source, full_file.parent / "x.safetensors", ["head"])
    with pytest.raises(ScoreNetInputError, match="parts must be distinct names"):
        save_pretrained(source, full_file.parent / "x.safetensors", ["scorer", "scorer"])
    before = full_file.read_bytes()

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint, "save_file", fail)  # the writer every ScoreNet file goes through
    with pytest.raises(OSError, match="disk full"):
        save_pretrained(source, full_file, ["scorer"])
    assert full_file.read_bytes() == before  # the old file survives a failed write
    assert [p.name for p in full_file.parent.iterdir()] == [full_file.name]


def test_check_init_predicts_load_init_and_keeps_the_rng(full_file: Path) -> None:
    model = _model(seed=0)
    rng = torch.get_rng_state()
    planned = check_init(full_file, model.config)
    assert torch.equal(torch.get_rng_state(), rng)  # its throw-away model draws no random numbers
    assert planned == load_init(model, full_file)
    assert torch.equal(torch.get_rng_state(), rng)


@pytest.fixture(scope="module")
def tiles(tmp_path_factory: pytest.TempPathFactory, tiles_dir: Path) -> Path:
    return make_tile_folder(tmp_path_factory.mktemp("pre") / "tiles", 6, seed=0, tiles_dir=tiles_dir)


def test_train_starts_from_the_loaded_weights(source, full_file: Path, tiles: Path, tmp_path, monkeypatch):
    started: list[dict[str, torch.Tensor]] = []
    make_optimizer = training.make_optimizer

    def spy(model, config):  # the weights the optimizer starts from
        started.append(_state(model))
        return make_optimizer(model, config)

    monkeypatch.setattr(training, "make_optimizer", spy)
    options = {"epochs": 1, "batch_size": 4, "lr": 0.01, "device": "cpu", "overrides": dict(SMALL)}
    result = training.train(training.TrainConfig(data=tiles, out=tmp_path / "run", init=full_file, **options))
    assert not result.stopped and len(started) == 1
    fresh = _state(_model(seed=0, num_classes=2))  # train() seeds with config.seed = 0
    for key, value in started[0].items():
        assert torch.equal(value, fresh[key] if key.startswith("head.") else source.state_dict()[key]), key
    recorded = json.loads((tmp_path / "run" / "train_config.json").read_text())
    assert recorded["init"] == str(full_file)
    assert recorded["init_report"] == {"source": str(full_file.resolve()), "format": PRETRAINED_FORMAT,
                                       "loaded": list(PARTS), "fresh": ["head"]}  # fmt: skip
    with pytest.raises(ScoreNetInputError, match=r"changed: init '.*pre.safetensors' -> None"):
        training.train(training.TrainConfig(data=tiles, out=tmp_path / "run", resume=True, **options))


def test_train_checks_the_init_file_before_the_data(full_file: Path, tmp_path: Path) -> None:
    config = training.TrainConfig(
        data=tmp_path / "no-data", out=tmp_path / "run", init=full_file, overrides={**SMALL, "num_heads": 4}
    )
    with pytest.raises(CheckpointError, match="num_heads 2; this model has num_heads 4"):
        training.train(config)


def test_cli_init(full_file: Path, tiles: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00" * 64)
    absent = tmp_path / "no-data"  # the init file is checked before the data is read
    cases = [
        ([str(absent), "--init", str(garbage), *SMALL_ARGS], "garbage.safetensors: not a readable"),
        ([str(absent), "--init", str(full_file), *SMALL_ARGS, "--set", "depth=3"], "has depth 3"),
    ]  # fmt: skip
    for argv, needle in cases:
        assert main(["train", *argv, "--out", str(tmp_path / "run"), "--device", "cpu"]) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"scorenet train: error: {tmp_path}"), lines
        assert needle in lines[0], lines
    assert not (tmp_path / "run").exists()
    argv = ["train", str(tiles), "--init", str(full_file), "--out", str(tmp_path / "run"), "--epochs", "1"]
    assert main([*argv, "--batch-size", "4", "--device", "cpu", *SMALL_ARGS]) == 0
    err = capsys.readouterr().err
    assert f"initialised scorer, local_vit, global_encoder from {full_file.resolve()}; fresh: head" in err
