"""Figures of docs/pretraining.md: training curves and the scorer's distribution before and after.

Usage::

    python docs/make_pretraining_figures.py docs/images benchmarks/results/pretraining-distribution.json \\
        LABEL=RUN_DIR [LABEL=RUN_DIR ...]

Each RUN_DIR is a ``scorenet pretrain`` output folder (``log.json``, ``pretrained.safetensors``).
Writes ``pretraining-curves.png`` (loss and teacher entropy per epoch and branch, with the uniform
maximum log 1024 and the collapse threshold) and ``pretraining-distribution.png`` (the scorer's
distribution on the TCGA RoI x, y, w, h = 1200, 1000, 2048, 1536 for a random initialisation and
for every run, as N * P on a fixed log2 scale from 1/4 x to 4 x uniform), and the distributions'
concentration as JSON. Needs the ``docs`` extra (matplotlib).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.colors import Normalize  # noqa: E402
from scorenet.concentration import concentration  # noqa: E402
from scorenet.model import build_model  # noqa: E402
from scorenet.paths import data_dir  # noqa: E402
from scorenet.pretrained import load_init  # noqa: E402
from scorenet.slide import read_roi  # noqa: E402

SLIDE = "slides/tcga-cr-7395-01a-01-ts1.svs"
ROI = (1200, 1000, 2048, 1536)
K = 20
OUT_DIM = 1024


def curves(runs: dict[str, Path], out: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for label, run in runs.items():
        history = json.loads((run / "log.json").read_text())
        suffix = "_teacher_entropy"
        branches = sorted({k[: -len(suffix)] for k in history[0] if k.endswith(suffix)})
        epochs = [row["epoch"] for row in history]
        for branch in branches:
            name = f"{label}, {branch}"
            axes[0].plot(epochs, [row[f"{branch}_loss"] for row in history], marker="o", label=name)
            entropy = [row[f"{branch}{suffix}"] for row in history]
            axes[1].plot(epochs, entropy, marker="o", label=name)
    top = math.log(OUT_DIM)
    for ax in axes:
        ax.axhline(top, color="grey", linestyle=":", linewidth=1)
        ax.set_xlabel("epoch")
    threshold = "collapse threshold (98 % of log K)"
    axes[1].axhline(0.98 * top, color="red", linestyle="--", linewidth=1, label=threshold)
    axes[0].set_ylabel("DINO loss (nats)")
    axes[1].set_ylabel("teacher entropy per image (nats); dotted: log 1024")
    axes[1].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def distributions(runs: dict[str, Path], out: Path) -> dict[str, dict[str, float]]:
    image = read_roi(data_dir() / SLIDE, *ROI).image
    batch = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None]
    models = {}
    torch.manual_seed(0)
    models["random initialisation (seed 0)"] = build_model("scorenet_4_1", 1).eval()
    for label, run in runs.items():
        torch.manual_seed(0)
        model = build_model("scorenet_4_1", 1)
        load_init(model, run / "pretrained.safetensors")
        models[label] = model.eval()
    fig, axes = plt.subplots(1, len(models) + 1, figsize=(4.2 * (len(models) + 1), 3.6))
    axes[0].imshow(image)
    axes[0].set_title(f"TCGA RoI {ROI}", fontsize=8)
    norm = Normalize(-2, 2)
    numbers = {}
    for ax, (label, model) in zip(axes[1:], models.items(), strict=True):
        with torch.no_grad():
            dist = model.semantic_distribution(batch)[0].numpy()
        c = concentration(dist, K)
        numbers[label] = c
        shown = ax.imshow(np.log2(dist * dist.size), cmap="RdBu_r", norm=norm)
        ax.set_title(
            f"{label}\nmax/min {c['max_over_min']:.2f}, exp(H) {c['effective_regions']:.0f} of {dist.size}\n"
            f"top-{K} mass {c['topk_mass']:.3f} (uniform {K / dist.size:.3f})",
            fontsize=7,
        )
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    bar = fig.colorbar(shown, ax=axes[1:].tolist(), shrink=0.8)
    bar.set_ticks([-2, -1, 0, 1, 2], labels=["1/4 x", "1/2 x", "uniform", "2 x", "4 x"])
    bar.set_label("N * P (log2 scale)")
    fig.savefig(out, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return numbers


def main(argv: list[str]) -> None:
    images, numbers_json = Path(argv[0]), Path(argv[1])
    runs = {label: Path(path) for label, path in (arg.split("=", 1) for arg in argv[2:])}
    torch.set_num_threads(1)
    curves(runs, images / "pretraining-curves.png")
    numbers = distributions(runs, images / "pretraining-distribution.png")
    report = {"slide": SLIDE, "roi": ROI, "k": K, "distributions": numbers}
    numbers_json.write_text(json.dumps(report, indent=2))
    for label, c in numbers.items():
        print(f"{label:<40} max/min {c['max_over_min']:.3f}  top-{K} mass {c['topk_mass']:.3f}  "
              f"exp(H) {c['effective_regions']:.1f}")  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1:])
