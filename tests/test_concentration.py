"""Concentration readouts of a semantic distribution."""

from __future__ import annotations

import numpy as np
import pytest
from scorenet.concentration import concentration


def test_uniform_distribution_reads_as_flat():
    c = concentration(np.full((6, 8), 1 / 48), k=8)
    assert c["max_over_min"] == pytest.approx(1.0)
    assert c["topk_mass"] == pytest.approx(8 / 48)
    assert c["effective_regions"] == pytest.approx(48.0)


def test_concentrated_distribution():
    p = np.full(48, 0.2 / 44)
    p[:4] = 0.2  # four cells hold 80 % of the mass
    c = concentration(p, k=4)
    assert c["max_over_min"] == pytest.approx(0.2 / (0.2 / 44))
    assert c["topk_mass"] == pytest.approx(0.8)
    entropy = -(4 * 0.2 * np.log(0.2) + 44 * (0.2 / 44) * np.log(0.2 / 44))
    assert c["effective_regions"] == pytest.approx(np.exp(entropy))
    one_hot = np.zeros(10)
    one_hot[3] = 1
    assert concentration(one_hot, k=1)["effective_regions"] == pytest.approx(1.0)
    assert concentration(one_hot, k=1)["max_over_min"] == float("inf")


def test_rejects_bad_k():
    with pytest.raises(ValueError, match="k = 0"):
        concentration(np.ones(4) / 4, k=0)
