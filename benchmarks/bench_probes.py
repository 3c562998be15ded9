"""Frozen-feature probes of pre-trained ScoreNet weights against a random initialisation.

    python benchmarks/bench_probes.py OUT.json [--pretrained FILE ...] [--seeds 0 1 2]
        [--model scorenet_4_1] [--override KEY=VALUE ...] [--stride 32] [--work-dir DIR]

For the random initialisation (the first pre-trained file's architecture, else ``--model``) and for
each pre-trained file, every seed (which draws the fresh weights):

- ``density``: the local ViT's last [CLS] state of 128 x 128 windows of the tumour-nest tile, on the
  stain-matched nucleus-density task (``scorenet.bench.probe_tasks``): linear probe and 1-NN fitted
  on the left half of the tile, scored on the right half;
- ``planted``: the full model's ``output.features`` (eval mode, hard top-K) on the learning
  benchmark's planted task (same folder and image seed): fitted on its train split, scored on its test
  split;

and, once, the colour-only baseline (mean and std of RGB and HED per channel) on both tasks. Every
model gets the learning benchmark's selection settings (``top_k`` 8, ``num_samples`` 100) unless
``--override`` says otherwise; overrides must leave a pre-trained file's architecture alone. Writes
OUT.json (environment, command, settings, every number) and prints a table. A few minutes on one
CPU thread with the default ScoreNet/4/1.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scorenet.bench import probe_tasks
from scorenet.bench.learning import LearningOptions
from scorenet.bench.report import command_line, environment, format_table, write_result
from scorenet.cli import parse_override
from scorenet.config import MODEL_CONFIGS, ScoreNetConfig
from scorenet.data import load_splits
from scorenet.evaluate import extract_features, heldout_probes, model_from_pretrained, seeded_model
from scorenet.model import ScoreNet
from scorenet.pretrained import read_pretrained_info

METRICS = ("accuracy", "weighted_f1")


@torch.inference_mode()
def local_vit_features(model: ScoreNet, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """The local ViT's last [CLS] state (N, D) of (N, H, W, 3) uint8 windows, model in eval mode."""
    model.eval()
    out = []
    for start in range(0, len(images), batch_size):
        x = torch.from_numpy(images[start : start + batch_size]).permute(0, 3, 1, 2)
        out.append(model.local_vit(model.normalize(x))[:, -1].float().numpy())
    return np.concatenate(out)


def probe_one(
    model: ScoreNet, density: probe_tasks.DensityTask, planted: dict[str, Any], batch_size: int
) -> dict[str, Any]:
    """Both tasks' held-out probes of one model."""
    start = time.perf_counter()
    (train_x, train_y), (test_x, test_y) = density.split(True), density.split(False)
    density_scores = heldout_probes(
        local_vit_features(model, train_x), train_y, local_vit_features(model, test_x), test_y
    )
    density_s = time.perf_counter() - start
    train_f, train_l = extract_features(model, planted["train"], "cpu", batch_size)
    test_f, test_l = extract_features(model, planted["test"], "cpu", batch_size)
    return {
        "density": density_scores,
        "planted": heldout_probes(train_f, train_l, test_f, test_l),
        "density_feature_dim": int(model.config.embed_dim),
        "planted_feature_dim": int(train_f.shape[1]),
        "seconds": {"density": density_s, "planted": time.perf_counter() - start - density_s},
    }


