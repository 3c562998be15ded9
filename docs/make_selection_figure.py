"""Figure of docs/scoring.md ("Selection uncertainty"): the distribution and the selection probability.

Usage::

    python docs/make_selection_figure.py docs/images/selection-uncertainty.png [CHECKPOINT]

On the TCGA RoI x, y, w, h = 1200, 1000, 2048, 1536 (level 0): the RoI, the semantic distribution as
N * P on the fixed log2 scale of the plugin (1/4 x to 4 x uniform), and each region's probability of
being among the K selected under the perturbed top-K at two noise levels. CHECKPOINT defaults to the
bundled demonstration model. Needs the ``docs`` extra (matplotlib).
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.colors import LogNorm, Normalize  # noqa: E402
from scorenet.checkpoint import load_checkpoint  # noqa: E402
from scorenet.paths import data_dir  # noqa: E402
from scorenet.selection import selection_probability  # noqa: E402
from scorenet.slide import read_roi  # noqa: E402

ROI = (1200, 1000, 2048, 1536)
SIGMAS = (0.05, 0.5)


def main(out: str, checkpoint: str | None = None) -> None:
    if checkpoint is None:
        from napari_scorenet._widgets._workers import default_checkpoint_path

        checkpoint = str(default_checkpoint_path())
    model, info = load_checkpoint(checkpoint)
    model.eval()
    image = read_roi(data_dir() / "slides" / "tcga-cr-7395-01a-01-ts1.svs", *ROI).image
    images = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None]
    with torch.inference_mode():
        out_model = model(images)
    distribution = out_model.distribution[0].numpy()
    k = model.config.top_k
    maps = [selection_probability(model, images, sigma=s, num_samples=2000)[0].numpy() for s in SIGMAS]
    h, w = image.shape[:2]
    extent = (0, w, h, 0)
    fig, axes = plt.subplots(1, 2 + len(SIGMAS), figsize=(4.2 * (2 + len(SIGMAS)), 3.9), layout="constrained")
    axes[0].imshow(image)
    axes[0].set_title("RoI (TCGA slide, level 0)")
    shown = axes[1].imshow(
        distribution * distribution.size, cmap="RdBu_r", norm=LogNorm(0.25, 4), extent=extent
    )
    axes[1].set_title(f"distribution, x uniform (max/min {distribution.max() / distribution.min():.2f})")
    bar = fig.colorbar(shown, ax=axes[1], shrink=0.8, ticks=[0.25, 0.5, 1, 2, 4], format="%gx")
    bar.ax.minorticks_off()
    for ax, sigma, probability in zip(axes[2:], SIGMAS, maps, strict=True):
        shown = ax.imshow(probability, cmap="viridis", norm=Normalize(0, 1), extent=extent)
        ax.set_title(f"P(selected), sigma {sigma:g} (K / N = {k / probability.size:.2f})")
        fig.colorbar(shown, ax=ax, shrink=0.8)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    for sigma, probability in zip(SIGMAS, maps, strict=True):
        stable = int((probability > 0.9).sum())
        print(f"sigma {sigma:g}: {stable} of {k} selected regions with P > 0.9; max {probability.max():.3f}")


if __name__ == "__main__":
    main(*sys.argv[1:])
