"""Learning benchmark on the planted task: mixing method x training-set fraction x seed.

Each run trains ScoreNet/4/1 with ``scorenet.train`` on the planted task (``planted.py``), then scores
the held-out test split with the best checkpoint:

- ``weighted_f1``: sklearn's F1 averaged over classes, weighted by support;
- ``topk_in_planted``: fraction of the K selected regions that are planted carcinoma, over the test
  images that have some;
- ``auc``: per test image with planted carcinoma, the ROC AUC of the semantic distribution against the
  regions' planted labels (sklearn ``roc_auc_score``), averaged over images;
- how concentrated the test distributions are (``scorenet.concentration``): the median over test images
  of the highest cell over the lowest, and the means of the share of mass in the K selected cells and
  of the effective number of regions exp(entropy).

A region counts as planted carcinoma when at least ``REGION_PLANTED_FRACTION`` of its pixels are
planted (the paper's CAMELYON16 figures, 74.6 % and 73.6 %, use tumour annotations the same way).
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..concentration import concentration
from ..paths import cache_dir
from . import planted

MIXES = ("none", "cutmix", "saliencymix", "scoremix")
REGION_PLANTED_FRACTION = 0.25
RUN_METRICS = ("weighted_f1", "topk_in_planted", "auc", "max_over_min", "topk_mass", "effective_regions")
PAPER = {"topk_in_planted": 0.746, "auc": 0.736, "dataset": "CAMELYON16"}


@dataclass
class LearningOptions:
    """The grid and the size of each run. Defaults: the full grid (about 70 minutes at two runs at a
    time on a 2-core CPU, docs/benchmarks.md)."""

    work_dir: Path = field(default_factory=lambda: cache_dir() / "bench-learning")
    mixes: tuple[str, ...] = MIXES
    fractions: tuple[int, ...] = (10, 20, 50, 100)  # percent of the training split
    seeds: tuple[int, ...] = (0, 1, 2)
    epochs: int = 10
    batch_size: int = 8
    counts: dict[str, int] = field(default_factory=lambda: {"train": 120, "val": 30, "test": 60})
    task_seed: int = 0
    device: str = "cpu"
    resume: bool = False  # reuse runs finished earlier with the same settings
    collect: bool = False  # train nothing: report the runs finished earlier, list the missing ones
    task: str = "kind"  # planted task (planted.TASK_CLASSES)
    # a 6 x 8 grid at 768 x 1024: K = 8 of 48 regions (K = 20 would select 42 % of the image)
    model_overrides: dict[str, Any] = field(default_factory=lambda: {"top_k": 8, "num_samples": 100})
    # TrainConfig fields on top of the recipe: the recipe's own choices unless set here
    recipe: str = "scratch"
    train_overrides: dict[str, Any] = field(default_factory=dict)


def options_from_args(args: argparse.Namespace) -> LearningOptions:
    """Options from ``scorenet bench`` arguments; ``--quick`` is 4 runs (every mix, 100 %, one seed)."""
    options = LearningOptions(device=args.device)
    if args.quick:
        options.fractions, options.seeds, options.epochs = (100,), (0,), 4
        options.counts = {"train": 30, "val": 12, "test": 18}
    if getattr(args, "work_dir", None):
        options.work_dir = args.work_dir
    for name in ("fractions", "seeds", "mixes"):
        if getattr(args, name, None):
            setattr(options, name, tuple(getattr(args, name)))
    if getattr(args, "epochs", None):
        options.epochs = args.epochs
    for name in ("recipe", "task"):
        if getattr(args, name, None):
            setattr(options, name, getattr(args, name))
    if getattr(args, "init", None):
        options.train_overrides["init"] = str(args.init)
    options.resume = bool(getattr(args, "resume", False))
    options.collect = bool(getattr(args, "collect", False))
    unknown = sorted(set(options.mixes) - set(MIXES))
    if unknown:
        from ..errors import ScoreNetInputError

        raise ScoreNetInputError(f"unknown mix(es) {', '.join(unknown)}; choose from {', '.join(MIXES)}")
    return options


def region_planted_fraction(mask: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """Fraction of planted pixels in each cell of a (gh, gw) grid laid over the (H, W) mask."""
    gh, gw = grid
    h, w = mask.shape
    rows = np.linspace(0, h, gh + 1).round().astype(int)
    cols = np.linspace(0, w, gw + 1).round().astype(int)
    return np.array(
        [[mask[rows[i] : rows[i + 1], cols[j] : cols[j + 1]].mean() for j in range(gw)] for i in range(gh)]
    )


def region_metrics(
    distribution: np.ndarray, indices: np.ndarray, mask: np.ndarray
) -> tuple[float, float | None] | None:
    """(fraction of selected regions that are planted, AUC of the distribution) for one image.

    ``distribution`` (gh, gw), ``indices`` (K,) row-major, ``mask`` (H, W) bool. None when the image
    has no planted region; the AUC is None when every region is planted.
    """
    from sklearn.metrics import roc_auc_score

    positive = (region_planted_fraction(mask, distribution.shape) >= REGION_PLANTED_FRACTION).ravel()
    if not positive.any():
        return None
    in_planted = float(positive[indices].mean())
    auc = None if positive.all() else float(roc_auc_score(positive, distribution.ravel()))
    return in_planted, auc


def chance_topk_in_planted(task_dir: Path, grid: tuple[int, int]) -> float:
    """``topk_in_planted`` of a selection drawn at random: the mean share of planted regions in the
    test images that have some (the AUC of a random distribution is 0.5)."""
    meta = json.loads((task_dir / "planted.json").read_text())
    shares = []
    for record in meta["images"]["test"]:
        fraction = region_planted_fraction(planted.read_mask(task_dir / record["mask"]), grid)
        positive = fraction >= REGION_PLANTED_FRACTION
        if positive.any():
            shares.append(float(positive.mean()))
    return float(np.mean(shares))


def evaluate_run(checkpoint: Path, task_dir: Path, device: str = "cpu") -> dict[str, Any]:
    """Weighted F1, top-K-in-planted and AUC of a checkpoint on the task's test split."""
    from sklearn.metrics import f1_score

    from ..checkpoint import load_checkpoint

    model, info = load_checkpoint(checkpoint, map_location=device)
    model.eval()
    meta = json.loads((task_dir / "planted.json").read_text())
    labels, predicted, in_planted, aucs, spread = [], [], [], [], []
    for record in meta["images"]["test"]:
        with Image.open(task_dir / record["image"]) as im:
            image = torch.from_numpy(np.array(im.convert("RGB"))).permute(2, 0, 1)[None].to(device)
        with torch.inference_mode():
            out = model(image)
        spread.append(concentration(out.distribution[0].cpu().numpy(), model.config.top_k))
        # class folders are sorted by name in ImageFolder order; map the checkpoint's names back
        name = info.class_names[int(out.logits.argmax(1))]
        labels.append(record["label"])
        predicted.append(meta["class_names"].index(name) if name in meta["class_names"] else -1)
        found = region_metrics(
            out.distribution[0].cpu().numpy(),
            out.indices[0].cpu().numpy(),
            planted.read_mask(task_dir / record["mask"]),
        )
        if found is not None:
            in_planted.append(found[0])
            if found[1] is not None:
                aucs.append(found[1])
    return {
        "weighted_f1": float(f1_score(labels, predicted, average="weighted")),
        "accuracy": float(np.mean(np.array(labels) == np.array(predicted))),
        "topk_in_planted": float(np.mean(in_planted)) if in_planted else None,
        "auc": float(np.mean(aucs)) if aucs else None,
        "max_over_min": float(np.median([c["max_over_min"] for c in spread])),
        "topk_mass": float(np.mean([c["topk_mass"] for c in spread])),
        "effective_regions": float(np.mean([c["effective_regions"] for c in spread])),
        "test_images": len(labels),
    }


