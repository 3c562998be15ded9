"""One source of choices and defaults: scorenet.choices against the library, the CLI and the widgets."""

from __future__ import annotations

import argparse
import inspect
import os
import subprocess
import sys
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any

import pytest
import torch
from scorenet import evaluate
from scorenet.choices import (
    DEFAULT_RECIPE,
    PRETRAIN,
    TRAIN,
    Device,
    Mix,
    Model,
    PretrainDefaults,
    RoiSource,
    TrainDefaults,
    values,
)
from scorenet.cli import build_parser
from scorenet.config import MODEL_CONFIGS
from scorenet.inference import resolve_device
from scorenet.mixing import MIX_METHODS
from scorenet.pretrain import PretrainConfig
from scorenet.recipes import RECIPES
from scorenet.train import TrainConfig

# Qt aborts the whole run without a display; pytest-xvfb provides one (it is off under -p no:xvfb)
DISPLAY_VARIABLES = ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")
needs_display = pytest.mark.skipif(
    sys.platform.startswith("linux") and not any(os.environ.get(v) for v in DISPLAY_VARIABLES),
    reason="needs a display (pytest-xvfb)",
)
# CLI dest -> TrainConfig / PretrainConfig field, where the names differ
RENAMED = {"workers": "num_workers", "teacher_momentum": "momentum_teacher"}
# not options with a default: the command itself, paths, flags and repeatable overrides
NOT_DEFAULTS = {"command", "verbose", "func", "data", "sources", "out", "overrides"}
NOT_DEFAULTS |= {"recipe", "no_amp", "resume"}  # checked on their own


def _defaults(config: type) -> dict[str, Any]:
    """A dataclass's field defaults (default factories called)."""
    out = {}
    for f in fields(config):
        if f.default is not MISSING:
            out[f.name] = f.default
        elif f.default_factory is not MISSING:
            out[f.name] = f.default_factory()
    return out


def _subparser(command: str) -> argparse.ArgumentParser:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[command]


def _option(command: str, dest: str) -> argparse.Action:
    return next(a for a in _subparser(command)._actions if a.dest == dest)


