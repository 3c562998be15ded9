"""Named training recipes and the choices they are made of (no torch import: the CLI reads them)."""

from __future__ import annotations

from typing import Any

OPTIMIZERS = ("sgd", "adamw")
# Named training recipes: the TrainConfig fields (and model overrides) each one sets. "paper" is the
# paper's finetuning recipe (App. B.1), meant for weights that start from pre-training; "scratch" is the
# recipe chosen by measurement for a randomly initialised model (docs/training.md, "Recipes").
RECIPES: dict[str, dict[str, Any]] = {
    "paper": {
        "optimizer": "sgd",
        "lr": None,
        "weight_decay": 0.0,
        "warmup_epochs": 0.0,
        "scorer_lr_scale": 1.0,
        "scorer_freeze_epochs": 0.0,
        "sigma_schedule": "constant",
        "epochs": 15,
    },
    "scratch": {
        "optimizer": "adamw",
        "lr": 5e-4,
        "weight_decay": 0.05,
        "warmup_epochs": 1.0,
        "scorer_lr_scale": 1.0,
        "scorer_freeze_epochs": 0.0,
        # explore, then exploit: noise half the scores' [0, 1] range, decayed linearly to 0
        "sigma_schedule": "linear",
        "epochs": 15,
        "overrides": {"score_scaling": "minmax", "sigma": 0.5},
    },
}
SIGMA_SCHEDULES = ("constant", "linear")