def train_run(
    task_dir: Path, run_dir: Path, mix: str, fraction: int, seed: int, options: LearningOptions
) -> Path:
    """Train one configuration with ``scorenet.train``; returns the best checkpoint."""
    from ..train import TrainConfig, train

    config = TrainConfig.from_recipe(
        options.recipe,
        data=task_dir,
        out=run_dir,
        model="scorenet_4_1",
        epochs=options.epochs,
        batch_size=options.batch_size,
        mix=mix,
        fraction=fraction / 100,
        seed=seed,
        device=options.device,
        overrides=dict(options.model_overrides),
        **options.train_overrides,
    )
    return Path(train(config).best_checkpoint)


def summarize(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and standard deviation over seeds for each (mix, fraction)."""
    rows = []
    keyed = sorted(runs, key=lambda r: (MIXES.index(r["mix"]), r["fraction"]))
    for (mix, fraction), group in itertools.groupby(keyed, key=lambda r: (r["mix"], r["fraction"])):
        group = list(group)
        row: dict[str, Any] = {"mix": mix, "fraction": fraction, "runs": len(group)}
        for metric in RUN_METRICS:
            values = [r[metric] for r in group if r.get(metric) is not None]
            row[metric] = float(np.mean(values)) if values else None
            row[f"{metric}_std"] = float(np.std(values)) if values else None
        rows.append(row)
    return rows


def _grid(options: LearningOptions) -> tuple[int, int]:
    """The region grid of the task's images for the benchmarked model."""
    from ..config import ScoreNetConfig
    from ..regions import grid_size

    config = ScoreNetConfig(**options.model_overrides)
    return grid_size(
        planted.PlantedConfig().height, planted.PlantedConfig().width, config.region_size, config.top_k
    )


def _run_settings(options: LearningOptions) -> dict[str, Any]:
    """What makes two runs of the same (mix, fraction, seed) comparable."""
    return {
        "epochs": options.epochs,
        "batch_size": options.batch_size,
        "counts": dict(options.counts),
        "task_seed": options.task_seed,
        "task": options.task,
        "model_overrides": dict(options.model_overrides),
        "recipe": options.recipe,
        "train_overrides": dict(options.train_overrides),
    }


def _finished_run(record_path: Path, settings: dict[str, Any]) -> dict[str, Any] | None:
    """The record of a run finished earlier with the same settings, or None."""
    try:
        saved = json.loads(record_path.read_text())
    except (OSError, ValueError):
        return None
    return saved["run"] if saved.get("settings") == settings else None


def run_suite(options: LearningOptions) -> dict[str, Any]:
    """Generate the planted task, train and evaluate the whole grid; one JSON-able dict.

    Each finished run leaves ``runs/<mix>-<fraction>-<seed>/bench-run.json``; with ``resume`` a run
    whose record has the same settings is reused, so an interrupted hour-long grid goes on where it
    stopped.
    """
    from ..atomic import atomic_path

    counts = "-".join(f"{split}{n}" for split, n in options.counts.items())
    task_config = planted.PlantedConfig(task=options.task)
    task_dir = options.work_dir / f"planted-{options.task}-{counts}-seed{options.task_seed}"
    if not (task_dir / "planted.json").is_file():
        planted.write_image_folder(task_dir, options.counts, seed=options.task_seed, config=task_config)
    settings = _run_settings(options)
    runs, missing = [], []
    for mix, fraction, seed in itertools.product(options.mixes, options.fractions, options.seeds):
        run_dir = options.work_dir / "runs" / f"{mix}-{fraction}-{seed}"
        record_path = run_dir / "bench-run.json"
        record = _finished_run(record_path, settings) if options.resume or options.collect else None
        if record is None and options.collect:
            missing.append({"mix": mix, "fraction": fraction, "seed": seed})
            continue
        if record is None:
            start = time.perf_counter()
            shutil.rmtree(run_dir, ignore_errors=True)  # a fresh run, never a half-trained one
            checkpoint = train_run(task_dir, run_dir, mix, fraction, seed, options)
            metrics = evaluate_run(checkpoint, task_dir, options.device)
            record = {
                "mix": mix,
                "fraction": fraction,
                "seed": seed,
                **metrics,
                "seconds": time.perf_counter() - start,
            }
            with atomic_path(record_path) as tmp:
                tmp.write_text(json.dumps({"settings": settings, "run": record}, indent=2))
            status = ""
        else:
            status = " (earlier run)"
        runs.append(record)
        print(
            f"  {mix:<12} {fraction:>3}% seed {seed}: weighted F1 {record['weighted_f1']:.3f}{status}",
            flush=True,
        )
    opts = asdict(options)
    opts["work_dir"] = str(options.work_dir)
    return {
        "suite": "learning",
        "task": {
            "generator": "scorenet.bench.planted",
            "name": options.task,
            "class_names": list(task_config.class_names),
            "image_size": [planted.PlantedConfig().height, planted.PlantedConfig().width],
            "region_planted_fraction": REGION_PLANTED_FRACTION,
        },
        "options": opts,
        "paper": PAPER,
        "chance": {"topk_in_planted": chance_topk_in_planted(task_dir, _grid(options)), "auc": 0.5},
        "results": summarize(runs),
        "runs": runs,
        "missing_runs": missing,
    }