def test_choices_and_cli_parser_import_no_torch() -> None:
    code = (
        "import sys; import scorenet.choices; from scorenet.cli import build_parser; build_parser(); "
        "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_enums_are_the_library_names() -> None:
    assert values(Model) == tuple(MODEL_CONFIGS)
    assert values(Mix) == tuple(MIX_METHODS)  # the same order, too
    assert resolve_device(Device.AUTO).type in {"cpu", "cuda", "mps"}
    for device in set(Device) - {Device.AUTO}:
        assert torch.device(device.value).type == device.value
    assert DEFAULT_RECIPE in RECIPES
    assert len(set(values(RoiSource))) == 4
    assert [m.label for m in Mix] == ["none", "CutMix", "SaliencyMix", "ScoreMix"]
    assert f"{Mix.SCOREMIX}" == str(Mix.SCOREMIX) == "scoremix" == Mix.SCOREMIX


def test_config_dataclasses_take_their_defaults_from_choices() -> None:
    train, pretrain = _defaults(TrainConfig), _defaults(PretrainConfig)
    for name, value in ((f.name, getattr(TRAIN, f.name)) for f in fields(TrainDefaults)):
        assert train[name] == value and type(train[name]) is type(value), name
    for name, value in ((f.name, getattr(PRETRAIN, f.name)) for f in fields(PretrainDefaults)):
        assert pretrain[name] == value, name
    # names stay plain strings in configs, their JSON and checkpoints
    assert type(train["model"]) is str and type(train["mix"]) is str and type(train["device"]) is str


def _parsed_defaults(args: argparse.Namespace) -> dict[str, Any]:
    """The options a bare command line gives a value, by config field name (None: left to the config)."""
    given = {k: v for k, v in vars(args).items() if k not in NOT_DEFAULTS and v is not None}
    return {RENAMED.get(k, k): v for k, v in given.items()}


def test_cli_train_defaults_are_the_default_recipes_config(tmp_path: Path) -> None:
    args = build_parser().parse_args(["train", str(tmp_path), "--out", str(tmp_path / "run")])
    config = TrainConfig.from_recipe(DEFAULT_RECIPE, data=tmp_path, out=tmp_path / "run")
    parsed = _parsed_defaults(args)
    assert parsed == {name: getattr(config, name) for name in parsed} and len(parsed) >= 10
    assert args.recipe == DEFAULT_RECIPE and args.no_amp is (not config.amp)
    # options a recipe sets stay unset, so that the recipe decides them
    assert args.epochs is None and args.sigma_schedule is None
    assert _option("train", "model").choices == values(Model)
    assert _option("train", "mix").choices == values(Mix)
    # what the help says the recipe-set options default to
    assert f"default: {config.epochs}" in _option("train", "epochs").help
    assert all(d in _option("train", "device").help for d in values(Device))


def test_cli_pretrain_and_eval_defaults_are_the_librarys(tmp_path: Path) -> None:
    args = build_parser().parse_args(["pretrain", str(tmp_path), "--out", str(tmp_path / "pre")])
    config = PretrainConfig(sources=[str(tmp_path)], out=tmp_path / "pre")
    parsed = _parsed_defaults(args)
    assert parsed == {name: getattr(config, name) for name in parsed} and len(parsed) >= 12
    assert _option("pretrain", "model").choices == values(Model)
    args = build_parser().parse_args(["eval", str(tmp_path), "--checkpoint", "c", "--out", str(tmp_path)])
    for dest in ("batch_size", "folds", "device"):
        assert getattr(args, dest) == _keyword_default(evaluate, dest), dest
    assert args.device == Device.AUTO


def _keyword_default(module: Any, name: str) -> Any:
    """The default of keyword ``name`` of the evaluation entry points (or of what they hand it to)."""
    entry_points = ("evaluate_checkpoint", "iter_evaluate_checkpoint", "probe_checkpoint")
    found = {
        inspect.signature(getattr(module, f)).parameters[name].default
        for f in entry_points
        if hasattr(module, f) and name in inspect.signature(getattr(module, f)).parameters
    }
    assert len(found) == 1, (name, found)
    return found.pop()


def _items(box) -> tuple[str, ...]:
    return tuple(box.itemText(i) for i in range(box.count()))


@pytest.mark.gui
@needs_display
def test_finetune_and_evaluate_widgets_start_at_the_defaults(make_napari_viewer) -> None:
    from napari_scorenet._widgets.evaluate import EvaluateWidget
    from napari_scorenet._widgets.finetune import FinetuneWidget

    viewer = make_napari_viewer()
    widget = FinetuneWidget(viewer)
    config = TrainConfig.from_recipe(DEFAULT_RECIPE, data=".", out=".")
    assert _items(widget.model) == values(Model) and widget.model.currentText() == config.model
    assert _items(widget.recipe) == tuple(RECIPES) and widget.recipe.currentText() == DEFAULT_RECIPE
    assert _items(widget.mix) == values(Mix) and widget.mix.currentText() == config.mix
    assert _items(widget.device) == values(Device) and widget.device.currentText() == config.device
    assert widget.epochs.value() == config.epochs and widget.batch_size.value() == config.batch_size
    assert widget.fraction.value() == config.fraction
    assert _items(EvaluateWidget(viewer).device) == values(Device)


@pytest.mark.gui
@needs_display
def test_pretrain_score_and_preview_widgets_list_the_enums(make_napari_viewer) -> None:
    from napari_scorenet._widgets.pretrain import PretrainWidget
    from napari_scorenet._widgets.score_roi import ScoreRoIWidget
    from napari_scorenet._widgets.scoremix_preview import ScoreMixPreviewWidget

    viewer = make_napari_viewer()
    widget = PretrainWidget(viewer)
    config = PretrainConfig(sources=["."], out=".")
    assert _items(widget.model) == values(Model) and widget.model.currentText() == config.model
    assert widget.mode.currentText() == config.mode and widget.part.currentText() == config.part
    assert _items(widget.device) == values(Device) and widget.device.currentText() == config.device
    spins = (widget.epochs, widget.samples, widget.batch_size, widget.local_crops)
    assert [s.value() for s in spins] == [config.epochs, config.samples_per_epoch, config.batch_size,
                                          config.local_crops]  # fmt: skip
    score = ScoreRoIWidget(viewer)
    assert _items(score.source_box) == values(RoiSource) and _items(score.device) == values(Device)
    preview = ScoreMixPreviewWidget(viewer)
    assert _items(preview.method) == tuple(m.label for m in Mix if m is not Mix.NONE)
    assert preview.method.currentText() == Mix.SCOREMIX.label
