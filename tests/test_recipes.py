"""Training recipes and schedules: warm-up and cosine, the scorer's own learning rate, sigma decay."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from scorenet.demo_data import DEMO_MODEL_OVERRIDES, make_tile_folder
from scorenet.errors import ScoreNetInputError
from scorenet.model import build_model
from scorenet.recipes import RECIPES
from scorenet.train import TrainConfig, cosine_scheduler, lr_factor, make_optimizer, sigma_at, train


def test_lr_factor_warms_up_linearly_then_follows_the_cosine():
    factors = [lr_factor(step, 100, 10, 0.01) for step in range(100)]
    assert factors[:10] == pytest.approx([(i + 1) / 10 for i in range(10)])
    assert factors[10] == pytest.approx(1.0)
    assert factors[55] == pytest.approx(0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * 45 / 90)))
    assert lr_factor(100, 100, 10, 0.01) == pytest.approx(0.01)
    after = factors[10:]
    assert all(a >= b for a, b in zip(after[:-1], after[1:], strict=True))  # never rises after the warm-up


def test_sigma_decays_linearly_and_stays_positive():
    assert sigma_at(0, 100, 0.5, "constant") == sigma_at(99, 100, 0.5, "constant") == 0.5
    assert sigma_at(0, 100, 0.5, "linear") == 0.5
    assert sigma_at(50, 100, 0.5, "linear") == pytest.approx(0.25)
    assert 0 < sigma_at(100, 100, 0.5, "linear") < 1e-3


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_scorer_has_its_own_learning_rate(optimizer, tmp_path):
    config = TrainConfig(data=tmp_path, out=tmp_path, optimizer=optimizer, lr=1e-3, scorer_lr_scale=3.0)
    model = build_model("scorenet_4_1", num_classes=2, **DEMO_MODEL_OVERRIDES)
    opt = make_optimizer(model, config)
    rest, scorer = opt.param_groups
    assert rest["lr"] == pytest.approx(1e-3) and scorer["lr"] == pytest.approx(3e-3)
    scorer_ids = {id(p) for p in scorer["params"]}
    named = dict(model.named_parameters())
    assert id(named["head_weights"]) in scorer_ids
    assert all(id(p) in scorer_ids for n, p in named.items() if n.startswith("scorer."))
    assert len(scorer_ids) + len(rest["params"]) == len(named)
    assert isinstance(opt, torch.optim.AdamW if optimizer == "adamw" else torch.optim.SGD)


def test_from_recipe_fills_unset_fields_and_keeps_chosen_ones(tmp_path):
    scratch = TrainConfig.from_recipe("scratch", data=tmp_path, out=tmp_path)
    for key, value in RECIPES["scratch"].items():
        if key != "overrides":
            assert getattr(scratch, key) == value
    assert scratch.overrides == RECIPES["scratch"].get("overrides", {}) and scratch.recipe == "scratch"
    paper = TrainConfig.from_recipe(
        "paper", data=tmp_path, out=tmp_path, batch_size=16, overrides={"top_k": 4}
    )
    assert paper.optimizer == "sgd" and paper.base_lr == pytest.approx(1e-2 * 16 / 256)
    assert paper.overrides["top_k"] == 4
    chosen = TrainConfig.from_recipe("scratch", data=tmp_path, out=tmp_path, lr=1e-3, epochs=2)
    assert chosen.lr == 1e-3 and chosen.epochs == 2
    with pytest.raises(ScoreNetInputError, match="unknown recipe"):
        TrainConfig.from_recipe("fast", data=tmp_path, out=tmp_path)


def test_bad_schedule_options_are_refused(tmp_path):
    for bad in (
        {"optimizer": "lamb"},
        {"scorer_lr_scale": 0},
        {"warmup_epochs": 15},
        {"sigma_schedule": "cos"},
    ):
        with pytest.raises(ScoreNetInputError):
            TrainConfig(data=tmp_path, out=tmp_path, **bad).check()


@pytest.fixture(scope="module")
def tiles(tmp_path_factory: pytest.TempPathFactory, tiles_dir: Path) -> Path:
    return make_tile_folder(tmp_path_factory.mktemp("recipes") / "tiles", 8, seed=0, tiles_dir=tiles_dir)


def test_training_applies_warmup_and_sigma_schedule(tiles, tmp_path, monkeypatch):
    seen: list[float] = []
    from scorenet import model as model_module

    real_topk = model_module.perturbed_topk

    def spy(scores, k, sigma, num_samples, **kwargs):
        seen.append(sigma)
        return real_topk(scores, k, sigma, num_samples, **kwargs)

    monkeypatch.setattr(model_module, "perturbed_topk", spy)
    config = TrainConfig.from_recipe(
        "scratch", data=tiles, out=tmp_path / "run", epochs=2, batch_size=4, device="cpu",
        lr=5e-4, sigma_schedule="linear", warmup_epochs=1.0, overrides={**DEMO_MODEL_OVERRIDES, "sigma": 0.2},
    )  # fmt: skip
    events: list[dict] = []
    result = train(config, progress=lambda e: events.append(e.info))
    steps = [e for e in events if "train_loss" not in e]
    total = len(steps)
    # sigma falls linearly from 0.2 over the run's steps; ScoreMix is off, so one call per step
    assert seen == pytest.approx([0.2 * (1 - i / total) for i in range(total)])
    lrs = [e["lr"] for e in steps]
    warmup = total // 2
    assert lrs[:warmup] == pytest.approx([5e-4 * (i + 1) / warmup for i in range(warmup)])
    assert max(lrs) == pytest.approx(5e-4) and lrs[-1] < lrs[warmup]
    assert result.history[-1]["epoch"] == 2


def test_frozen_scorer_waits_then_warms_up_under_the_same_cosine():
    model = build_model("scorenet_4_1", num_classes=2, **DEMO_MODEL_OVERRIDES)
    config = TrainConfig(data=".", out=".", optimizer="adamw", lr=1e-3)
    optimizer = make_optimizer(model, config)
    scheduler = cosine_scheduler(optimizer, total_steps=40, min_lr=1e-6, warmup_steps=4, delays=[0, 10])
    rest, scorer = [], []
    for _ in range(40):
        rest.append(optimizer.param_groups[0]["lr"])
        scorer.append(optimizer.param_groups[1]["lr"])
        optimizer.step()
        scheduler.step()
    assert scorer[:10] == [0.0] * 10 and rest[0] == pytest.approx(2.5e-4)
    assert scorer[10:14] == pytest.approx([rest[i] * (i - 9) / 4 for i in range(10, 14)])
    assert scorer[14:] == pytest.approx(rest[14:])  # after its warm-up, the shared cosine


def test_frozen_scorer_does_not_move_in_training(tiles, tmp_path):
    from scorenet.checkpoint import load_checkpoint

    config = TrainConfig.from_recipe(
        "scratch", data=tiles, out=tmp_path / "run", epochs=2, batch_size=4, device="cpu",
        scorer_freeze_epochs=1.99, overrides=dict(DEMO_MODEL_OVERRIDES),
    )  # fmt: skip
    torch.manual_seed(config.seed)  # the run builds its model the same way
    initial = build_model(config.model, num_classes=2, **config.overrides).state_dict()
    trained, _ = load_checkpoint(train(config).last_checkpoint)
    after = trained.state_dict()
    moved = {n for n in initial if not torch.equal(after[n], initial[n])}
    scorer = {n for n in initial if n.startswith("scorer.") or n == "head_weights"}
    assert moved and not moved & scorer
    assert any(n.startswith("local_vit.") for n in moved)
