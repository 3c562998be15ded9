"""A small ScoreNet for fast tests that score real slides: the demo architecture at the paper's s = 8.

The slide-scoring tests assert grids, read sizes and resolutions that follow from s = 8 (the demo
model uses s = 4), so only the downscale differs from ``DEMO_MODEL_OVERRIDES``.
"""

from __future__ import annotations

from scorenet.demo_data import DEMO_MODEL_OVERRIDES

SMALL = {**DEMO_MODEL_OVERRIDES, "downscale": 8}
K = SMALL["top_k"]
