"""The selection-uncertainty layer and the concentration readout of a scored RoI."""

from __future__ import annotations

import numpy as np
import torch
from scorenet.concentration import concentration
from scorenet.inference import RoiScore
from scorenet.selection import selection_probability

from ._colour_bar import share_colour_bar
from ._layers import _upsert, roi_label

SELECTION_BAR = "P(selected)"


def concentration_text(score: RoiScore) -> str:
    """One line: how far the RoI's distribution is from uniform (docs/scoring.md, "Concentration")."""
    k = len(score.ranks)
    c = concentration(score.distribution, k)
    n = score.distribution.size
    text = (
        f"max/min cell {c['max_over_min']:.2f}x; top-{k} mass {100 * c['topk_mass']:.1f} % "
        f"(uniform {100 * k / n:.1f} %); effective regions {c['effective_regions']:.0f} of {n}"
    )
    if score.padded_fraction > 0:
        text += f"; {100 * score.padded_fraction:.0f} % padding"
    return text


def selection_map(model, score: RoiScore, sigma: float, k: int, num_samples: int = 500) -> np.ndarray:
    """P(region selected) (gh, gw) for the RoI's model input under ``sigma`` noise and top ``k``."""
    images = torch.from_numpy(np.ascontiguousarray(score.image)).permute(2, 0, 1)[None]
    return selection_probability(model, images, sigma=sigma, k=k, num_samples=num_samples)[0].numpy()


def show_selection(viewer, score: RoiScore, probability: np.ndarray, sigma: float, k: int):
    """An image layer of P(selected) over the RoI's grid, on the fixed scale 0 to 1 (one colour bar for all
    such layers)."""
    label = roi_label(score)
    x0, y0, x1, y1 = score.distribution_box_level0
    gh, gw = probability.shape
    scale = ((y1 - y0) / gh, (x1 - x0) / gw)
    translate = (y0 + scale[0] / 2, x0 + scale[1] / 2)
    data = probability.astype(np.float32)
    name = f"{label} P(selected) sigma {sigma:g} K {k}"

    def update(layer):
        layer.data = data
        layer.scale, layer.translate, layer.contrast_limits = scale, translate, (0.0, 1.0)

    def add():
        layer = viewer.add_image(data, name=name, colormap="viridis", opacity=0.6, scale=scale,
                                 translate=translate, contrast_limits=(0.0, 1.0))  # fmt: skip
        share_colour_bar(viewer, layer, SELECTION_BAR)
        return layer

    return _upsert(viewer, name, f"{label} P(selected)", add, update)
