"""Selection probability: sums to K, matches counting the noisy top-K draws, sharpens as sigma falls."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scorenet.demo_data import DEMO_MODEL_OVERRIDES
from scorenet.model import build_model, selection_scores
from scorenet.selection import selection_probability
from scorenet.topk import hard_topk


@pytest.fixture(scope="module")
def tile(tiles_dir: Path) -> torch.Tensor:
    """A real H&E tile as (1, 3, H, W) uint8."""
    rgb = np.asarray(Image.open(tiles_dir / "hgsc_nest.jpg").convert("RGB"))
    return torch.from_numpy(rgb.copy()).permute(2, 0, 1).unsqueeze(0)


def _model():
    torch.manual_seed(0)
    return build_model("scorenet_4_1", 2, **DEMO_MODEL_OVERRIDES).eval()


def test_maps_sum_to_k_and_equal_an_independent_count(tile) -> None:
    model = _model()
    images = tile[..., :256, :384].contiguous()  # a real H&E crop: a 4 x 6 grid of 64-pixel regions
    probability = selection_probability(model, images, sigma=0.3, k=4, num_samples=4000)
    assert probability.shape == (1, 4, 6)
    torch.testing.assert_close(probability.sum(), torch.tensor(4.0))
    assert probability.min() >= 0 and probability.max() <= 1
    # independently: add the noise and count how often each region is among the top 4
    with torch.inference_mode():
        fitted, _ = model.fit_images(images)
        scores = selection_scores(model.score(fitted)[1], model.config.score_scaling)
    generator = torch.Generator().manual_seed(1)
    noisy = scores + 0.3 * torch.randn(4000, scores.shape[1], generator=generator)
    counts = torch.zeros(scores.shape[1])
    for row in hard_topk(noisy, 4):
        counts[row] += 1
    torch.testing.assert_close(probability.flatten(), counts / 4000, atol=0.03, rtol=0)


def test_small_sigma_recovers_the_hard_top_k(tile) -> None:
    model = _model()
    images = tile[..., :256, :384].contiguous()
    sharp = selection_probability(model, images, sigma=1e-4, k=4, num_samples=50)
    with torch.inference_mode():
        chosen = model(images).indices[0]
    assert set(torch.nonzero(sharp.flatten() > 0.99).flatten().tolist()) == set(chosen.tolist())
    flat = selection_probability(model, images, sigma=100.0, k=4, num_samples=4000)
    assert flat.std() < 0.05  # huge noise: every region about K / N
