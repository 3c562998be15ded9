"""How stable the recommended regions are: each region's probability of selection under the model's
own perturbation.

In training, ScoreNet selects its K regions with the perturbed top-K: Gaussian noise of scale sigma
is added to the selection scores and the top K of each noisy draw are taken. The mean of the one-hot
indicators over the draws (``perturbed_topk``) has rows that sum to each region's probability of
being among the K. A region near 1 is recommended whatever the noise; a flat map of K / N means the
recommendation is arbitrary. At inference the hard top-K is the sigma -> 0 limit.
"""

from __future__ import annotations

import torch

from .model import ScoreNet, selection_scores
from .topk import perturbed_topk


@torch.inference_mode()
def selection_probability(
    model: ScoreNet,
    images: torch.Tensor,
    *,
    sigma: float | None = None,
    k: int | None = None,
    num_samples: int = 500,
    seed: int = 0,
) -> torch.Tensor:
    """P(region among the top K) (B, gh, gw) under ``sigma`` noise (defaults: the model's sigma and K).

    ``images`` (B, 3, H, W), uint8 or float in [0, 1], as for ``ScoreNet.forward``. Each map sums to
    K; ``seed`` fixes the draws so that a map can be recomputed exactly.
    """
    k = model.config.top_k if k is None else int(k)
    sigma = model.sigma if sigma is None else float(sigma)
    fitted, grid = model.fit_images(images)
    _, distribution = model.score(fitted)
    scores = selection_scores(distribution.float(), model.config.score_scaling)
    generator = torch.Generator(device=scores.device).manual_seed(seed)
    indicators = perturbed_topk(scores, k, sigma, num_samples, generator=generator)
    return indicators.sum(-1).view(-1, *grid)