def summarize(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Mean and population std over seeds of every (task, probe, metric)."""
    summary: dict[str, Any] = {}
    for task in ("density", "planted"):
        summary[task] = {}
        for probe in runs[0][task]:
            values = {m: np.array([r[task][probe][m] for r in runs]) for m in METRICS}
            summary[task][probe] = {
                m: {"mean": float(v.mean()), "std": float(v.std())} for m, v in values.items()
            }
    return summary


def model_rows(args: argparse.Namespace, overrides: dict[str, Any]) -> list[dict[str, Any]]:
    """What to probe: one random initialisation per distinct architecture, then each pre-trained file.

    Each row has a ``build(seed, num_classes)`` returning (model, init JSON or None).
    """
    rows: list[dict[str, Any]] = []
    configs: list[tuple[str, ScoreNetConfig]] = []
    for path in args.pretrained:
        info = read_pretrained_info(path)
        if all(info.config != c for _, c in configs):
            configs.append((info.name, info.config))
    if not configs:
        configs.append((args.model, ScoreNetConfig(**MODEL_CONFIGS[args.model])))
    for i, (name, config) in enumerate(configs):

        def build(seed: int, n: int, config: ScoreNetConfig = config, name: str = name) -> tuple:
            return seeded_model(config, n, seed=seed, name=name, **overrides), None

        label = "random" if len(configs) == 1 else f"random-{i}"
        rows.append({"name": label, "source": None, "build": build})
    for path in args.pretrained:

        def build_file(seed: int, n: int, path: Path = path) -> tuple:
            model, report = model_from_pretrained(path, n, seed=seed, **overrides)
            return model, report.to_json()

        rows.append({"name": path.stem, "source": str(path), "build": build_file})
    return rows


def table(result: dict[str, Any]) -> str:
    """Accuracy (mean ± std over seeds) and weighted F1 of every model, task and probe."""
    rows = []
    for task in ("density", "planted"):
        for probe, scores in result["colour"][task].items():
            rows.append(
                {
                    "model": "colour",
                    "task": task,
                    "probe": probe,
                    "accuracy": scores["accuracy"],
                    "weighted_f1": scores["weighted_f1"],
                }
            )
        for entry in result["models"]:
            for probe, scores in entry["summary"][task].items():
                acc = scores["accuracy"]
                rows.append(
                    {
                        "model": entry["name"],
                        "task": task,
                        "probe": probe,
                        "accuracy": f"{acc['mean']:.3f} ± {acc['std']:.3f}",
                        "weighted_f1": scores["weighted_f1"]["mean"],
                    }
                )
    return format_table(rows, ["model", "task", "probe", "accuracy", "weighted_f1"])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="result JSON")
    parser.add_argument("--pretrained", type=Path, nargs="*", default=[], help="pre-trained files to probe")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds of the fresh weights")
    parser.add_argument("--model", default="scorenet_4_1", choices=sorted(MODEL_CONFIGS))
    parser.add_argument(
        "--override",
        type=parse_override,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="config field for every model (on top of top_k 8, num_samples 100)",
    )
    parser.add_argument("--stride", type=int, default=32, help="density task window stride")
    parser.add_argument("--work-dir", type=Path, default=None, help="planted task folder's parent")
    parser.add_argument(
        "--counts",
        type=int,
        nargs=3,
        default=None,
        metavar=("TRAIN", "VAL", "TEST"),
        help="planted task images per split (default: the learning benchmark's)",
    )
    parser.add_argument("--batch-size", type=int, default=8, help="planted images per forward pass")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    env = environment("cpu")
    learning = LearningOptions()
    overrides = {**learning.model_overrides, **dict(args.override)}
    counts = dict(zip(("train", "val", "test"), args.counts, strict=True)) if args.counts else None
    density = probe_tasks.density_task(stride=args.stride)
    task_dir = probe_tasks.planted_task_dir(args.work_dir, counts, learning.task_seed, learning.task)
    splits = load_splits(task_dir, val_fraction=0.0)
    planted = {"train": splits.train, "test": splits.test}
    planted_labels = {k: np.array([s.label for s in v]) for k, v in planted.items()}

    colour_start = time.perf_counter()
    (train_x, train_y), (test_x, test_y) = density.split(True), density.split(False)
    colour = {
        "density": probe_tasks.colour_baseline(train_x, train_y, test_x, test_y),
        "planted": probe_tasks.colour_baseline(
            probe_tasks.read_images([s.path for s in planted["train"]]),
            planted_labels["train"],
            probe_tasks.read_images([s.path for s in planted["test"]]),
            planted_labels["test"],
        ),
    }
    colour_s = time.perf_counter() - colour_start

    models = []
    for row in model_rows(args, overrides):
        runs = []
        for seed in args.seeds:
            model, init = row["build"](seed, len(splits.class_names))
            runs.append({"seed": seed, **probe_one(model, density, planted, args.batch_size)})
            print(f"{row['name']} seed {seed}: {json.dumps(runs[-1]['seconds'])}", file=sys.stderr)
        models.append(
            {
                "name": row["name"],
                "source": row["source"],
                "init": init,
                "config": model.config.to_dict(),
                "summary": summarize(runs),
                "runs": runs,
            }
        )

    result = {
        "benchmark": "probes",
        "command": command_line(),
        "environment": env,
        "settings": {
            "seeds": list(args.seeds),
            "overrides": overrides,
            "stride": args.stride,
            "batch_size": args.batch_size,
        },
        "tasks": {
            "density": probe_tasks.describe(density),
            "planted": {
                "task_dir": str(task_dir),
                "class_names": list(splits.class_names),
                "train_images": len(planted["train"]),
                "test_images": len(planted["test"]),
                "image_seed": learning.task_seed,
            },
        },
        "colour": colour,
        "colour_seconds": colour_s,
        "models": models,
        "seconds": time.perf_counter() - started,
    }
    write_result(args.out, result)
    print(table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
