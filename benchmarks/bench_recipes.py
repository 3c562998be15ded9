"""Which learning signal trains the scorer from scratch: recipe, score scaling, sigma schedule, samples.

    python benchmarks/bench_recipes.py benchmarks/results/recipes.json [--jobs 2] [--seeds 0 1]
        [--variants NAME ...]

Each variant trains ScoreNet/4/1 on the planted task (no mixing, 100 % of the data) through
``scorenet.bench.learning`` and scores the test split: weighted F1, top-K in planted, distribution AUC
and concentration. Variants run in parallel processes of one intra-op thread each; finished runs are
reused (``resume``), so an interrupted comparison goes on where it stopped.
"""

from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from scorenet.atomic import atomic_write
from scorenet.bench.learning import LearningOptions, run_suite
from scorenet.bench.report import environment
from scorenet.paths import cache_dir

_ADAMW = {"optimizer": "adamw", "lr": 5e-4, "weight_decay": 0.05, "warmup_epochs": 1.0}
# name -> (task, recipe, TrainConfig overrides, model overrides on top of K = 8)
_EXPLORE = {"score_scaling": "minmax", "sigma": 0.5}
_DECAY = {"sigma_schedule": "linear"}
VARIANTS: dict[str, tuple[str, str, dict[str, Any], dict[str, Any]]] = {
    "paper-uniform": ("kind", "paper", {}, {}),
    "adamw-uniform": ("kind", "paper", _ADAMW, {}),
    "adamw-minmax": ("kind", "paper", _ADAMW, {"score_scaling": "minmax"}),
    "adamw-minmax-decay": ("kind", "paper", {**_ADAMW, **_DECAY}, {"score_scaling": "minmax"}),
    "adamw-minmax-explore": ("kind", "paper", {**_ADAMW, **_DECAY}, _EXPLORE),
    "adamw-minmax-explore-s500": ("kind", "paper", {**_ADAMW, **_DECAY}, {**_EXPLORE, "num_samples": 500}),
    "adamw-minmax-explore-s1000": ("kind", "paper", {**_ADAMW, **_DECAY}, {**_EXPLORE, "num_samples": 1000}),
    "adamw-minmax-explore-regions-only": (
        "kind",
        "paper",
        {**_ADAMW, **_DECAY},
        {**_EXPLORE, "scorer_cls_in_head": 0},
    ),
    "adamw-minmax-explore-freeze": (
        "kind",
        "paper",
        {**_ADAMW, **_DECAY, "scorer_freeze_epochs": 3.0},
        _EXPLORE,
    ),
    "paper-minmax-explore": ("kind", "paper", _DECAY, _EXPLORE),
    # the scratch recipe (= paper-minmax-explore) with one training choice changed
    "scratch-scorer-lr-x10": ("kind", "scratch", {"scorer_lr_scale": 10.0}, {}),
    "scratch-scorer-lr-x0.1": ("kind", "scratch", {"scorer_lr_scale": 0.1}, {}),
    "scratch-warmup": ("kind", "scratch", {"warmup_epochs": 1.0}, {}),
    "scratch-20-epochs": ("kind", "scratch", {"epochs": 20}, {}),
}


def run_variant(name: str, seeds: tuple[int, ...], epochs: int) -> dict[str, Any]:
    import torch

    torch.set_num_threads(1)  # two single-threaded runs beat one two-threaded run on a shared CPU
    task, recipe, train_overrides, model_overrides = VARIANTS[name]
    train_overrides = dict(train_overrides)
    epochs = train_overrides.pop("epochs", epochs)
    options = LearningOptions(
        work_dir=cache_dir() / "bench-recipes" / name,
        mixes=("none",),
        fractions=(100,),
        seeds=seeds,
        epochs=epochs,
        task=task,
        recipe=recipe,
        train_overrides=train_overrides,
        model_overrides={"top_k": 8, "num_samples": 100, **model_overrides},
        resume=True,
    )
    result = run_suite(options)
    return {"variant": name, "task": task, "train": VARIANTS[name][2], "model": model_overrides, **result}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    args = parser.parse_args(argv)
    with ProcessPoolExecutor(args.jobs) as pool:
        futures = {n: pool.submit(run_variant, n, tuple(args.seeds), args.epochs) for n in args.variants}
        results = {n: f.result() for n, f in futures.items()}
    rows = [
        {"variant": n, "task": r["task"], **{k: v for k, v in r["results"][0].items() if k not in ("mix",)}}
        for n, r in results.items()
    ]
    report = {
        "suite": "recipes",
        "command": " ".join(["python", "benchmarks/bench_recipes.py", *(argv or sys.argv[1:])]),
        "environment": environment("cpu"),
        "epochs": args.epochs,
        "seeds": args.seeds,
        "variants": {
            n: {"task": r["task"], "train": r["train"], "model": r["model"]} for n, r in results.items()
        },
        "chance": {n: r["chance"] for n, r in results.items()},
        "results": rows,
        "runs": {n: r["runs"] for n, r in results.items()},
    }
    atomic_write(args.out, json.dumps(report, indent=2))
    for row in rows:
        print(
            f"{row['variant']:<24} F1 {row['weighted_f1']:.3f}  top-K in planted {row['topk_in_planted']:.3f}"
            f"  AUC {row['auc']:.3f}  max/min {row['max_over_min']:.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
