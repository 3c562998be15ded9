"""Named training recipes and the choices they are made of (no torch import: the CLI reads them)."""

from __future__ import annotations

from typing import Any

OPTIMIZERS = ("sgd", "adamw")
# Named training recipes: the TrainConfig fields (and model overrides) each one sets. "paper" is the
# paper's finetuning recipe (App. B.1), meant for weights that start from pre-training; "scratch" is the
# recipe chosen by measurement for a randomly initialised model (docs/training.md, "Recipes").
RECIPES: dict[str, dict[str, Any]] = {
    # the paper's recipe is TrainConfig's own defaults: SGD momentum 0.9, lr 1e-2 * batch / 256, no
    # weight decay or warm-up, cosine to 1e-6, 15 epochs, fixed top-K noise
    "paper": {},
    # the paper's optimiser (AdamW fitted faster but sent the scorer away from the carcinoma in 4 of 16
    # measured runs, SGD in none of 4); what differs is the top-K noise: the scores scaled to [0, 1]
    # per image, sigma 0.5 (explore) decayed linearly to 0 (exploit)
    "scratch": {"sigma_schedule": "linear", "overrides": {"score_scaling": "minmax", "sigma": 0.5}},
}
SIGMA_SCHEDULES = ("constant", "linear")
