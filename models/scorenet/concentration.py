"""How concentrated a semantic distribution is: numbers that say whether the scorer looks somewhere."""

from __future__ import annotations

from typing import Any

import numpy as np


def concentration(distribution: Any, k: int) -> dict[str, float]:
    """Readouts of one distribution (any shape, sums to 1) for a top-``k`` selection.

    - ``max_over_min``: the highest cell over the lowest (1 for a uniform distribution);
    - ``topk_mass``: the share of the mass in the ``k`` highest cells (k / N when uniform);
    - ``effective_regions``: exp(entropy), the number of equally likely cells with the same entropy
      (N when uniform, 1 when all the mass is on one cell).
    """
    p = np.asarray(distribution, dtype=np.float64).ravel()
    if p.size == 0 or not 1 <= k <= p.size:
        raise ValueError(f"need 1 <= k <= N cells, got k = {k}, N = {p.size}")
    p = p / p.sum()
    positive = p[p > 0]
    return {
        "max_over_min": float(p.max() / p.min()) if p.min() > 0 else float("inf"),
        "topk_mass": float(np.sort(p)[-k:].sum()),
        "effective_regions": float(np.exp(-(positive * np.log(positive)).sum())),
    }
